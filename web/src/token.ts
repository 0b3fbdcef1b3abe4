// The bearer token the console sends: pasted by the user, kept in
// sessionStorage (gone when the tab closes), decoded only to show who it
// claims to be — the services verify it, the console never trusts it.

const storageKey = "sagasuite.token";

export type Claims = {
  subject: string;
  roles: string[];
  issuer: string;
  expires: Date | undefined;
};

export function loadToken(): string {
  return sessionStorage.getItem(storageKey) ?? "";
}

export function saveToken(token: string): void {
  sessionStorage.setItem(storageKey, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(storageKey);
}

// decodeToken reads a JWT's payload without verifying it; it throws an Error
// that says what is wrong with a value that is not a JWT.
export function decodeToken(token: string): Claims {
  const parts = token.trim().split(".");
  if (parts.length !== 3) {
    throw new Error("not a JWT: expected three dot-separated parts");
  }
  let payload: unknown;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    payload = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error("not a JWT: the payload is not base64url JSON");
  }
  if (typeof payload !== "object" || payload === null) {
    throw new Error("not a JWT: the payload is not a JSON object");
  }
  const p = payload as Record<string, unknown>;
  const roles = Array.isArray(p.roles) ? p.roles.filter((r): r is string => typeof r === "string") : [];
  return {
    subject: typeof p.sub === "string" ? p.sub : "",
    roles,
    issuer: typeof p.iss === "string" ? p.iss : "",
    expires: typeof p.exp === "number" ? new Date(p.exp * 1000) : undefined,
  };
}

export function isExpired(c: Claims, now: Date): boolean {
  return c.expires !== undefined && c.expires.getTime() <= now.getTime();
}
