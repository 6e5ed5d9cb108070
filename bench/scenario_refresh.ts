/**
 * The product: refresh passes through cafe24-refresh over real HTTP, in a fresh function process
 * per measurement, until every seeded connection is refreshed; with the process's CPU, memory,
 * GCs and the statements it sent.
 */
import type { Cafe24Sandbox } from "../local/cafe24_sandbox.ts";
import type { TestDatabase } from "../local/postgres/database.ts";
import {
  type FunctionsServer,
  sandboxFunctionEnv,
  startFunctionsServer,
} from "../local/functions/server.ts";
import {
  cpuMs,
  fullGcs,
  memoryKb,
  postgresCpuMs,
  resetStatementCounts,
  statementCounts,
  statementTotals,
} from "./measure.ts";
import type { BenchOptions } from "./options.ts";
import {
  BENCH_APP,
  CONFIG_DEFAULT_MAX_PER_RUN,
  CRON_SECRET,
  FUNCTIONS_ROLE,
  type TlsMaterial,
} from "./setup.ts";

const MEASUREMENT_DEADLINE_MS = 15 * 60_000;
const NO_OP_CALLS = 20;

interface RunSummaryLike {
  refreshed: number;
  failed: number;
  remaining: number;
  due: number;
}

export interface RefreshMeasurement {
  n: number;
  concurrency: number;
  /** 1-based repetition of this N and C. */
  repetition: number;
  passes: number;
  wallMs: number;
  refreshed: number;
  failed: number;
  idealMs: number;
  statements: Record<string, { calls: number; execMs: number }>;
  statementsTotal: number;
  /** Top-level statements the functions sent (round trips) and those run inside SQL functions
   * (0 unless pg_stat_statements.track is `all`): see statementTotals. */
  roundTrips: number;
  nestedStatements: number;
  functionCpuMs: number;
  noOpCpuMs: number;
  benchCpuMs: number;
  postgresCpuMs: number;
  peakKb: number;
  rssKb: number;
  /** RSS once warm, before the passes. */
  idleRssKb: number;
  /** RSS sampled every 250 ms during the passes. */
  rssSamples: { atMs: number; rssKb: number }[];
  /** V8's live heap after each full (mark-compact) GC during the passes, from --trace-gc. */
  liveHeapMb: { atMs: number; mb: number }[];
  /** Live heap after the last full GC before the passes (start-up and warm-up), or NaN. */
  idleLiveHeapMb: number;
  /** The most V8 had reserved for its heap during the passes. */
  heapCommittedMb: number;
  deadTokenReuses: number;
  concurrentRefreshViolations: number;
  rateLimited: number;
}

/** How a measurement starts the functions: local/functions/server.ts of this checkout by
 * default, or of another one (bench/side_by_side.ts) to serve that checkout's supabase/functions. */
export interface FunctionsStarter {
  startFunctionsServer: typeof startFunctionsServer;
  sandboxFunctionEnv: typeof sandboxFunctionEnv;
}

async function callRefresh(
  functions: FunctionsServer,
  query: Record<string, string> = {},
): Promise<RunSummaryLike> {
  const url = new URL(`${functions.url}/cafe24-refresh`);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const response = await fetch(url, {
    method: "POST",
    headers: { "x-cron-secret": CRON_SECRET, "content-type": "application/json" },
    body: JSON.stringify({ trigger: "manual" }),
    signal: AbortSignal.timeout(MEASUREMENT_DEADLINE_MS),
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`cafe24-refresh answered ${response.status}: ${text.slice(0, 300)}`);
  }
  return JSON.parse(text) as RunSummaryLike;
}

