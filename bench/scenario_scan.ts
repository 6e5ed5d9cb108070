/** Scan cost: finding and claiming the due 1 % of a large table, called directly in SQL. */
import type postgres from "postgres";
import type { TestDatabase } from "../local/postgres/database.ts";
import { median, quantile } from "./measure.ts";
import type { BenchOptions } from "./options.ts";
import { REFRESH_MARGIN, startBenchDatabase } from "./setup.ts";

export interface ScanMeasurement {
  rows: number;
  due: number;
  censusMs: number[];
  /** census and count_claimable for one mall, as a user-triggered refresh runs them. */
  censusOneMallMs: number[];
  countClaimableOneMallMs: number[];
  batchClaimMs: number[];
  batchClaimed: number;
  singleClaims: number;
  singleClaimTotalMs: number;
  singleClaimMedianMs: number;
  singleClaimP95Ms: number;
  concurrentClaimers: number;
  concurrentClaimTotalMs: number;
  /** The same claims with fillfactor = 80 on connections: a what-if, not in the migrations. */
  fillfactor80BatchClaimMs: number[];
  fillfactor80SingleClaimMedianMs: number;
  explainSingle: string;
  explainBatch: string;
  indexUsed: boolean;
}

/** A run recorded as the function records one, whose scope the claims and counts below use. */
async function startBenchRun(sql: postgres.Sql, mallId: string | null = null): Promise<string> {
  const [{ id }] = await sql<[{ id: string }]>`
    select cafe24_private.start_refresh_run(
      p_trigger => 'cli', p_mode => 'sync', p_refresh_margin => ${REFRESH_MARGIN}::interval,
      p_lease_duration => '75 seconds'::interval, p_mall_id => ${mallId}::text) as id`;
  return id;
}

class Rollback extends Error {}

async function inRolledBackTransaction<T>(
  sql: postgres.Sql,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  let result: T | undefined;
  try {
    await sql.begin(async (tx) => {
      result = await fn(tx);
      throw new Rollback();
    });
  } catch (error) {
    if (!(error instanceof Rollback)) throw error;
  }
  return result as T;
}

async function releaseClaims(db: TestDatabase): Promise<void> {
  await db.sql`
    update cafe24_private.connections
    set lease_id = null, lease_expires_at = null, in_flight_since = null, last_claimed_at = null,
      answer_possibly_lost_at = null
    where last_claimed_at is not null`;
  await db.sql`vacuum analyze cafe24_private.connections`;
}

const claimCall = (sql: postgres.Sql | postgres.TransactionSql, runId: string, limit: number) =>
  sql`
    select count(*)::int as n from cafe24_private.claim_due_connections(${runId}, ${limit})`;

