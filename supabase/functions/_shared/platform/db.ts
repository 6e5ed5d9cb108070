import postgres from "postgres";

/**
 * One postgres.js client per database URL, created on first use and kept at module scope so
 * that warm invocations reuse its connections. `prepare: false` because SUPABASE_DB_URL may
 * point at the transaction pooler, which cannot keep prepared statements.
 */
const clients = new Map<string, postgres.Sql>();

export function database(url: string, maxConnections = 10): postgres.Sql {
  let client = clients.get(url);
  if (client === undefined) {
    client = postgres(url, {
      prepare: false,
      max: maxConnections,
      idle_timeout: 20,
      connect_timeout: 10,
      onnotice: () => {},
    });
    clients.set(url, client);
  }
  return client;
}

/** Ends every client (tests and scripts that must exit cleanly). */
export async function closeDatabases(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  await Promise.all(all.map((client) => client.end({ timeout: 5 })));
}
