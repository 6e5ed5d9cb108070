/**
 * The refresh benchmark: how fast cafe24-refresh works through N due connections
 * through the real function over real HTTP, what each refresh costs (database statements, CPU,
 * memory), how that compares with the seed's approach, and what finding the due rows costs in a
 * large table. Prints figures and writes them to bench/RESULTS.md; it asserts nothing.
 *
 *   npm run bench                         # N = 1,000 and 10,000, L = 50 ± 10 ms, C = 16
 *   npm run bench -- --tls                # the same over HTTPS (what bench/RESULTS.md shows)
 *   npm run bench -- --sizes 1000 --concurrency 8,16 --out /tmp/results.md
 *   (or: deno run --allow-all bench/refresh_bench.ts [flags])
 *
 * Flags: --sizes 1000,10000  --latency-ms 50  --jitter-ms 10  --concurrency 16 (or a list)
 *   --tls (sandbox over HTTPS, self-signed CA made with openssl, trusted through DENO_CERT)
 *   --keep-alive (reuse connections; default: one per refresh, as per-mall hosts force)
 *   --scan-rows 100000  --scan-due-percent 1  --baseline-max 1000 (0: no baseline)
 *   --repeat 3 (refresh passes per N and C, each with a fresh function process; targets use
 *     the median)  --cpu-limit-ms 2000  --cpu-share 0.5 (for the per-run cap)  --max-passes 20
 *   --out bench/RESULTS.md  --help
 *
 * Every run gets a fresh throwaway PostgreSQL (local/postgres/database.ts, with
 * pg_stat_statements preloaded to count statements), the Cafe24 sandbox in this process, and the
 * functions in a child process (local/functions/server.ts) whose CPU and memory are read
 * from /proc. The functions connect as their own role, so their statements are told apart.
 */
import { parseArgs } from "node:util";
import type postgres from "postgres";
import { type Cafe24Sandbox, startCafe24Sandbox } from "../local/cafe24_sandbox.ts";
import { startTestDatabase, type TestDatabase } from "../local/postgres/database.ts";
import { type FunctionsServer, startFunctionsServer } from "../local/functions/server.ts";
import { mallApiUrl } from "../supabase/functions/_shared/cafe24/mall_id.ts";
import { loadConfig } from "../supabase/functions/_shared/platform/config.ts";

const CLIENT_ID = "bench-client-id";
const CLIENT_SECRET = "bench-client-secret-0123456789";
const CRON_SECRET = "bench-cron-secret-abcdefghijklmnop";
/** The functions' own database role: pg_stat_statements counts its statements apart. */
const FUNCTIONS_ROLE = "bench_functions";
/** The default per-run cap in supabase/functions/_shared/platform/config.ts, for comparison. */
const CONFIG_DEFAULT_MAX_PER_RUN = (() => {
  const defaults = loadConfig({}, []);
  if (!defaults.ok) throw new Error("config defaults do not parse");
  return defaults.config.CAFE24_MAX_CONNECTIONS_PER_RUN;
})();
const REFRESH_MARGIN = "30 minutes";
const MEASUREMENT_DEADLINE_MS = 15 * 60_000;
const NO_OP_CALLS = 20;

// ---------------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------------

interface BenchOptions {
  sizes: number[];
  latencyMs: number;
  jitterMs: number;
  concurrencies: number[];
  tls: boolean;
  keepAlive: boolean;
  scanRows: number;
  scanDuePercent: number;
  baselineMax: number;
  cpuLimitMs: number;
  cpuShare: number;
  maxPasses: number;
  repeat: number;
  out: string;
}

function parseOptions(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      "sizes": { type: "string", default: "1000,10000" },
      "latency-ms": { type: "string", default: "50" },
      "jitter-ms": { type: "string", default: "10" },
      "concurrency": { type: "string", default: "16" },
      "tls": { type: "boolean", default: false },
      "keep-alive": { type: "boolean", default: false },
      "scan-rows": { type: "string", default: "100000" },
      "scan-due-percent": { type: "string", default: "1" },
      "baseline-max": { type: "string", default: "1000" },
      "cpu-limit-ms": { type: "string", default: "2000" },
      "cpu-share": { type: "string", default: "0.5" },
      "max-passes": { type: "string", default: "20" },
      "repeat": { type: "string", default: "3" },
      "out": { type: "string", default: "bench/RESULTS.md" },
    },
  });
  const number = (name: string, value: string, min: number, max: number) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new RangeError(`--${name} must be a number from ${min} to ${max}, got "${value}"`);
    }
    return n;
  };
  const list = (name: string, value: string, min: number, max: number) =>
    value.split(",").map((v) => Math.round(number(name, v.trim(), min, max)));
  return {
    sizes: list("sizes", values.sizes, 1, 1_000_000),
    latencyMs: number("latency-ms", values["latency-ms"], 0, 10_000),
    jitterMs: number("jitter-ms", values["jitter-ms"], 0, 10_000),
    concurrencies: list("concurrency", values.concurrency, 1, 64),
    tls: values.tls,
    keepAlive: values["keep-alive"],
    scanRows: Math.round(number("scan-rows", values["scan-rows"], 0, 10_000_000)),
    scanDuePercent: number("scan-due-percent", values["scan-due-percent"], 0.001, 100),
    baselineMax: Math.round(number("baseline-max", values["baseline-max"], 0, 1_000_000)),
    cpuLimitMs: number("cpu-limit-ms", values["cpu-limit-ms"], 1, 1_000_000),
    cpuShare: number("cpu-share", values["cpu-share"], 0.01, 1),
    maxPasses: Math.round(number("max-passes", values["max-passes"], 1, 1_000)),
    repeat: Math.round(number("repeat", values.repeat, 1, 20)),
    out: values.out,
  };
}

// ---------------------------------------------------------------------------------------------
// The machine and its processes
// ---------------------------------------------------------------------------------------------

interface Machine {
  /** /proc/loadavg when the bench started: others' work on a shared machine shows here. */
  loadAverage: string;
  cores: number;
  memoryGiB: number;
  cpuModel: string;
  kernel: string;
  deno: string;
  postgres: string;
}

async function describeMachine(): Promise<Omit<Machine, "postgres">> {
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const memKb = Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0);
  const loadavg = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  return {
    loadAverage: loadavg.split(" ").slice(0, 3).join(" ") || "unknown",
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round((memKb / 1024 / 1024) * 10) / 10,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    kernel: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
  };
}

let clockTicksPerSecond = 100;

