/**
 * The floor under a refresh's cost to the database: what the least a refresh could send costs this
 * cluster, paced the way a pass sends its statements. `concurrency` workers each wait one token
 * request's latency and then send one statement over a single connection (a run's pool), until `n`
 * are sent; the CPU of every process of the cluster over that, per statement.
 *
 * - `select 1`: the round trip alone (receive, parse, plan, answer, go back to sleep);
 * - one-row UPDATE by primary key moving the connection's due time: the write every refresh
 *   must make (a new row version and, because due_at is indexed, an entry in each index of the
 *   row), committed with synchronous commit, as a new pair must be.
 *
 * A backend woken for one statement at a time runs with cold caches: the same statement costs it
 * about twice what it costs back to back, so only a paced floor compares with a pass.
 */
import postgres from "postgres";
import type { TestDatabase } from "../local/postgres/database.ts";
import { postgresCpuMs } from "./measure.ts";
import { FUNCTIONS_ROLE } from "./setup.ts";

export interface FloorFigures {
  /** PostgreSQL CPU per `select 1`, ms. */
  roundTripMs: number;
  /** PostgreSQL CPU per one-row UPDATE of a connection's due time, ms. */
  rowWriteMs: number;
}

export async function measureFloor(
  db: TestDatabase,
  n: number,
  concurrency: number,
  latencyMs: number,
  jitterMs: number,
): Promise<FloorFigures> {
  const sql = postgres(
    `postgresql://${FUNCTIONS_ROLE}:${db.password}@127.0.0.1:${db.port}/postgres`,
    { prepare: false, max: 1, onnotice: () => {} },
  );
  try {
    const ids = (await sql<{ id: string }[]>`
      select auth_settings_id as id from cafe24_private.connections order by auth_settings_id
      limit ${n}`).map((row) => row.id);
    if (ids.length === 0) throw new Error("measureFloor: no connections to write");
    // A refresh's store fires no trigger that does work (their WHEN clauses leave it out); this
    // bare update would fire the due-time jitter, which the floor must not count.
    await sql`set session_replication_role = replica`;
    const paced = async (statement: (i: number) => Promise<unknown>): Promise<number> => {
      let next = 0;
      const before = await postgresCpuMs(db);
      const worker = async () => {
        for (let i = next++; i < n; i = next++) {
          const wait = latencyMs + (Math.random() * 2 - 1) * jitterMs;
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
          await statement(i);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      return (await postgresCpuMs(db) - before) / n;
    };
    const roundTripMs = await paced(() => sql`select 1`);
    const rowWriteMs = await paced((i) =>
      sql`update cafe24_private.connections
        set due_at = clock_timestamp() + interval '90 minutes'
        where auth_settings_id = ${ids[i % ids.length]!}`
    );
    return { roundTripMs, rowWriteMs };
  } finally {
    await sql.end({ timeout: 5 });
  }
}
