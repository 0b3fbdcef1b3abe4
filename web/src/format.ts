// Money and time for the viewer's locale.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";

// formatMoney shows an amount in minor units with the currency's own number of
// fraction digits (2 for EUR, 0 for JPY, 3 for KWD), exactly: the split into
// major and minor units is done on integers, never on a float sum.
export function formatMoney(amountMinor: bigint, currency: string, locale?: string): string {
  let nf: Intl.NumberFormat;
  try {
    nf = new Intl.NumberFormat(locale, { style: "currency", currency });
  } catch {
    return `${amountMinor} (minor units of ${currency || "?"})`;
  }
  const digits = nf.resolvedOptions().maximumFractionDigits ?? 2;
  const scale = 10n ** BigInt(digits);
  const neg = amountMinor < 0n;
  const abs = neg ? -amountMinor : amountMinor;
  const major = abs / scale;
  const minor = abs % scale;
  const text = digits === 0 ? `${major}` : `${major}.${minor.toString().padStart(digits, "0")}`;
  // Intl accepts decimal strings exactly (no float rounding) since ES2023.
  return nf.format((neg ? "-" + text : text) as unknown as number);
}

export function toDate(ts: Timestamp | undefined): Date | undefined {
  return ts ? timestampDate(ts) : undefined;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function formatTime(d: Date | undefined): string {
  return d ? dateTime.format(d) : "—";
}

// formatOffset is a duration since the order's creation, e.g. "+1.234 s".
export function formatOffset(ms: number): string {
  const sign = ms < 0 ? "−" : "+";
  const abs = Math.abs(ms);
  if (abs < 60_000) {
    return `${sign}${(abs / 1000).toLocaleString(undefined, { minimumFractionDigits: 3, maximumFractionDigits: 3 })} s`;
  }
  const min = Math.floor(abs / 60_000);
  const s = Math.round((abs % 60_000) / 1000);
  return `${sign}${min} min ${s} s`;
}

export function formatDurationSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toLocaleString(undefined, { maximumFractionDigits: 1 })} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

// enumLabel turns ORDER_STATUS_COMPLETED into "COMPLETED" given the prefix.
export function enumLabel(name: string | undefined, prefix: string): string {
  if (!name) return "?";
  return name.startsWith(prefix) ? name.slice(prefix.length) : name;
}
