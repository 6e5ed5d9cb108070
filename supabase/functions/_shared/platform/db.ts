import postgres from "postgres";

/**
 * One postgres.js client per database URL and pool size, created on first use and kept at module
 * scope so that warm invocations reuse its connections. `prepare: false` because
 * SUPABASE_DB_URL may point at the transaction pooler, which cannot keep prepared statements.
 *
 * The pool size is part of the key: a caller that asks for `maxConnections` gets a pool of that
 * size, whatever another function in the same process asked for first (locally every function
 * shares one process). Callers of one size share one pool.
 */
const clients = new Map<string, postgres.Sql>();

/** What the functions' connections call themselves (pg_stat_activity.application_name): an
 * operator can tell them from the app's own, and the benchmarks count their CPU apart. */
export const CAFE24_FUNCTIONS_APPLICATION = "cafe24 edge functions";

/** The pool size for callers that run one statement at a time per request. */
export const DEFAULT_POOL_SIZE = 10;

export function database(url: string, maxConnections = DEFAULT_POOL_SIZE): postgres.Sql {
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new RangeError(`maxConnections must be a positive integer, got ${maxConnections}`);
  }
  const key = `${maxConnections} ${url}`;
  let client = clients.get(key);
  if (client === undefined) {
    client = postgres(url, {
      prepare: false,
      max: maxConnections,
      idle_timeout: 20,
      connect_timeout: 10,
      onnotice: () => {},
      connection: { application_name: CAFE24_FUNCTIONS_APPLICATION },
    });
    clients.set(key, client);
  }
  return client;
}

/** Ends every client (tests and scripts that must exit cleanly). */
export async function closeDatabases(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  await Promise.all(all.map((client) => client.end({ timeout: 5 })));
}