async function readClockTicks(): Promise<void> {
  try {
    const out = await new Deno.Command("getconf", {
      args: ["CLK_TCK"],
      env: Deno.env.toObject(),
      stdout: "piped",
      stderr: "null",
    }).output();
    const ticks = Number(new TextDecoder().decode(out.stdout).trim());
    if (out.code === 0 && ticks > 0) clockTicksPerSecond = ticks;
  } catch {
    // getconf missing: Linux's USER_HZ is 100 everywhere that matters.
  }
}

/** utime + stime of a process (all its threads), and of its reaped children, in ms. */
async function cpuMs(pid: number | "self", withChildren = false): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after "(comm)": state is field 3, utime 14, stime 15, cutime 16, cstime 17.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  const ticks = fields[11]! + fields[12]! + (withChildren ? fields[13]! + fields[14]! : 0);
  return (ticks * 1000) / clockTicksPerSecond;
}

async function memoryKb(pid: number): Promise<{ peakKb: number; rssKb: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return {
    peakKb: Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0),
    rssKb: Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0),
  };
}

/** CPU of the whole PostgreSQL cluster: the postmaster, its live children and reaped ones. */
async function postgresCpuMs(db: TestDatabase): Promise<number> {
  let postmaster: number;
  try {
    postmaster = Number((await Deno.readTextFile(`${db.dataDir}/postmaster.pid`)).split("\n")[0]);
  } catch {
    return Number.NaN;
  }
  let total = await cpuMs(postmaster, true).catch(() => Number.NaN);
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === postmaster) total += await cpuMs(Number(entry.name));
    } catch {
      // The process ended while we looked.
    }
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// TLS: a throwaway CA and a certificate for 127.0.0.1
// ---------------------------------------------------------------------------------------------

