// followUntilQuiet keeps re-reading something that may still change after
// its owner says it is done — a saga's log after the order's terminal status,
// where compensations such as STOCK_RESTORED arrive later — until it has
// stayed the same for quietMs, or the user leaves (signal).

export type FollowOptions = {
  everyMs: number;
  quietMs: number;
  signal: AbortSignal;
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
};

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

// poll returns a fingerprint of what it read ("" on a failed read, which
// counts as no change). The first fingerprint is the starting point.
export async function followUntilQuiet(poll: () => Promise<string>, o: FollowOptions): Promise<"quiet" | "aborted"> {
  const now = o.now ?? (() => Date.now());
  const wait = o.sleep ?? sleep;
  let last = await poll();
  let changedAt = now();
  for (;;) {
    if (o.signal.aborted) return "aborted";
    if (now() - changedAt >= o.quietMs) return "quiet";
    await wait(o.everyMs, o.signal);
    if (o.signal.aborted) return "aborted";
    const seen = await poll();
    if (seen !== "" && seen !== last) {
      last = seen;
      changedAt = now();
    }
  }
}