export async function measureScan(
  options: BenchOptions,
  concurrency: number,
): Promise<ScanMeasurement> {
  const db = await startBenchDatabase();
  try {
    const rows = options.scanRows;
    const every = Math.max(1, Math.round(100 / options.scanDuePercent));
    // Not-due rows carry an access token valid for 2 hours; every `every`-th row has no expiry,
    // so it is due now. Due rows are spread over the whole table, as they would be.
    await db.sql`
      insert into public.auth_settings (user_id, providers)
      select gen_random_uuid(), jsonb_build_object('cafe24', jsonb_build_object(
        'mall_id', 'scan' || lpad(i::text, 7, '0'),
        'refresh_token', md5(i::text),
        'access_token', md5((-i)::text),
        'scope', 'mall.read_store'
      ) || case when i % ${every}::int = 0 then '{}'::jsonb else jsonb_build_object(
        'expires_at', to_char((now() + interval '2 hours') at time zone 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'refresh_token_expires_at', to_char((now() + interval '14 days') at time zone 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) end)
      from generate_series(1, ${rows}::int) as i`;
    await db.sql`vacuum analyze`;
    const runId = await startBenchRun(db.sql);
    const [{ due }] = await db.sql<[{ due: number }]>`
      select coalesce(sum(connections) filter (where verdict = 'due'), 0)::int as due
      from cafe24_private.census(${runId})`;

    const censusMs: number[] = [];
    for (let i = 0; i < 7; i++) {
      const t0 = performance.now();
      await db.sql`select * from cafe24_private.census(${runId})`;
      censusMs.push(performance.now() - t0);
    }

    const oneMall = `scan${String(every * 5).padStart(7, "0")}`;
    const oneMallRunId = await startBenchRun(db.sql, oneMall);
    const censusOneMallMs: number[] = [];
    const countClaimableOneMallMs: number[] = [];
    for (let i = 0; i < 7; i++) {
      let t0 = performance.now();
      await db.sql`select * from cafe24_private.census(${oneMallRunId})`;
      censusOneMallMs.push(performance.now() - t0);
      t0 = performance.now();
      await db.sql`select cafe24_private.count_claimable(${oneMallRunId})`;
      countClaimableOneMallMs.push(performance.now() - t0);
    }

    // One batch claiming every due row, in a transaction rolled back after each try.
    const batchClaimMs: number[] = [];
    let batchClaimed = 0;
    for (let i = 0; i < 5; i++) {
      await inRolledBackTransaction(db.sql, async (tx) => {
        const t0 = performance.now();
        const [row] = await claimCall(tx, runId, due + 10);
        batchClaimMs.push(performance.now() - t0);
        batchClaimed = (row as unknown as { n: number }).n;
      });
    }

    // As the function does: limit 1, one call at a time, committed, until nothing is left.
    const singles: number[] = [];
    const singleStart = performance.now();
    for (let i = 0; i <= due + 1; i++) {
      const t0 = performance.now();
      const [row] = await claimCall(db.sql, runId, 1);
      singles.push(performance.now() - t0);
      if ((row as unknown as { n: number }).n === 0) break;
    }
    const singleClaimTotalMs = performance.now() - singleStart;
    await releaseClaims(db);

    // And with `concurrency` claimers at once, as one run's workers do (SKIP LOCKED).
    const pool = (await import("postgres")).default(db.dbUrl, {
      prepare: false,
      max: concurrency,
      onnotice: () => {},
    });
    let concurrentClaimTotalMs: number;
    try {
      await Promise.all(Array.from({ length: concurrency }, () => pool`select 1`));
      const t0 = performance.now();
      await Promise.all(Array.from({ length: concurrency }, async () => {
        for (let i = 0; i <= due + 1; i++) {
          const [row] = await claimCall(pool, runId, 1);
          if ((row as unknown as { n: number }).n === 0) return;
        }
      }));
      concurrentClaimTotalMs = performance.now() - t0;
    } finally {
      await pool.end({ timeout: 5 });
    }
    await releaseClaims(db);

    const explainSingle = await planInsideTheFunction(db, runId, 1);
    const explainBatch = await planInsideTheFunction(db, runId, due + 10);

    // The migration gives connections fillfactor = 80 (room on each page for HOT lease updates);
    // rows bulk-inserted before a rewrite still sit on full pages. VACUUM FULL gives every page
    // that room, to show what the setting buys once the table has been rewritten.
    await db.sql`alter table cafe24_private.connections set (fillfactor = 80)`;
    await db.sql`vacuum full cafe24_private.connections`;
    await db.sql`analyze cafe24_private.connections`;
    const fillfactor80BatchClaimMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      await inRolledBackTransaction(db.sql, async (tx) => {
        const t0 = performance.now();
        await claimCall(tx, runId, due + 10);
        fillfactor80BatchClaimMs.push(performance.now() - t0);
      });
    }
    const fillfactor80Singles: number[] = [];
    for (let i = 0; i <= due + 1; i++) {
      const t0 = performance.now();
      const [row] = await claimCall(db.sql, runId, 1);
      fillfactor80Singles.push(performance.now() - t0);
      if ((row as unknown as { n: number }).n === 0) break;
    }
    return {
      rows,
      due,
      censusMs,
      censusOneMallMs,
      countClaimableOneMallMs,
      batchClaimMs,
      batchClaimed,
      singleClaims: singles.length,
      singleClaimTotalMs,
      singleClaimMedianMs: median(singles),
      singleClaimP95Ms: quantile(singles, 0.95),
      concurrentClaimers: concurrency,
      concurrentClaimTotalMs,
      fillfactor80BatchClaimMs,
      fillfactor80SingleClaimMedianMs: median(fillfactor80Singles),
      explainSingle,
      explainBatch,
      indexUsed: /connections_due_idx/.test(explainSingle) &&
        /connections_due_idx/.test(explainBatch),
    };
  } finally {
    await db.stop();
  }
}

/** The plan PostgreSQL really used for the candidate statement inside claim_due_pairs (the plan
 * made once per session), via auto_explain with nested statements, sent to this client as LOG
 * messages; its first line is the statement's duration. */
async function planInsideTheFunction(
  db: TestDatabase,
  runId: string,
  limit: number,
): Promise<string> {
  const messages: string[] = [];
  const client = (await import("postgres")).default(db.dbUrl, {
    prepare: false,
    max: 1,
    onnotice: (notice) => messages.push(String(notice.message ?? "")),
  });
  try {
    await inRolledBackTransaction(client, async (tx) => {
      await tx.unsafe(`load 'auto_explain'`);
      await tx.unsafe(`set local auto_explain.log_min_duration = 0`);
      await tx.unsafe(`set local auto_explain.log_nested_statements = on`);
      await tx.unsafe(`set local auto_explain.log_analyze = on`);
      await tx.unsafe(`set local auto_explain.log_timing = off`);
      await tx.unsafe(`set local auto_explain.log_buffers = on`);
      await tx.unsafe(`set local client_min_messages = log`);
      await claimCall(tx, runId, limit);
    });
  } finally {
    await client.end({ timeout: 5 });
  }
  const nested = messages.find((m) => m.includes("select array_agg(p.id)"));
  return (nested ?? messages.join("\n")).replace(/^(duration: [\d.]+ ms)\s+plan:/, "$1")
    .split("\n").map((line) => line.trimEnd()).filter((line) => line !== "").join("\n");
}
