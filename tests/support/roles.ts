/**
 * Runs queries the way the Data API runs them for a browser: as `authenticated` with a user's JWT
 * claims, or as `anon`, inside a transaction that ends with the call.
 */
import type { TestDatabase } from "../../local/postgres/database.ts";

// deno-lint-ignore no-explicit-any
export type Row = Record<string, any>;
// deno-lint-ignore no-explicit-any
export type Query = (sql: any) => Promise<readonly Row[]>;

export async function asUser(db: TestDatabase, userId: string, query: Query): Promise<Row[]> {
  const claims = JSON.stringify({ sub: userId, role: "authenticated", aud: "authenticated" });
  const rows = await db.sql.begin(async (sql) => {
    await sql`select set_config('request.jwt.claims', ${claims}, true)`;
    await sql`set local role authenticated`;
    return [...await query(sql)];
  });
  return rows as Row[];
}

export async function asRole(db: TestDatabase, role: string, query: Query): Promise<Row[]> {
  const rows = await db.sql.begin(async (sql) => {
    await sql`select set_config('request.jwt.claims', ${JSON.stringify({ role })}, true)`;
    await sql`set local role ${sql(role)}`;
    return [...await query(sql)];
  });
  return rows as Row[];
}