interface TlsMaterial {
  dir: string;
  caFile: string;
  caPem: string;
  cert: string;
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    env: Deno.env.toObject(),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(`openssl ${args[0]} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Null when openssl is not installed. The leaf is signed by a CA because rustls refuses a CA
 * certificate presented as the server's own. */
async function makeTlsMaterial(): Promise<TlsMaterial | null> {
  const dir = await Deno.makeTempDir({ prefix: "bench-tls-" });
  try {
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=refresh bench CA",
    ], dir);
    await openssl([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "leaf.key",
      "-out",
      "leaf.csr",
      "-subj",
      "/CN=127.0.0.1",
    ], dir);
    await Deno.writeTextFile(
      `${dir}/leaf.ext`,
      "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n" +
        "keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
    );
    await openssl([
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "leaf.pem",
      "-days",
      "2",
      "-extfile",
      "leaf.ext",
    ], dir);
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  return {
    dir,
    caFile: `${dir}/ca.pem`,
    caPem: await Deno.readTextFile(`${dir}/ca.pem`),
    cert: await Deno.readTextFile(`${dir}/leaf.pem`),
    key: await Deno.readTextFile(`${dir}/leaf.key`),
  };
}

// ---------------------------------------------------------------------------------------------
// Database set-up
// ---------------------------------------------------------------------------------------------

async function startBenchDatabase(): Promise<TestDatabase> {
  const db = await startTestDatabase({
    preloadLibraries: ["pg_stat_statements"],
    // top: statements the client sent (round trips), not those run inside SQL functions.
    settings: { "pg_stat_statements.track": "top", "pg_stat_statements.max": 5000 },
  });
  await db.sql`create extension if not exists pg_stat_statements`;
  // The cluster's password (hex) for this role too: connections need one (scram-sha-256).
  await db.sql.unsafe(`create role ${FUNCTIONS_ROLE} login superuser password '${db.password}'`);
  return db;
}

const mallIdOf = (prefix: string, i: number) => `${prefix}${String(i).padStart(6, "0")}`;

/** N due connections (no expires_at: due now), tokens issued by the sandbox, in one insert. */
async function seedConnections(db: TestDatabase, sandbox: Cafe24Sandbox, n: number) {
  const tokens: string[] = [];
  for (let i = 1; i <= n; i++) tokens.push(sandbox.issueTokens(mallIdOf("bench", i)).refreshToken);
  await db.sql`
    insert into public.auth_settings (org_id, user_id, providers)
    select gen_random_uuid(), gen_random_uuid(), jsonb_build_object(
      'cafe24', jsonb_build_object(
        'mall_id', 'bench' || lpad(i::text, 6, '0'),
        'refresh_token', (${tokens}::text[])[i],
        'access_token', md5(i::text),
        'scope', 'mall.read_store,mall.read_community',
        'shop_no', 1,
        'board_no', 3),
      'other_provider', jsonb_build_object('enabled', true, 'note', repeat('x', 200)))
    from generate_series(1, ${n}::int) as i`;
  await db.sql`vacuum analyze`;
}

async function makeAllDue(db: TestDatabase): Promise<void> {
  await db.sql`
    update public.auth_settings set providers = providers #- '{cafe24,expires_at}'
    where providers ? 'cafe24'`;
  await db.sql`vacuum analyze`;
}

async function resetStatementCounts(db: TestDatabase): Promise<void> {
  await db.sql`select pg_stat_statements_reset()`;
}

/** Statements the functions' role sent since the last reset, by the SQL function they call. */
async function statementCounts(
  db: TestDatabase,
): Promise<Record<string, { calls: number; execMs: number }>> {
  const rows = await db.sql<{ query: string; calls: string; exec_ms: number }[]>`
    select s.query, s.calls::text as calls, s.total_exec_time + s.total_plan_time as exec_ms
    from pg_stat_statements s join pg_roles r on r.oid = s.userid
    where r.rolname = ${FUNCTIONS_ROLE}`;
  const counts: Record<string, { calls: number; execMs: number }> = {};
  for (const row of rows) {
    const name = /cafe24_private\.(\w+)/.exec(row.query)?.[1] ??
      row.query.replace(/\s+/g, " ").slice(0, 40);
    const entry = counts[name] ??= { calls: 0, execMs: 0 };
    entry.calls += Number(row.calls);
    entry.execMs += Number(row.exec_ms);
  }
  return counts;
}

// ---------------------------------------------------------------------------------------------
// The product: refresh passes through the function over HTTP
// ---------------------------------------------------------------------------------------------

interface RunSummaryLike {
  refreshed: number;
  failed: number;
  remaining: number;
  due: number;
}

interface RefreshMeasurement {
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

/** Full GCs in --trace-gc output: `… 5110 ms: [Incremental ]Mark-Compact 17.1 (32.1) -> 13.8
 * (31.6) MB, …` (heap used (committed) before -> after). */
function fullGcs(lines: string[]): { atMs: number; liveMb: number; committedMb: number }[] {
  const out: { atMs: number; liveMb: number; committedMb: number }[] = [];
  for (const line of lines) {
    const m =
      /\s(\d+) ms: (?:Incremental )?Mark-Compact [\d.]+ \([\d.]+\) -> ([\d.]+) \(([\d.]+)\) MB/
        .exec(line);
    if (m) out.push({ atMs: Number(m[1]), liveMb: Number(m[2]), committedMb: Number(m[3]) });
  }
  return out;
}

async function measureRefresh(
  db: TestDatabase,
  sandbox: Cafe24Sandbox,
  options: BenchOptions,
  tls: TlsMaterial | null,
  n: number,
  concurrency: number,
  repetition: number,
): Promise<RefreshMeasurement> {
  // --trace-gc prints a line per GC on the function's stdout: after each full GC, the heap that is
  // still alive, which is what "memory held per connection" would make grow.
  const v8Flags = [Deno.env.get("DENO_V8_FLAGS"), "--trace-gc"]
    .filter((flag) => flag !== undefined && flag !== "").join(",");
  const env: Record<string, string> = {
    SUPABASE_DB_URL: `postgresql://${FUNCTIONS_ROLE}:${db.password}@127.0.0.1:${db.port}/postgres`,
    CRON_SECRET,
    CAFE24_CLIENT_ID: CLIENT_ID,
    CAFE24_CLIENT_SECRET_KEY: CLIENT_SECRET,
    CAFE24_API_BASE_URL: sandbox.baseUrlTemplate,
    CAFE24_REFRESH_CONCURRENCY: String(concurrency),
    CAFE24_RUN_BUDGET_MS: String(MEASUREMENT_DEADLINE_MS),
    // Neither may the CPU budget: the per-refresh CPU measured here is what sets the budgets.
    CAFE24_RUN_CPU_BUDGET_MS: String(MEASUREMENT_DEADLINE_MS),
    // Twice N, so that the cap never ends a pass: one pass does everything.
    CAFE24_MAX_CONNECTIONS_PER_RUN: String(Math.max(2 * n, CONFIG_DEFAULT_MAX_PER_RUN)),
    ...(tls === null ? {} : { DENO_CERT: tls.caFile }),
    DENO_V8_FLAGS: v8Flags,
  };
  const functions = await startFunctionsServer(env);
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

// ---------------------------------------------------------------------------------------------
// The baseline: the seed's approach
// ---------------------------------------------------------------------------------------------

interface BaselineMeasurement {
  n: number;
  wallMs: number;
  refreshed: number;
  failed: number;
  statements: number;
}

/**
 * THE BASELINE, as the seed's /api/cafe24/refresh did it (shared/seed): read every auth_settings
 * row at once, then for each row with providers.cafe24.mall_id and refresh_token, one after
 * another: POST the refresh grant, read access_token / refresh_token / expires_at, and write the
 * whole providers document back. The seed went through supabase-js and PostgREST; this talks SQL
 * directly, which only makes the baseline faster.
 */
async function seedApproachBaseline(
  sql: postgres.Sql,
  apiBaseUrl: string,
  fetchFn: typeof fetch,
): Promise<{ refreshed: number; failed: number; statements: number }> {
  let statements = 1;
  const rows = await sql<{ id: string; providers: Record<string, unknown> | null }[]>`
    select id, org_id, user_id, providers from public.auth_settings`;
  let refreshed = 0;
  let failed = 0;
  const basic = btoa(`${CLIENT_ID}:${CLIENT_SECRET}`);
  for (const row of rows) {
    const cafe24 = row.providers?.cafe24 as Record<string, unknown> | undefined;
    if (typeof cafe24?.mall_id !== "string" || typeof cafe24.refresh_token !== "string") continue;
    try {
      const response = await fetchFn(mallApiUrl(apiBaseUrl, cafe24.mall_id, "api/v2/oauth/token"), {
        method: "POST",
        headers: {
          "Authorization": `Basic ${basic}`,
          "Content-Type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: cafe24.refresh_token,
        }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const providers = {
        ...row.providers,
        cafe24: {
          ...cafe24,
          access_token: body.access_token,
          refresh_token: body.refresh_token,
          expires_at: body.expires_at,
        },
      };
      statements++;
      await sql`
        update public.auth_settings
        set providers = ${sql.json(providers as postgres.JSONValue)}, updated_at = now()
        where id = ${row.id}`;
      refreshed++;
    } catch {
      failed++;
    }
  }
  return { refreshed, failed, statements };
}

async function measureBaseline(
  db: TestDatabase,
  sandbox: Cafe24Sandbox,
  tls: TlsMaterial | null,
  n: number,
): Promise<BaselineMeasurement> {
  const client = tls === null ? null : Deno.createHttpClient({ caCerts: [tls.caPem] });
  const fetchFn: typeof fetch = client === null
    ? fetch
    : (input, init) => fetch(input, { ...init, client });
  try {
    sandbox.resetCounters();
    const t0 = performance.now();
    const result = await seedApproachBaseline(db.sql, sandbox.baseUrlTemplate, fetchFn);
    return { n, wallMs: performance.now() - t0, ...result };
  } finally {
    client?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Scan cost: finding and claiming the due 1 % of a large table
// ---------------------------------------------------------------------------------------------

interface ScanMeasurement {
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
  nestedPlan: string;
  indexUsed: boolean;
}

const median = (values: number[]) => quantile(values, 0.5);

function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** EXPLAIN of the claim's candidate query (the text claim_due_connections executes, from
 * cafe24_private.claim_candidates_query), prepared with the run's scope and the limit as its two
 * parameters, which the planner sees as constants as it does under EXECUTE … USING. */
async function explainCandidates(
  tx: postgres.TransactionSql,
  runId: string,
  limit: number,
): Promise<string> {
  const [{ query }] = await tx<[{ query: string }]>`
    select cafe24_private.claim_candidates_query(cafe24_private.scope_of_run(${runId})) as query`;
  await tx.unsafe(`prepare claim_candidates(cafe24_private.refresh_scope, integer) as ${query}`);
  try {
    // EXPLAIN takes no bound parameters: the run id (a uuid from the database) and limit inline.
    const plan = await tx.unsafe<{ "QUERY PLAN": string }[]>(
      `explain (analyze, buffers, costs off)
       execute claim_candidates(cafe24_private.scope_of_run('${runId}'::uuid), ${
        Math.trunc(limit)
      })`,
    );
    return plan.map((line) => line["QUERY PLAN"]).join("\n");
  } finally {
    await tx.unsafe("deallocate claim_candidates");
  }
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

async function measureScan(options: BenchOptions, concurrency: number): Promise<ScanMeasurement> {
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

    const explain = (limit: number) =>
      inRolledBackTransaction(db.sql, (tx) => explainCandidates(tx, runId, limit));
    const explainSingle = await explain(1);
    const explainBatch = await explain(due + 10);
    const nestedPlan = await planInsideTheFunction(db, runId);

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
      nestedPlan,
      indexUsed: /connections_due_idx/.test(explainSingle) &&
        /connections_due_idx/.test(nestedPlan),
    };
  } finally {
    await db.stop();
  }
}

/** The plan PostgreSQL really used for the EXECUTE inside claim_due_connections, via
 * auto_explain with nested statements, sent to this client as LOG messages. */
async function planInsideTheFunction(db: TestDatabase, runId: string): Promise<string> {
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
      await tx.unsafe(`set local client_min_messages = log`);
      await claimCall(tx, runId, 1);
    });
  } finally {
    await client.end({ timeout: 5 });
  }
  const nested = messages.find((m) => m.includes("select array_agg(auth_settings_id)"));
  return (nested ?? messages.join("\n")).replace(/^duration: [\d.]+ ms\s+/, "")
    .split("\n").map((line) => line.trimEnd()).filter((line) => line !== "").join("\n");
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const fmt = (value: number, digits = 1) =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    })
    : "n/a";
