/**
 * Tries a call again when it throws, for failures that pass by themselves: a database restart or
 * failover, a dropped pooler connection. Only for calls that are safe to repeat; each caller
 * says why its call is. Failures that are answers (a constraint, a refusal) are not retried by
 * callers that can tell them apart: they return them instead of throwing.
 */

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  /** The wait after the first failure; each further wait is twice the one before. */
  firstDelayMs: number;
}

/** Runs `call` up to `policy.attempts` times; throws the last error when every try failed. */
export async function withRetries<T>(
  call: () => Promise<T>,
  policy: RetryPolicy,
  wait: (ms: number) => Promise<void> = sleep,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= policy.attempts) throw error;
      await wait(policy.firstDelayMs * 2 ** (attempt - 1));
    }
  }
}

/** How long `withRetries` waits in all when every try fails (the tries' own time not counted). */
export function retryWaitMs(policy: RetryPolicy): number {
  return policy.firstDelayMs * (2 ** Math.max(0, policy.attempts - 1) - 1);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
