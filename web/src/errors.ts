// Turns a failed call into what the user should read: the service is down,
// the token is bad, or which form field is invalid (the services' validation
// interceptor attaches a google.rpc.BadRequest to InvalidArgument).
import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export type Problem =
  | { kind: "down"; service: string; text: string }
  | { kind: "unauthenticated"; text: string }
  | { kind: "denied"; text: string }
  | { kind: "invalid"; text: string; fields: FieldViolation[] }
  | { kind: "other"; text: string };

export type FieldViolation = { field: string; description: string };

export function describe(err: unknown, service: string): Problem {
  const ce = ConnectError.from(err);
  switch (ce.code) {
    case Code.Unauthenticated:
      return { kind: "unauthenticated", text: "Your token is missing, invalid or expired: paste a new one under Token." };
    case Code.PermissionDenied:
      return { kind: "denied", text: "Your token's role may not do this." };
    case Code.InvalidArgument:
      return { kind: "invalid", text: ce.rawMessage, fields: fieldViolations(ce) };
    case Code.Unavailable:
      return { kind: "down", service, text: `The ${service} service is unavailable (${ce.rawMessage}).` };
    case Code.Unknown:
    case Code.Internal:
      // fetch rejects with a TypeError when nothing answers or CORS refuses.
      if (ce.cause instanceof TypeError || /fetch|network|load failed/i.test(ce.rawMessage)) {
        return { kind: "down", service, text: `The ${service} service is unavailable: it does not answer (${ce.rawMessage}).` };
      }
  }
  return { kind: "other", text: `${service}: ${ce.message}` };
}

const badRequestType = "google.rpc.BadRequest";

// fieldViolations decodes BadRequest details by hand (field_violations = 1:
// {field = 1, description = 2}): the console needs two strings, not the whole
// googleapis schema.
export function fieldViolations(ce: ConnectError): FieldViolation[] {
  const out: FieldViolation[] = [];
  for (const d of ce.details) {
    // Incoming details carry the type name and the encoded bytes.
    if (!("type" in d) || d.type !== badRequestType || !(d.value instanceof Uint8Array)) {
      continue;
    }
    try {
      const r = new BinaryReader(d.value);
      while (r.pos < r.len) {
        const [no, wt] = r.tag();
        if (no !== 1 || wt !== WireType.LengthDelimited) {
          r.skip(wt);
          continue;
        }
        const fr = new BinaryReader(r.bytes());
        const v: FieldViolation = { field: "", description: "" };
        while (fr.pos < fr.len) {
          const [fno, fwt] = fr.tag();
          if (fno === 1 && fwt === WireType.LengthDelimited) v.field = fr.string();
          else if (fno === 2 && fwt === WireType.LengthDelimited) v.description = fr.string();
          else fr.skip(fwt);
        }
        out.push(v);
      }
    } catch {
      // A malformed detail leaves the message text as the only explanation.
    }
  }
  return out;
}
