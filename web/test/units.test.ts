// Unit tests of the console's pure parts, run by web's Go test (TestUnits):
// esbuild bundles this file and `node --test` runs it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { formatMoney, formatOffset } from "../src/format.js";
import { decodeToken, isExpired } from "../src/token.js";
import { describe, fieldViolations } from "../src/errors.js";
import { kindOf } from "../src/timeline.js";
import { followUntilQuiet } from "../src/settle.js";
import { EventType } from "../src/gen/sagasuite/events/v1/envelope_pb.js";

test("money uses the currency's minor units, exactly", () => {
  assert.equal(formatMoney(1250n, "EUR", "en-US"), "€12.50");
  assert.equal(formatMoney(5n, "EUR", "en-US"), "€0.05");
  assert.equal(formatMoney(1250n, "JPY", "en-US"), "¥1,250");
  assert.match(formatMoney(1250n, "KWD", "en-US"), /^KWD\s1\.250$/);
  // Beyond 2^53: a float would round the cents.
  assert.equal(formatMoney(9007199254740993n, "EUR", "en-US"), "€90,071,992,547,409.93");
  assert.match(formatMoney(1250n, "EUR", "de-DE"), /^12,50\s€$/);
  assert.match(formatMoney(1n, "??", "en-US"), /minor units/);
});

test("offsets since the order", () => {
  assert.equal(formatOffset(1234), "+1.234 s");
  assert.equal(formatOffset(125_000), "+2 min 5 s");
});

function jwt(payload: object): string {
  const b64 = (s: string) => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${b64('{"alg":"ES256"}')}.${b64(JSON.stringify(payload))}.sig`;
}

test("token claims are read, not trusted", () => {
  const c = decodeToken(jwt({ sub: "0190c0de-0000-7000-8000-00000000d0e5", roles: ["customer"], iss: "sagasuite-dev", exp: 2000000000 }));
  assert.equal(c.subject, "0190c0de-0000-7000-8000-00000000d0e5");
  assert.deepEqual(c.roles, ["customer"]);
  assert.equal(isExpired(c, new Date(1999999999000)), false);
  assert.equal(isExpired(c, new Date(2000000000000)), true);
  assert.throws(() => decodeToken("not-a-jwt"), /three dot-separated parts/);
  assert.throws(() => decodeToken("a.%%%.c"), /base64url JSON/);
});

test("InvalidArgument's BadRequest names the fields", () => {
  const w = new BinaryWriter();
  for (const [field, description] of [["shipping_address.country_code", "value does not match regex pattern"], ["lines[0].quantity", "value must be greater than 0"]]) {
    w.tag(1, 2).fork().tag(1, 2).string(field).tag(2, 2).string(description).join();
  }
  const err = new ConnectError("invalid", Code.InvalidArgument);
  err.details.push({ type: "google.rpc.BadRequest", value: w.finish() });
  err.details.push({ type: "buf.validate.Violations", value: new Uint8Array([1, 2, 3]) });
  assert.deepEqual(fieldViolations(err), [
    { field: "shipping_address.country_code", description: "value does not match regex pattern" },
    { field: "lines[0].quantity", description: "value must be greater than 0" },
  ]);
  const p = describe(err, "order");
  assert.equal(p.kind, "invalid");
});

test("errors are told apart", () => {
  assert.equal(describe(new ConnectError("missing or invalid bearer token", Code.Unauthenticated), "order").kind, "unauthenticated");
  assert.equal(describe(new ConnectError("permission denied", Code.PermissionDenied), "order").kind, "denied");
  assert.equal(describe(new ConnectError("Failed to fetch", Code.Unknown, undefined, undefined, new TypeError("Failed to fetch")), "inventory").kind, "down");
  assert.equal(describe(new ConnectError("no", Code.Unavailable), "payment").kind, "down");
  assert.equal(describe(new ConnectError("boom", Code.Internal), "order").kind, "other");
});

test("compensations and failures are classified", () => {
  assert.equal(kindOf(EventType.STOCK_RESTORED), "compensation");
  assert.equal(kindOf(EventType.PAYMENT_REFUNDED), "compensation");
  assert.equal(kindOf(EventType.SHIPMENT_CANCELLED), "compensation");
  assert.equal(kindOf(EventType.PAYMENT_FAILED), "failure");
  assert.equal(kindOf(EventType.ORDER_CANCELLED), "outcome");
  assert.equal(kindOf(EventType.STOCK_RESERVED), "step");
});

test("after the terminal status the log is followed until it stays quiet", async () => {
  // An injected clock: each sleep advances it, so no test waits for real.
  let now = 0;
  const sleep = async (ms: number) => { now += ms; };
  // The log gains a compensation at t=6 s, then nothing more.
  const log = () => (now >= 6000 ? "2" : "1");
  let polls = 0;
  const ended = await followUntilQuiet(async () => { polls++; return log(); },
    { everyMs: 3000, quietMs: 30000, signal: new AbortController().signal, now: () => now, sleep });
  assert.equal(ended, "quiet");
  assert.equal(now, 36000, "quiet 30 s after the last change (at 6 s)");
  assert.equal(polls, 13);

  // A failed read ("") is no change; leaving the page stops at once.
  now = 0;
  const leave = new AbortController();
  const aborted = await followUntilQuiet(async () => { if (now >= 9000) leave.abort(); return ""; },
    { everyMs: 3000, quietMs: 30000, signal: leave.signal, now: () => now, sleep });
  assert.equal(aborted, "aborted");
  assert.equal(now, 9000);
});
