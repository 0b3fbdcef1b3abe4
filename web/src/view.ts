// What every view shares: where it renders, the clients, the signal that
// ends its calls when the user leaves it, and how a failed call is shown.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Clients } from "./api.js";
import { describe, type Problem } from "./errors.js";
import { h, setFieldError } from "./dom.js";
import { formatTime } from "./format.js";
import { decodeToken, isExpired, loadToken } from "./token.js";

export type ViewContext = {
  main: HTMLElement;
  status: HTMLElement;
  clients: Clients;
  // Aborted when the view changes: streams, calls and timers end with it.
  signal: AbortSignal;
};

export function isAbort(signal: AbortSignal, err: unknown): boolean {
  return signal.aborted || (err instanceof Error && err.name === "AbortError");
}

// tokenTrouble says what is wrong with the stored token when a service
// refused it: the services answer "unauthenticated" alike for a missing,
// malformed or expired one, but the console can tell them apart.
export function tokenTrouble(now: Date): string {
  const token = loadToken();
  if (!token) return "You have no token: paste one under Token.";
  try {
    const c = decodeToken(token);
    if (isExpired(c, now)) {
      return `Your token has expired (at ${formatTime(c.expires)}): paste a new one under Token.`;
    }
  } catch {
    return "Your token is not a JWT: paste a valid one under Token.";
  }
  return "The services refused your token (wrong issuer, audience or signature): paste a new one under Token.";
}

// showProblem renders a failed call as an alert in where; validation errors
// go on their fields when fieldIds maps the server's field path to an
// input. A service that does not answer gets a Retry button (it re-runs the
// view) instead of being called again and again by the page.
export function showProblem(where: HTMLElement, err: unknown, service: string, fieldIds: (path: string) => string | undefined = () => undefined): Problem {
  if (err instanceof ConnectError && err.name === "AbortError") return { kind: "other", text: "" };
  const p = describe(err, service);
  let text = p.text;
  if (p.kind === "unauthenticated") {
    text = tokenTrouble(new Date());
  } else if (p.kind === "invalid") {
    const unplaced: string[] = [];
    for (const v of p.fields) {
      const id = fieldIds(v.field);
      if (!id || !setFieldError(id, v.description)) unplaced.push(`${v.field}: ${v.description}`);
    }
    text = unplaced.length ? `Please correct: ${unplaced.join("; ")}` : "Please correct the marked fields.";
  }
  const retry = p.kind === "down"
    ? h("button", { type: "button", class: "retry", onclick: () => window.dispatchEvent(new HashChangeEvent("hashchange")) }, "Retry")
    : null;
  where.replaceChildren(h("div", { class: `alert alert-${p.kind}`, role: "alert" }, text, retry ? " " : "", retry));
  return p;
}

// isNotFound: the order services answer NotFound for an order that does not
// exist and for another customer's alike (ids cannot be probed).
export function isNotFound(err: unknown): boolean {
  const code = ConnectError.from(err).code;
  return code === Code.NotFound || code === Code.PermissionDenied;
}