const int = (value: number) => fmt(value, 0);

/** CPU one invocation at the config's default cap would use, at the measured rate. */
function defaultCapCpuMs(cap: CapDerivation): number {
  return CONFIG_DEFAULT_MAX_PER_RUN * cap.cpuPerRefreshMs + cap.fixedMs;
}

interface CapDerivation {
  cpuPerRefreshMs: number;
  fixedMs: number;
  budgetMs: number;
  rawCap: number;
  cap: number;
  source: string;
}

function deriveCap(results: RefreshMeasurement[], options: BenchOptions): CapDerivation {
  // The most expensive measured refresh (and invocation) decides: a cap must hold in the worst
  // case measured, not the average.
  const worst = results.reduce((a, b) =>
    a.functionCpuMs / Math.max(1, a.refreshed) >= b.functionCpuMs / Math.max(1, b.refreshed) ? a : b
  );
  const cpuPerRefreshMs = worst.functionCpuMs / Math.max(1, worst.refreshed);
  const fixedMs = Math.max(...results.map((r) => r.noOpCpuMs));
  const budgetMs = options.cpuLimitMs * options.cpuShare;
  const rawCap = Math.max(0, Math.floor((budgetMs - fixedMs) / cpuPerRefreshMs));
  // Rounded down to two significant digits: a number an operator can remember.
  const magnitude = 10 ** Math.max(0, Math.floor(Math.log10(Math.max(1, rawCap))) - 1);
  return {
    cpuPerRefreshMs,
    fixedMs,
    budgetMs,
    rawCap,
    cap: Math.floor(rawCap / magnitude) * magnitude,
    source: `N = ${int(worst.n)}, C = ${worst.concurrency}`,
  };
}

interface Report {
  machine: Machine;
  command: string;
  date: string;
  options: BenchOptions;
  tlsUsed: boolean;
  tlsNote: string | null;
  refresh: RefreshMeasurement[];
  baseline: BaselineMeasurement[];
  scan: ScanMeasurement | null;
  cap: CapDerivation | null;
  totalMs: number;
}

