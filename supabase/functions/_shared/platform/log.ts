/**
 * Structured log lines, one JSON object per line. Callers pass ids, counts and codes; nothing
 * here accepts a token. As a last guard, any string value that looks like a credential header
 * is masked.
 */
export type LogValue = string | number | boolean | null | undefined | LogValue[] | {
  [key: string]: LogValue;
};

const CREDENTIAL_PATTERN = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;

function scrub(value: LogValue): LogValue {
  if (typeof value === "string") return value.replace(CREDENTIAL_PATTERN, "$1 [redacted]");
  if (Array.isArray(value)) return value.map(scrub);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v)]));
  }
  return value;
}

export function logEvent(
  level: "info" | "warn" | "error",
  event: string,
  fields: Record<string, LogValue> = {},
): void {
  const line = JSON.stringify({
    level,
    event,
    at: new Date().toISOString(),
    ...scrub(fields) as object,
  });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

/**
 * Requests that fail authentication (a wrong cron secret, a forged OAuth state, a bad user
 * token) can come from anyone, as fast as they like: one log line each would let them flood the
 * logs and bury what matters. They are counted per function instance instead, and reported as at
 * most one line per UNAUTHENTICATED_LOG_INTERVAL_MS per function:
 *
 *   {"level":"warn","event":"unauthenticated_requests","function":"cafe24-refresh","count":12,
 *    "reasons":{"wrong_cron_secret":12},"since":"…","interval_s":60}
 *
 * The first failure after a quiet interval is reported at once (a Vault secret that no longer
 * matches CRON_SECRET shows up with the first cron tick); failures within the interval after a
 * line are added up and reported when it ends.
 */
export const UNAUTHENTICATED_LOG_INTERVAL_MS = 60_000;

export interface UnauthenticatedCounterOptions {
  intervalMs?: number;
  /** The clock; tests pass their own. */
  now?: () => number;
  /** Calls `flush` after `ms`; returns a cancel function. Tests pass their own. */
  setTimer?: (flush: () => void, ms: number) => () => void;
  /** Where lines go; logEvent by default. */
  emit?: (fields: Record<string, LogValue>) => void;
}

export interface UnauthenticatedCounter {
  count(functionName: string, reason: string): void;
  /** Reports what was counted and not yet reported, now (also when the process stops). */
  flush(): void;
}

export function createUnauthenticatedCounter(
  options: UnauthenticatedCounterOptions = {},
): UnauthenticatedCounter {
  const intervalMs = options.intervalMs ?? UNAUTHENTICATED_LOG_INTERVAL_MS;
  const now = options.now ?? Date.now;
  const setTimer = options.setTimer ?? unrefTimer;
  const emit = options.emit ?? ((fields) => logEvent("warn", "unauthenticated_requests", fields));

  interface Tally {
    reasons: Map<string, number>;
    sinceMs: number;
    lastLineAtMs: number;
    cancelTimer: (() => void) | null;
  }
  const tallies = new Map<string, Tally>();

  const report = (functionName: string, tally: Tally) => {
    tally.cancelTimer?.();
    tally.cancelTimer = null;
    if (tally.reasons.size === 0) return;
    const reasons = Object.fromEntries([...tally.reasons].sort(([a], [b]) => a.localeCompare(b)));
    emit({
      function: functionName,
      count: [...tally.reasons.values()].reduce((sum, n) => sum + n, 0),
      reasons,
      since: new Date(tally.sinceMs).toISOString(),
      interval_s: intervalMs / 1000,
    });
    tally.reasons.clear();
    tally.lastLineAtMs = now();
  };

  return {
    count(functionName, reason) {
      const at = now();
      let tally = tallies.get(functionName);
      if (tally === undefined) {
        tally = { reasons: new Map(), sinceMs: at, lastLineAtMs: -Infinity, cancelTimer: null };
        tallies.set(functionName, tally);
      }
      if (tally.reasons.size === 0) tally.sinceMs = at;
      tally.reasons.set(reason, (tally.reasons.get(reason) ?? 0) + 1);
      const quietFor = at - tally.lastLineAtMs;
      if (quietFor >= intervalMs) {
        report(functionName, tally);
      } else if (tally.cancelTimer === null) {
        const pending = tally;
        pending.cancelTimer = setTimer(() => report(functionName, pending), intervalMs - quietFor);
      }
    },
    flush() {
      for (const [functionName, tally] of tallies) report(functionName, tally);
    },
  };
}

/** A timer that never keeps the process (or an Edge Runtime worker) alive on its own. */
function unrefTimer(flush: () => void, ms: number): () => void {
  const id = setTimeout(flush, ms);
  Deno.unrefTimer?.(id);
  return () => clearTimeout(id);
}

const unauthenticated = createUnauthenticatedCounter();

/**
 * Signed-in users start connections as often as they like: counted the same way, as at most one
 * `cafe24_authorize_started` line per interval, so that no caller decides how much is logged.
 */
const authorizeStarts = createUnauthenticatedCounter({
  emit: (fields) => logEvent("info", "cafe24_authorize_started", fields),
});

// A worker being shut down reports what it counted and had not reported yet. Best effort: the
// Edge Runtime does not promise to run this on every shutdown.
globalThis.addEventListener?.("beforeunload", () => {
  unauthenticated.flush();
  authorizeStarts.flush();
});

/** Counts one connection attempt cafe24-authorize started, for its periodic line. */
export function countAuthorizeStarted(mode: string): void {
  authorizeStarts.count("cafe24-authorize", mode);
}

/**
 * Counts one request that failed authentication in `functionName`, for the periodic
 * `unauthenticated_requests` line; `reason` is a short code such as `wrong_cron_secret`,
 * `invalid_jwt` or `STATE_INVALID`, never anything the caller sent.
 */
export function countUnauthenticated(functionName: string, reason: string): void {
  unauthenticated.count(functionName, reason);
}
