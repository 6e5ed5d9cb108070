/**
 * When to try a failed event delivery again: pure, so every case is unit-tested.
 * 30 s, 1, 2, 4 … 60 minutes, each drawn from [50 %, 100 %] of its step so that events that
 * failed together (the receiver was down) do not all come back at once. Never given up: delivery
 * is at least once, and a connection's later events wait for it.
 */

export const DELIVERY_RETRY_BASE_MS = 30_000;
export const DELIVERY_RETRY_MAX_MS = 60 * 60_000;

/** `attempts`: attempts made so far, the failed one included (1 after the first failure). */
export function deliveryRetryDelayMs(attempts: number, random: () => number): number {
  const doublings = Math.min(Math.max(attempts - 1, 0), 20);
  const step = Math.min(DELIVERY_RETRY_MAX_MS, DELIVERY_RETRY_BASE_MS * 2 ** doublings);
  return Math.round(step * (0.5 + 0.5 * random()));
}

/**
 * Whether the receiver took the event: a 2xx only. A redirect is a failure like any other answer
 * (it is never followed: the signed body and headers go to the configured URL and nowhere else).
 */
export function isAccepted(status: number): boolean {
  return status >= 200 && status < 300;
}