/** Measurements of one N and C (its repetitions), in the order they were taken. */
function byNAndC(results: RefreshMeasurement[]): RefreshMeasurement[][] {
  const groups = new Map<string, RefreshMeasurement[]>();
  for (const m of results) {
    const key = `${m.n}/${m.concurrency}`;
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  return [...groups.values()];
}

const efficiency = (m: RefreshMeasurement) => m.idealMs / m.wallMs;

/** The repetition with the median efficiency. */
function medianRun(group: RefreshMeasurement[]): RefreshMeasurement {
  const sorted = [...group].sort((a, b) => efficiency(a) - efficiency(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function renderReport(r: Report): string {
  const o = r.options;
  const lines: string[] = [];
  const push = (...l: string[]) => lines.push(...l);
  push(
    "# Refresh benchmark results",
    "",
    "Produced by `bench/refresh_bench.ts`; every figure below comes from that run. Rerun with the",
    "command shown to reproduce on another machine.",
    "",
    `- Date: ${r.date}`,
    `- Machine: ${r.machine.cores} cores (${r.machine.cpuModel}), ${r.machine.memoryGiB} GiB ` +
      `memory, ${r.machine.kernel}; load average at start ${r.machine.loadAverage}`,
    `- Software: Deno ${r.machine.deno}, ${r.machine.postgres}`,
    `- Command: \`${r.command}\``,
    `- Sandbox: token endpoint latency ${o.latencyMs} ± ${o.jitterMs} ms (uniform), per-mall ` +
      `leaky bucket on (40, 2/s), ${r.tlsUsed ? "HTTPS (self-signed CA via DENO_CERT)" : "HTTP"}` +
      `, ${o.keepAlive ? "keep-alive" : "a new connection per request (as per-mall hosts force)"}`,
    `- Everything on one machine: the function process, the sandbox (in the bench process) and ` +
      `PostgreSQL share ${r.machine.cores} cores. Total bench time ${fmt(r.totalMs / 1000)} s.`,
  );
  if (r.tlsNote !== null) push(`- TLS: ${r.tlsNote}`);

  push("", "## Targets", "", "| target | achieved | met |", "|---|---|---|");
  const groups = byNAndC(r.refresh);
  const at16 = groups.filter((g) => g[0]!.concurrency === 16);
  const effTarget = at16.length === 0
    ? ["efficiency ≥ 0.85 at C = 16", "not measured (no C = 16 in this run)", "n/a"]
    : [
      "efficiency ≥ 0.85 at C = 16",
      at16.map((g) =>
        `${fmt(efficiency(medianRun(g)), 2)} at N = ${int(g[0]!.n)} (median of ${g.length}: ${
          g.map((m) => fmt(efficiency(m), 2)).join(", ")
        })`
      ).join("; "),
      at16.every((g) => efficiency(medianRun(g)) >= 0.85) ? "yes" : "**no**",
    ];
  push(`| ${effTarget.join(" | ")} |`);
  // The product's time at N: the median run of the fastest concurrency.
  const productWall = (n: number) =>
    groups.filter((g) => g[0]!.n === n).map((g) => medianRun(g).wallMs)
      .reduce((a, b) => Math.min(a, b), Infinity);
  const ratios = r.baseline.map((b) => ({ n: b.n, ratio: b.wallMs / productWall(b.n) }));
  const at1000 = ratios.find((x) => x.n === 1000);
  push(
    `| ≥ 10× faster than the baseline at N = 1,000 | ${
      ratios.length === 0
        ? "baseline not run"
        : ratios.map((x) => `${fmt(x.ratio)}× (N = ${int(x.n)})`).join(", ")
    } | ${at1000 === undefined ? "n/a" : at1000.ratio >= 10 ? "yes" : "**no**"} |`,
  );
  const statementsPer = (m: RefreshMeasurement) => m.statementsTotal / Math.max(1, m.refreshed);
  push(
    `| ≤ 3 statements per refreshed connection | ${
      groups.map((g) =>
        `${fmt(Math.max(...g.map(statementsPer)), 2)} (N = ${int(g[0]!.n)}, C = ${
          g[0]!.concurrency
        }, most of ${g.length} runs)`
      ).join(", ")
    } | ${r.refresh.every((m) => statementsPer(m) <= 3) ? "yes" : "**no**"} |`,
  );
  const flat = memoryFlatness(r.refresh);
  push(`| function memory flat in N | ${flat.text} | ${flat.met} |`);
  if (r.scan !== null) {
    const s = r.scan;
    push(
      `| claiming the due ${o.scanDuePercent} % of ${int(s.rows)} rows < 50 ms | one batch: ` +
        `${fmt(median(s.batchClaimMs))} ms; one at a time as the function does: ` +
        `${fmt(s.singleClaimMedianMs, 2)} ms per claim, ${fmt(s.singleClaimTotalMs)} ms for all ` +
        `${int(s.due)} | ${median(s.batchClaimMs) < 50 ? "yes (batch)" : "**no**"} |`,
    );
  }
  if (r.cap !== null) {
    push(
      `| per-run cap from measured CPU | ${int(r.cap.cap)} connections per invocation ` +
        `at ${fmt(r.options.cpuShare * 100)} % of the CPU limit; the config default ` +
        `${int(CONFIG_DEFAULT_MAX_PER_RUN)} needs ${
          fmt(defaultCapCpuMs(r.cap) / r.options.cpuLimitMs * 100)
        } % | ${
          defaultCapCpuMs(r.cap) < r.options.cpuLimitMs
            ? "yes (default under the limit)"
            : "**no: default over the limit**"
        } |`,
    );
  }

  push(
    "",
    "## Refresh passes through cafe24-refresh (sync POST, real HTTP)",
    "",
    "| N | C | run | passes | wall s | refreshes/s | ideal N·L/C s | efficiency | time per refresh " +
      "beyond L, per worker, ms | statements / refresh | function CPU ms / refresh | no-op " +
      "invocation CPU ms | function peak RSS MiB | Postgres CPU ms / refresh | bench+sandbox " +
      "CPU ms / refresh |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const m of r.refresh) {
    const per = (x: number) => x / Math.max(1, m.refreshed);
    push(
      `| ${int(m.n)} | ${m.concurrency} | ${m.repetition} | ${m.passes} | ${
        fmt(m.wallMs / 1000, 2)
      } | ${int(m.refreshed / (m.wallMs / 1000))} | ${fmt(m.idealMs / 1000, 2)} | ${
        fmt(m.idealMs / m.wallMs, 2)
      } | ${fmt((m.wallMs * m.concurrency) / Math.max(1, m.refreshed) - o.latencyMs, 1)} | ${
        fmt(per(m.statementsTotal), 2)
      } | ${fmt(per(m.functionCpuMs), 2)} | ${fmt(m.noOpCpuMs, 1)} | ${fmt(m.peakKb / 1024)} | ${
        fmt(per(m.postgresCpuMs), 2)
      } | ${fmt(per(m.benchCpuMs), 2)} |`,
    );
  }
  push("", "Statements the function sent, by SQL function (pg_stat_statements, track = top):", "");
  for (const m of r.refresh) {
    const parts = Object.entries(m.statements).sort((a, b) => b[1].calls - a[1].calls)
      .map(([name, s]) =>
        `${name} ${int(s.calls)} × ${fmt(s.execMs / Math.max(1, s.calls), 2)} ms server time`
      );
    push(
      `- N = ${int(m.n)}, C = ${m.concurrency}, run ${m.repetition}: ${
        int(m.statementsTotal)
      } statements for ` +
        `${int(m.refreshed)} refreshes (${parts.join(", ")}); failed ${m.failed}, dead-token ` +
        `reuses ${m.deadTokenReuses}, concurrent refreshes of one mall ` +
        `${m.concurrentRefreshViolations}, bucket 429s ${m.rateLimited}`,
    );
  }

  push(
    "",
    "## Function memory",
    "",
    "RSS of the function process (VmRSS sampled every 250 ms; peak = VmHWM over its life), and " +
      "V8's live heap after each full GC during the passes (`--trace-gc`): what is still " +
      "reachable, which anything kept per connection would make grow with N.",
    "",
    "| run | idle RSS before the passes MiB | RSS at 25 % | 50 % | 75 % | 100 % of the run | " +
      "peak RSS MiB | live heap before the passes MiB | full GCs during the passes | live heap " +
      "after the first / last of them MiB | V8 heap reserved, max MiB |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const m of r.refresh) {
    const mib = (kb: number) => fmt(kb / 1024);
    const live = m.liveHeapMb;
    push(
      `| N = ${int(m.n)}, C = ${m.concurrency}, run ${m.repetition} | ${mib(m.idleRssKb)} | ${
        mib(rssAt(m, 0.25))
      } | ${mib(rssAt(m, 0.5))} | ${mib(rssAt(m, 0.75))} | ${mib(rssAt(m, 1))} | ${
        mib(m.peakKb)
      } | ${fmt(m.idleLiveHeapMb)} | ${live.length} | ${
        live.length === 0 ? "n/a" : `${fmt(live[0]!.mb)} / ${fmt(live.at(-1)!.mb)}`
      } | ${live.length === 0 ? "n/a" : fmt(m.heapCommittedMb)} |`,
    );
  }
  push(
    "",
    "RSS rises with N while V8 reserves more heap for a longer run (it collects less often when " +
      "it may grow), then levels off; the live heap after full GCs is what would show memory " +
      "held per connection.",
  );

  push("", "## Baseline: the seed's approach", "");
  if (r.baseline.length === 0) {
    push("Not run (`--baseline-max 0`, or no size at or below it).");
  } else {
    push(
      "`seedApproachBaseline()` in the bench: every row read at once, one refresh after another, " +
        "the whole `providers` document written back per row. Same sandbox, same latency, same " +
        "connection policy; SQL instead of the seed's PostgREST round trips (which only flatters " +
        "the baseline).",
      "",
      "| N | wall s | refreshes/s | statements / refresh | product wall s (median run, best C) " +
        "| speed-up |",
      "|---|---|---|---|---|---|",
    );
    for (const b of r.baseline) {
      const best = productWall(b.n);
      push(
        `| ${int(b.n)} | ${fmt(b.wallMs / 1000, 2)} | ${int(b.refreshed / (b.wallMs / 1000))} | ${
          fmt(b.statements / Math.max(1, b.refreshed), 2)
        } | ${fmt(best / 1000, 2)} | ${fmt(b.wallMs / best)}× |`,
      );
    }
  }

  if (r.scan !== null) {
    const s = r.scan;
    push(
      "",
      `## Scan cost: ${int(s.rows)} connections, ${int(s.due)} due (${o.scanDuePercent} %)`,
      "",
      "Called directly in SQL against a fresh, vacuumed database.",
      "",
      "| operation | time |",
      "|---|---|",
      `| census (counts every row in scope; once per run) | median ${
        fmt(median(s.censusMs))
      } ms (min ${fmt(Math.min(...s.censusMs))}, max ${fmt(Math.max(...s.censusMs))}) |`,
      `| census for one mall (\`mall_id\` filter, as a user-triggered refresh runs it) | median ${
        fmt(median(s.censusOneMallMs))
      } ms |`,
      `| count_claimable for one mall (run only when a run stops early) | median ${
        fmt(median(s.countClaimableOneMallMs))
      } ms |`,
      `| claim_due_connections, one batch of all ${int(s.due)} due rows (claimed ${
        int(s.batchClaimed)
      }) | median ${fmt(median(s.batchClaimMs))} ms of ${s.batchClaimMs.length} tries |`,
      `| claim_due_connections limit 1, one at a time until none is left (${
        int(s.singleClaims)
      } calls, committed, as one worker does) | ${fmt(s.singleClaimTotalMs)} ms total; ${
        fmt(s.singleClaimMedianMs, 2)
      } ms median, ${fmt(s.singleClaimP95Ms, 2)} ms p95 per claim |`,
      `| the same with ${s.concurrentClaimers} claimers at once (SKIP LOCKED) | ${
        fmt(s.concurrentClaimTotalMs)
      } ms total |`,
      `| the same after VACUUM FULL (every page gets the migration's \`fillfactor = 80\` room) | ` +
        `one batch: median ${fmt(median(s.fillfactor80BatchClaimMs))} ms; limit 1: ${
          fmt(s.fillfactor80SingleClaimMedianMs, 2)
        } ms median per claim |`,
      "",
      `Partial index \`connections_due_idx\` used: ${s.indexUsed ? "yes" : "**no**"}.`,
      "",
      "EXPLAIN (ANALYZE, BUFFERS) of the claim's candidate query, limit 1 (what each claim runs):",
      "",
      "```",
      s.explainSingle,
      "```",
      "",
      `The same for one batch (limit ${int(s.due + 10)}):`,
      "",
      "```",
      s.explainBatch,
      "```",
      "",
      "The plan PostgreSQL used for the EXECUTE inside `claim_due_connections` (auto_explain, " +
        "nested statements, limit 1):",
      "",
      "```",
      s.nestedPlan,
      "```",
    );
  }

  if (r.cap !== null) {
    const c = r.cap;
    push(
      "",
      "## Per-run cap (CAFE24_MAX_CONNECTIONS_PER_RUN)",
      "",
      `A hosted invocation gets ${int(o.cpuLimitMs)} ms of CPU. Keeping it under ` +
        `${int(o.cpuShare * 100)} % of that (${int(c.budgetMs)} ms), with the worst measured ` +
        `CPU per refresh (${fmt(c.cpuPerRefreshMs, 3)} ms, ${c.source}) and the worst fixed cost ` +
        `of an invocation (${fmt(c.fixedMs, 1)} ms):`,
      "",
      `    cap = floor((${int(c.budgetMs)} − ${fmt(c.fixedMs, 1)}) / ${
        fmt(c.cpuPerRefreshMs, 3)
      }) = ${int(c.rawCap)}  →  ${int(c.cap)} (rounded down)`,
      "",
      c.cap >= CONFIG_DEFAULT_MAX_PER_RUN
        ? `The default of ${int(CONFIG_DEFAULT_MAX_PER_RUN)} in ` +
          "`supabase/functions/_shared/platform/config.ts` stays under that share on this machine."
        : `**The default of ${int(CONFIG_DEFAULT_MAX_PER_RUN)} in ` +
          "`supabase/functions/_shared/platform/config.ts` is above this figure.**",
      "",
      "Caveats: UNCONFIRMED whether work after the response (`EdgeRuntime.waitUntil`, which the " +
        "cron path uses through `Prefer: respond-async`) counts against the 2 s CPU limit; the " +
        "Edge Runtime is not plain Deno and its CPU per refresh was not measured; CPU time " +
        "here includes " +
        (r.tlsUsed
          ? "a TLS handshake per refresh."
          : "no TLS (rerun with `--tls`: real Cafe24 is HTTPS, one host per mall)."),
    );
  }

  push("", "## Notes", "");
  for (const note of notes(r)) push(`- ${note}`);
  return lines.join("\n") + "\n";
}

function rssAt(m: RefreshMeasurement, fraction: number): number {
  const at = m.wallMs * fraction;
  const sample = m.rssSamples.reduce<{ atMs: number; rssKb: number } | null>(
    (best, x) => best === null || Math.abs(x.atMs - at) < Math.abs(best.atMs - at) ? x : best,
    null,
  );
  return sample?.rssKb ?? Number.NaN;
}

/**
 * Flat in N means nothing kept per connection: after the largest run's last full GC, the live
 * heap is within 5 MiB of what it was before the passes (or, when no full GC happened before
 * them, after the first full GC during them), whatever V8 reserved meanwhile.
 */
function memoryFlatness(results: RefreshMeasurement[]): { text: string; met: string } {
  // One measurement per N (its last run), smallest N first.
  const sorted = [...new Map([...results].sort((a, b) => a.n - b.n).map((m) => [m.n, m]))
    .values()];
  const parts = sorted.map((m) =>
    `N = ${int(m.n)}: peak RSS ${fmt(m.peakKb / 1024)} MiB, live heap ${
      m.liveHeapMb.length === 0
        ? "n/a (no full GC during the passes)"
        : `${fmt(m.liveHeapMb[0]!.mb)} → ${fmt(m.liveHeapMb.at(-1)!.mb)} MiB`
    }`
  );
  const largest = sorted.at(-1)!;
  const live = largest.liveHeapMb;
  const from = Number.isNaN(largest.idleLiveHeapMb) ? live[0] : {
    atMs: 0,
    mb: largest.idleLiveHeapMb,
  };
  const last = live.at(-1);
  if (from === undefined || last === undefined || last === from) {
    return { text: parts.join("; "), met: "n/a (too few full GCs to compare)" };
  }
  const growth = last.mb - from.mb;
  const share = Math.round(((last.atMs - from.atMs) / largest.wallMs) * 100);
  return {
    text: parts.join("; ") +
      ` (largest run: the live heap grew ${fmt(growth)} MiB over the last ${share} % of its ` +
      `${int(largest.n)} refreshes)`,
    met: growth <= 5 ? "yes (live heap)" : "**no**",
  };
}

function notes(r: Report): string[] {
  const out: string[] = [];
  out.push(
    "Efficiency = ideal N·L/C ÷ measured wall time, where the wall time covers every pass " +
      "(each invocation's census, claims, token requests and writes) from the first request to " +
      "the last answer. A refresh cannot take less than L, so 1.0 is the ceiling.",
  );
  out.push(
    "Statements are counted by pg_stat_statements for the functions' own database role " +
      "(track = top: what the function sent, not what runs inside the SQL functions). Each " +
      "refreshed connection costs one statement that stores its outcome and claims the next " +
      "connection (store_refreshed_tokens or record_refresh_failure with the next claim); each " +
      "invocation adds start_refresh_run, census, the first " +
      "claim of each worker and finish_refresh_run.",
  );
  out.push(
    "CPU is utime + stime of the function process from /proc/<pid>/stat over the passes " +
      "(all threads: V8, the HTTP server and client, postgres.js); the no-op invocation figure " +
      "is the mean over 20 warm calls that find nothing to do. Peak memory is VmHWM.",
  );
  const low = byNAndC(r.refresh).map(medianRun)
    .filter((m) => m.concurrency === 16 && efficiency(m) < 0.85);
  for (const m of low) {
    const per = (x: number) => x / Math.max(1, m.refreshed);
    const beyond = (m.wallMs * m.concurrency) / Math.max(1, m.refreshed) - r.options.latencyMs;
    const dbMs = per(Object.values(m.statements).reduce((a, x) => a + x.execMs, 0));
    const cpu = per(m.functionCpuMs + m.postgresCpuMs + m.benchCpuMs);
    const rate = m.refreshed / (m.wallMs / 1000);
    out.push(
      `Short of 0.85 at N = ${int(m.n)}, C = 16 (median run): each worker spends ${
        fmt(beyond)
      } ms per ` +
        `refresh beyond L. PostgreSQL's own execution time for the refresh's statement ` +
        `(store and claim the next) is ${fmt(dbMs, 2)} ms of it; the rest is the database ` +
        "round trip's client and scheduling delay and the token request's own overhead. All " +
        `parts share ${r.machine.cores} cores here: ${fmt(cpu, 2)} ms of CPU per refresh ` +
        `(function + PostgreSQL + sandbox) at ${int(rate)} refreshes/s keeps ${
          fmt((cpu * rate) / 1000, 2)
        } cores busy, so every round trip waits for a core. On Supabase the database and Cafe24 ` +
        "are elsewhere, but each statement then pays a network round trip instead: one per " +
        "refresh sits on its critical path either way.",
    );
  }
  if (r.scan !== null) {
    const s = r.scan;
    const candidateMs = Number(/Execution Time: ([\d.]+) ms/.exec(s.explainBatch)?.[1]);
    out.push(
      `Scan: finding the due rows is cheap (the candidate query takes ${fmt(candidateMs, 2)} ms ` +
        `for all ${int(s.due)} on the partial index); most of a batch claim's time is ` +
        "writing each claimed row's lease (one new row version each) and reading its token " +
        "from auth_settings. The function claims one row per worker at a time, so what it pays " +
        `is the per-claim figure. The census counts every connection once per run ` +
        `(${fmt(median(s.censusMs))} ms at ${int(s.rows)} rows); with a mall_id filter, as a ` +
        `user's "refresh now" runs it, it reads the mall_id index (${
          fmt(median(s.censusOneMallMs))
        } ms). After VACUUM FULL gives every page the migration's fillfactor room, a claim's ` +
        "lease update stays on its page without new index entries: one batch " +
        `${fmt(median(s.batchClaimMs))} → ${fmt(median(s.fillfactor80BatchClaimMs))} ms, ` +
        `one claim ${fmt(s.singleClaimMedianMs, 2)} → ${
          fmt(s.fillfactor80SingleClaimMedianMs, 2)
        } ms.`,
    );
  }
  if (r.cap !== null) {
    out.push(
      `At the default cap of ${int(CONFIG_DEFAULT_MAX_PER_RUN)} connections, one invocation ` +
        `would need about ${
          fmt((CONFIG_DEFAULT_MAX_PER_RUN * r.cap.cpuPerRefreshMs + r.cap.fixedMs) / 1000, 1)
        } s of CPU at the measured rate, against a hosted limit of ${
          fmt(r.options.cpuLimitMs / 1000, 1)
        } s.`,
    );
  }
  const peak = Math.max(...r.refresh.map((m) => m.peakKb)) / 1024;
  const liveMax = Math.max(0, ...r.refresh.flatMap((m) => m.liveHeapMb.map((x) => x.mb)));
  if (r.refresh.length > 0) {
    out.push(
      `Peak RSS of the plain-Deno function process reached ${fmt(peak)} MiB, of which about ` +
        `${fmt(Math.min(...r.refresh.map((m) => m.idleRssKb)) / 1024)} MiB is the idle runtime; ` +
        "hosted functions have 256 MB, and whether that limit counts RSS or the isolate's heap " +
        "on the Edge Runtime is UNCONFIRMED." +
        (liveMax > 0 ? ` The live heap after full GCs never exceeded ${fmt(liveMax)} MiB.` : ""),
    );
  }
  const reuses = r.refresh.reduce(
    (a, m) => a + m.deadTokenReuses + m.concurrentRefreshViolations,
    0,
  );
  out.push(
    reuses === 0
      ? "The sandbox saw no dead-token reuse and no two concurrent refreshes of one mall in any pass."
      : `**The sandbox saw ${reuses} dead-token reuses or concurrent refreshes: investigate.**`,
  );
  out.push(
    "The functions connect to PostgreSQL directly (one local server, no pooler); on Supabase " +
      "each statement also pays the network round trip to the database, which is why the " +
      "statement count per refresh matters.",
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    const doc = /\/\*\*([\s\S]*?)\*\//.exec(await Deno.readTextFile(new URL(import.meta.url)));
    console.log((doc?.[1] ?? "").replace(/^ \* ?/gm, "").trim());
    return;
  }
  const options = parseOptions(Deno.args);
  const started = performance.now();
  await readClockTicks();
  const machineInfo = await describeMachine();
  // As it was started: `npm run bench -- …` sets npm_lifecycle_event.
  const command = Deno.env.get("npm_lifecycle_event") === "bench"
    ? ["npm run bench", ...(Deno.args.length > 0 ? ["--", ...Deno.args] : [])].join(" ")
    : ["deno run --allow-all bench/refresh_bench.ts", ...Deno.args].join(" ");
  console.log(`refresh bench: ${command}`);
  console.log(
    `machine: ${machineInfo.cores} cores, ${machineInfo.memoryGiB} GiB, ${machineInfo.cpuModel}`,
  );

  let tls: TlsMaterial | null = null;
  let tlsNote: string | null = null;
  if (options.tls) {
    tls = await makeTlsMaterial();
    if (tls === null) {
      tlsNote = "requested with --tls, but openssl is not installed: this run used plain HTTP. " +
        "Install openssl (apt-get install -y openssl) to count TLS.";
      console.warn(`TLS skipped: ${tlsNote}`);
    } else {
      tlsNote = "RSA-2048 certificate for 127.0.0.1 from a CA made by openssl for this run; the " +
        "function process trusts it through DENO_CERT.";
    }
  }

  const refresh: RefreshMeasurement[] = [];
  const baseline: BaselineMeasurement[] = [];
  let postgresVersion = "PostgreSQL";
  try {
    for (const n of options.sizes) {
      const db = await startBenchDatabase();
      const sandbox = await startCafe24Sandbox({
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        seed: 1,
        latencyMs: options.latencyMs,
        jitterMs: options.jitterMs,
        quiet: true,
        closeConnections: !options.keepAlive,
        ...(tls === null ? {} : { tls: { cert: tls.cert, key: tls.key } }),
      });
      try {
        const [{ version }] = await db.sql<[{ version: string }]>`select version()`;
        postgresVersion = version.split(" on ")[0] ?? version;
        console.log(`\nN = ${n}: seeding ${n} due connections`);
        await seedConnections(db, sandbox, n);
        let first = true;
        for (const c of options.concurrencies) {
          for (let repetition = 1; repetition <= options.repeat; repetition++) {
            if (!first) await makeAllDue(db);
            first = false;
            console.log(
              `N = ${n}, C = ${c}, run ${repetition}/${options.repeat}: refresh passes through ` +
                "the function…",
            );
            const m = await measureRefresh(db, sandbox, options, tls, n, c, repetition);
            refresh.push(m);
            console.log(
              `  ${m.refreshed} refreshed in ${
                fmt(m.wallMs / 1000, 2)
              } s over ${m.passes} pass(es): ` +
                `${int(m.refreshed / (m.wallMs / 1000))}/s, efficiency ${
                  fmt(m.idealMs / m.wallMs, 2)
                }, ${fmt(m.statementsTotal / Math.max(1, m.refreshed), 2)} statements and ${
                  fmt(m.functionCpuMs / Math.max(1, m.refreshed), 2)
                } ms CPU per refresh, peak ${fmt(m.peakKb / 1024)} MiB`,
            );
          }
        }
        if (n <= options.baselineMax) {
          console.log(`N = ${n}: baseline (the seed's approach, sequential)…`);
          const b = await measureBaseline(db, sandbox, tls, n);
          baseline.push(b);
          console.log(
            `  ${b.refreshed} refreshed in ${fmt(b.wallMs / 1000, 2)} s (${b.failed} failed)`,
          );
        }
      } finally {
        await sandbox.close();
        await db.stop();
      }
    }

    let scan: ScanMeasurement | null = null;
    if (options.scanRows > 0) {
      console.log(`\nscan cost: ${options.scanRows} connections, ${options.scanDuePercent} % due…`);
      scan = await measureScan(options, Math.max(...options.concurrencies));
      console.log(
        `  census ${fmt(median(scan.censusMs))} ms; batch claim of ${scan.due}: ${
          fmt(median(scan.batchClaimMs))
        } ms; limit-1 claims: ${fmt(scan.singleClaimMedianMs, 2)} ms each, ${
          fmt(scan.singleClaimTotalMs)
        } ms total; index used: ${scan.indexUsed}`,
      );
    }

    const cap = refresh.length === 0 ? null : deriveCap(refresh, options);
    if (cap !== null) {
      console.log(
        `\nper-run cap: ${fmt(cap.cpuPerRefreshMs, 3)} ms CPU per refresh, ${
          fmt(cap.fixedMs, 1)
        } ms per invocation → CAFE24_MAX_CONNECTIONS_PER_RUN ≤ ${cap.cap} keeps an invocation ` +
          `under ${int(cap.budgetMs)} ms of CPU` +
          (cap.cap < CONFIG_DEFAULT_MAX_PER_RUN
            ? ` (LOWER than the default ${CONFIG_DEFAULT_MAX_PER_RUN} in config.ts: report it)`
            : ` (the default ${CONFIG_DEFAULT_MAX_PER_RUN} in config.ts is within it)`),
      );
    }
    const report: Report = {
      machine: { ...machineInfo, postgres: postgresVersion },
      command,
      date: new Date().toISOString(),
      options,
      tlsUsed: tls !== null,
      tlsNote,
      refresh,
      baseline,
      scan,
      cap,
      totalMs: performance.now() - started,
    };
    const text = renderReport(report);
    await Deno.writeTextFile(options.out, text);
    console.log(`\n${text}`);
    console.log(`written to ${options.out}`);
  } finally {
    if (tls !== null) await Deno.remove(tls.dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
