/** How often a database call is tried before the run gives up on it. */
const DATABASE_ATTEMPTS = 5;
const DATABASE_RETRY_BASE_MS = 200;

/**
 * Runs one database call again while the database is briefly unreachable (a restart, a failover,
 * a dropped pooler connection): about 6 s in all, well inside a lease. Every call retried here is
 * safe to repeat: a claim only takes free rows, a store is a compare-and-swap that recognises its
 * own earlier success, and a run's books are written whole.
 */
export async function withDatabaseRetries<T>(
  call: () => Promise<T>,
  sleep: (ms: number) => Promise<void>,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= DATABASE_ATTEMPTS) throw error;
      await sleep(DATABASE_RETRY_BASE_MS * 2 ** attempt);
    }
  }
}
