import { type RetryPolicy, withRetries } from "../platform/retry.ts";

/**
 * How a run retries a database call while the database is briefly unreachable (a restart, a
 * failover, a dropped pooler connection): waits of 0.4, 0.8, 1.6 and 3.2 s, about 6 s in all, well
 * inside a lease. Every call retried here is safe to repeat: a claim only takes free rows, a store
 * is a compare-and-swap that recognises its own earlier success, and a run's books are written
 * whole.
 */
export const DATABASE_RETRIES: RetryPolicy = { attempts: 5, firstDelayMs: 400 };

/** `withRetries` with DATABASE_RETRIES and the run's clock, so tests can wait on a fake one. */
export function withDatabaseRetries<T>(
  call: () => Promise<T>,
  sleep: (ms: number) => Promise<void>,
): Promise<T> {
  return withRetries(call, DATABASE_RETRIES, sleep);
}
