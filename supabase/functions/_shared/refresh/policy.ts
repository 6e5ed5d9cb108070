import { REFRESH_FAILURES, type RefreshFailureCode } from "../platform/errors.ts";

/**
 * What to do after a failed refresh: pure decisions, no I/O, so every case is unit-tested.
 */

export const BACKOFF_BASE_MS = 60_000;
export const BACKOFF_MAX_MS = 30 * 60_000;
/** A wrong client secret is fixed by an operator, not by retrying every few minutes. */
export const CLIENT_AUTH_RETRY_MS = 15 * 60_000;
/** Never wait longer than this, whatever a Retry-After header says. */
export const RETRY_AFTER_MAX_MS = 60 * 60_000;

export interface FailureInput {
  code: RefreshFailureCode;
  /** Failures recorded before this one. */
  consecutiveFailures: number;
  retryAfterMs: number | null;
  /** An earlier attempt's answer may have been lost (claim said so). */
  answerPossiblyLost: boolean;
}

export interface FailureDecision {
  code: RefreshFailureCode;
  permanent: boolean;
  /** Null for permanent failures: no automatic retry. */
  retryInMs: number | null;
}

/**
 * Exponential backoff with jitter: 1, 2, 4 … 30 minutes, each drawn from [50 %, 100 %] of its
 * step so that connections that failed together do not retry together. A server's Retry-After
 * (or X-Cafe24-Call-Remain) is a floor.
 */
export function retryDelayMs(
  consecutiveFailures: number,
  retryAfterMs: number | null,
  random: () => number,
): number {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(consecutiveFailures, 20));
  const jittered = Math.round(step * (0.5 + 0.5 * random()));
  const floor = retryAfterMs === null ? 0 : Math.min(retryAfterMs, RETRY_AFTER_MAX_MS);
  return Math.max(jittered, floor);
}

export function decideAfterFailure(input: FailureInput, random: () => number): FailureDecision {
  // A dead token after an answer that never arrived is not a mystery: say so.
  const code: RefreshFailureCode = input.code === "CAFE24_INVALID_GRANT" && input.answerPossiblyLost
    ? "CAFE24_ANSWER_LOST"
    : input.code;
  if (REFRESH_FAILURES[code].permanent) {
    return { code, permanent: true, retryInMs: null };
  }
  const delay = retryDelayMs(input.consecutiveFailures, input.retryAfterMs, random);
  return {
    code,
    permanent: false,
    retryInMs: code === "CAFE24_CLIENT_AUTH_FAILED" ? Math.max(delay, CLIENT_AUTH_RETRY_MS) : delay,
  };
}