export async function measureRefresh(
  db: TestDatabase,
  sandbox: Cafe24Sandbox,
  options: BenchOptions,
  tls: TlsMaterial | null,
  n: number,
  concurrency: number,
  repetition: number,
  starter: FunctionsStarter = { startFunctionsServer, sandboxFunctionEnv },
): Promise<RefreshMeasurement> {
  // --trace-gc prints a line per GC on the function's stdout: after each full GC, the heap that is
  // still alive, which is what "memory held per connection" would make grow.
  const v8Flags = [Deno.env.get("DENO_V8_FLAGS"), "--trace-gc"]
    .filter((flag) => flag !== undefined && flag !== "").join(",");
  const env: Record<string, string> = {
    ...starter.sandboxFunctionEnv(
      `postgresql://${FUNCTIONS_ROLE}:${db.password}@127.0.0.1:${db.port}/postgres`,
      sandbox,
      BENCH_APP,
    ),
    CAFE24_REFRESH_CONCURRENCY: String(concurrency),
    CAFE24_RUN_BUDGET_MS: String(MEASUREMENT_DEADLINE_MS),
    // Neither may the CPU budget: the per-refresh CPU measured here is what sets the budgets.
    CAFE24_RUN_CPU_BUDGET_MS: String(MEASUREMENT_DEADLINE_MS),
    // Twice N, so that the cap never ends a pass: one pass does everything.
    CAFE24_MAX_CONNECTIONS_PER_RUN: String(Math.max(2 * n, CONFIG_DEFAULT_MAX_PER_RUN)),
    ...(tls === null ? {} : { DENO_CERT: tls.caFile }),
    DENO_V8_FLAGS: v8Flags,
  };
  const functions = await starter.startFunctionsServer(env);
  try {
    // Warm up (module load, JIT, the database pool), then the fixed cost of one invocation.
    for (let i = 0; i < 3; i++) await callRefresh(functions, { mall_id: "benchwarmup" });
    const noOpStart = await cpuMs(functions.pid);
    for (let i = 0; i < NO_OP_CALLS; i++) await callRefresh(functions, { mall_id: "benchwarmup" });
    const noOpCpuMs = (await cpuMs(functions.pid) - noOpStart) / NO_OP_CALLS;

    await resetStatementCounts(db);
    sandbox.resetCounters();
    const [{ started }] = await db.sql<[{ started: Date }]>`select now() as started`;
    const idleRssKb = (await memoryKb(functions.pid)).rssKb;
    const cpuBefore = await cpuMs(functions.pid);
    const benchBefore = await cpuMs("self");
    const postgresBefore = await postgresCpuMs(db);
    const outputFrom = functions.output.length;
    const t0 = performance.now();
    const rssSamples: { atMs: number; rssKb: number }[] = [];
    const sampler = setInterval(() => {
      memoryKb(functions.pid).then(
        ({ rssKb }) => rssSamples.push({ atMs: performance.now() - t0, rssKb }),
        () => {},
      );
    }, 250);
    let passes = 0;
    let refreshed = 0;
    let failed = 0;
    let wallMs: number;
    try {
      for (;;) {
        const summary = await callRefresh(functions);
        passes++;
        refreshed += summary.refreshed;
        failed += summary.failed;
        const [{ left }] = await db.sql<[{ left: number }]>`
          select count(*)::int as left from cafe24_private.connections
          where mall_id like 'bench%' and (last_refreshed_at is null or last_refreshed_at < ${started})`;
        if (left === 0) break;
        if (passes >= options.maxPasses || performance.now() - t0 > MEASUREMENT_DEADLINE_MS) {
          console.warn(`  ${left} connections still not refreshed after ${passes} passes`);
          break;
        }
        // Failed rows back off for a minute or more: wait for them rather than spin.
        if (summary.due === 0) await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
      wallMs = performance.now() - t0;
    } finally {
      clearInterval(sampler);
    }
    const gc = fullGcs(functions.output.slice(outputFrom));
    const idleGc = fullGcs(functions.output.slice(0, outputFrom)).at(-1);
    const functionCpuMs = await cpuMs(functions.pid) - cpuBefore;
    const benchCpuMs = await cpuMs("self") - benchBefore;
    const postgresCpu = await postgresCpuMs(db) - postgresBefore;
    const memory = await memoryKb(functions.pid);
    const statements = await statementCounts(db);
    const totals = await statementTotals(db);
    const counters = sandbox.counters();
    return {
      n,
      concurrency,
      repetition,
      passes,
      wallMs,
      refreshed,
      failed,
      idealMs: (n * options.latencyMs) / concurrency,
      statements,
      statementsTotal: Object.values(statements).reduce((a, b) => a + b.calls, 0),
      roundTrips: totals.roundTrips,
      nestedStatements: totals.nested,
      functionCpuMs,
      noOpCpuMs,
      benchCpuMs,
      postgresCpuMs: postgresCpu,
      peakKb: memory.peakKb,
      rssKb: memory.rssKb,
      idleRssKb,
      rssSamples,
      liveHeapMb: gc.map((g) => ({ atMs: g.atMs - gc[0]!.atMs, mb: g.liveMb })),
      idleLiveHeapMb: idleGc?.liveMb ?? Number.NaN,
      heapCommittedMb: Math.max(0, ...gc.map((g) => g.committedMb)),
      deadTokenReuses: counters.deadTokenReuses,
      concurrentRefreshViolations: counters.concurrentRefreshViolations,
      rateLimited: counters.rateLimited,
    };
  } finally {
    await functions.stop();
  }
}
