/**
 * The scale benchmark: the real schedule keeping a large fleet fresh on this machine, with time
 * compressed through the token lifetime. Prints progress, writes bench/SCALE.md and its chart
 * (bench/scale.svg); it asserts nothing.
 *
 *   npm run bench -- --scale                   # ≈ 100,000-mall equivalent for 28 min, then the push
 *   npm run bench -- --scale --minutes 10 --push-malls ""     # a short look, no push
 *   (or: deno run --allow-all bench/refresh_bench.ts --scale [flags])
 *
 * What runs: PostgreSQL with the migrations and pg_cron firing the migration's own job (every
 * 20 s, Supabase's default: pg_cron 1.4 here only does minutes, so two more per-minute jobs run
 * the same command after sleeping 20 and 40 s); the pg_net stand-in delivering the requests; each invocation of cafe24-refresh in
 * a local/functions worker process of its own behind a dispatcher (the platform's router); the
 * Cafe24 sandbox over HTTPS with 50 ± 10 ms per token request and a new connection per request.
 *
 * Phases: (1) the pool-size measurement; (2) every mall of the fleet connected at once through
 * the connect flow's SQL, then the schedule alone for --minutes (the first --ramp-minutes are the
 * first wave); (3) the push: more malls connected stage by stage (--push-malls, local fleet sizes),
 * --push-stage-minutes each, with max_parallel_invocations raised to --push-parallel.
 *
 * Flags: --malls 5000  --tick-seconds 20  --compression 20  --minutes 28  --ramp-minutes 6
 *   --push-malls 12000,24000,36000,48000  --push-stage-minutes 5  --push-parallel 150
 *   --workers 16  --push-workers 24  --latency-ms 50  --jitter-ms 10  --no-tls
 *   --pool-sizes 1,2,3,10  --pool-refreshes 600  --out bench/SCALE.md  --chart bench/scale.svg
 *   --shared-process (every invocation to one process, all at once)
 */
import postgres from "postgres";
import { startCafe24Sandbox } from "../../local/cafe24_sandbox.ts";
import { sandboxFunctionEnv } from "../../local/functions/server.ts";
import { startTestDatabase, type TestDatabase } from "../../local/postgres/database.ts";
import { readRefreshTicks } from "../../local/postgres/refresh_ticks.ts";
import { startNetDeliverer } from "../../local/supabase/pg_net_deliverer.ts";
import { describeMachine, readClockTicks } from "../measure.ts";
import { benchCommand } from "../options.ts";
import { BENCH_APP, CLIENT_ID, CLIENT_SECRET, CRON_SECRET, makeTlsMaterial } from "../setup.ts";
import { compressed, countExpiries, massConnect, watchExpiries } from "./fleet.ts";
import { parseScaleOptions } from "./options.ts";
import { measurePools, type PoolMeasurement } from "./pool.ts";
import { type Phase, renderChart, renderScaleReport, type ScaleReport } from "./report.ts";
import { startSampler } from "./sampler.ts";
import { startWorkerPool } from "./workers.ts";

const SAMPLE_INTERVAL_MS = 5_000;

const sleepUntil = (at: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

/** What the sub-minute ticks' connection calls itself: bench/postgres_parts.ts counts it as pg_cron. */
const EMULATED_TICK_APPLICATION = "pg_cron (emulated sub-minute tick)";

/**
 * The schedule's tick. pg_cron before 1.5 only does minutes: the migration's job then runs at the
 * minute, and the ticks between are emulated by running the job's command from here at their
 * second of each minute. (A per-minute job that slept that far into the minute would hold a
 * snapshot open while it sleeps, most of every minute: PostgreSQL could then neither prune nor
 * vacuum the rows each refresh leaves behind, and every claim would walk them. pg_cron 1.5+, as
 * on Supabase, runs '20 seconds' without sleeping.)
 */
async function scheduleTicks(
  db: TestDatabase,
  seconds: number,
): Promise<{ note: string; stop: () => Promise<void> }> {
  const [{ takes }] = await db.sql<[{ takes: boolean }]>`
    select cafe24_private.pg_cron_takes_seconds() as takes`;
  if (seconds % 60 === 0 || takes) {
    await db.sql`select cafe24_private.set_refresh_schedule(tick_seconds => ${seconds})`;
    return { note: `pg_cron runs the job every ${seconds} s`, stop: async () => {} };
  }
  if (60 % seconds !== 0) throw new RangeError("--tick-seconds must divide a minute");
  await db.sql`update cafe24_private.refresh_schedule_settings set tick_seconds = ${seconds}`;
  const offsets: number[] = [];
  for (let at = seconds; at < 60; at += seconds) offsets.push(at);
  const sql = postgres(db.dbUrl, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: EMULATED_TICK_APPLICATION },
  });
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const next = () => {
    const now = Date.now();
    const minute = Math.floor(now / 60_000) * 60_000;
    const at = [...offsets.map((o) => minute + o * 1000), minute + 60_000 + offsets[0]! * 1000]
      .find((t) => t > now)!;
    timer = setTimeout(() => {
      if (stopped) return;
      running = sql`select cafe24_private.invoke_cafe24_refresh()`.catch((error) => {
        console.warn(`emulated tick failed: ${error instanceof Error ? error.message : error}`);
      });
      next();
    }, at - now);
  };
  next();
  return {
    note:
      `every ${seconds} s: pg_cron 1.4 here only does minutes, so the migration's job runs at ` +
      `the minute and the bench runs its command at ${
        offsets.map((o) => `${o} s`).join(" and ")
      } past each minute, as pg_cron 1.5+ (Supabase) runs '${seconds} seconds'`,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
      await sql.end({ timeout: 5 });
    },
  };
}

async function readSettings(db: TestDatabase) {
  const [row] = await db.sql<{ per_invocation_cap: number; max_parallel_invocations: number }[]>`
    select per_invocation_cap, max_parallel_invocations
    from cafe24_private.refresh_schedule_settings`;
  return { cap: row!.per_invocation_cap, parallel: row!.max_parallel_invocations };
}

export async function scaleMain(args: string[]): Promise<void> {
  const options = parseScaleOptions(args);
  const started = Date.now();
  await readClockTicks();
  const machine = await describeMachine();
  const command = benchCommand(["--scale", ...args]);
  console.log(`scale bench: ${command}`);
  console.log(`machine: ${machine.cores} cores, load ${machine.loadAverage}`);
  const time = compressed(options.compression);
  const tls = options.tls ? await makeTlsMaterial() : null;
  if (options.tls && tls === null) console.warn("openssl is missing: the sandbox runs plain HTTP");

  const db = await startTestDatabase({
    // Room for the push's workers, and background workers for the emulated ticks.
    settings: { max_connections: 600, max_worker_processes: 16 },
  });
  const [{ version }] = await db.sql<[{ version: string }]>`select version()`;
  const sandbox = await startCafe24Sandbox({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    seed: 1,
    latencyMs: options.latencyMs,
    jitterMs: options.jitterMs,
    quiet: true,
    closeConnections: true,
    accessTokenLifetimeMs: time.accessTokenLifetimeMs,
    ...(tls === null ? {} : { tls: { cert: tls.cert, key: tls.key } }),
  });
  const env: Record<string, string> = {
    ...sandboxFunctionEnv(db.dbUrl, sandbox, BENCH_APP),
    CAFE24_REFRESH_MARGIN_SECONDS: String(time.refreshMarginS),
    ...(tls === null ? {} : { DENO_CERT: tls.caFile }),
  };
  const cleanups: (() => Promise<unknown>)[] = [
    () => sandbox.close(),
    () => db.stop(),
    ...(tls === null ? [] : [() => Deno.remove(tls.dir, { recursive: true })]),
  ];
  try {
    const defaults = await readSettings(db);
    console.log(`\npool sizes ${options.poolSizes.join(", ")} at 8 token requests in flight:`);
    const pools: PoolMeasurement[] = await measurePools(
      db,
      sandbox,
      env,
      options.poolSizes,
      options.poolRefreshes,
      defaults.cap,
      options.latencyMs,
    );

    await watchExpiries(db);
    await db.sql`
      select cafe24_private.set_refresh_schedule(
        early_window => ${time.earlyWindow}::interval,
        early_min_token_age => ${time.earlyMinTokenAge}::interval,
        first_due_spread => ${time.firstDueSpread}::interval)`;
    const warmUp = async (origin: string) => {
      for (let i = 0; i < 3; i++) {
        const response = await fetch(`${origin}/functions/v1/cafe24-refresh`, {
          method: "POST",
          headers: { "x-cron-secret": CRON_SECRET, "content-type": "application/json" },
          body: JSON.stringify({ trigger: "manual", mall_id: "warmup" }),
        });
        await response.body?.cancel();
      }
    };
    console.log(
      options.sharedProcess
        ? "\nstarting one function process for every invocation…"
        : `\nstarting ${options.workers} function workers…`,
    );
    const pool = await startWorkerPool(env, options.sharedProcess ? 1 : options.workers, warmUp, {
      shared: options.sharedProcess,
    });
    cleanups.unshift(() => pool.close());
    const deliverer = startNetDeliverer(db.dbUrl);
    cleanups.unshift(() => deliverer.stop());
    for (
      const [name, value] of [["cafe24_project_url", pool.url], ["cafe24_cron_secret", CRON_SECRET]]
    ) {
      await db.sql`select vault.create_secret(${value!}, ${name!})`;
    }
    const ticks = await scheduleTicks(db, options.tickSeconds);
    cleanups.unshift(() => ticks.stop());
    const tickNote = ticks.note;
    console.log(`ticks: ${tickNote}`);
    const sampler = startSampler(db, sandbox, pool, SAMPLE_INTERVAL_MS);
    cleanups.unshift(() => sampler.stop());

    const phases: Phase[] = [];
    const collect = async (
      phase: Omit<
        Phase,
        "samples" | "ticks" | "invocations" | "perMinute" | "expiries" | "otherRequests"
      >,
    ): Promise<Phase> => {
      await sampler.take();
      const within = (at: number) => at >= phase.start && at < phase.end;
      const ticks = await readRefreshTicks(
        db.sql,
        db.sql`where ticked_at >= ${new Date(phase.start)} and ticked_at < ${new Date(phase.end)}`,
      );
      const perMinute = new Map<number, number>();
      for (const entry of sandbox.refreshLog()) {
        if (entry.outcome !== "issued" || !within(entry.settledAtMs)) continue;
        const minute = Math.floor(entry.settledAtMs / 60_000);
        perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
      }
      return {
        ...phase,
        samples: sampler.samples.filter((s) =>
          s.wallClock >= phase.start && s.wallClock <= phase.end
        ),
        ticks,
        invocations: pool.records.filter((r) => within(r.arrivedAt)),
        otherRequests: pool.otherRequests.filter(within).length,
        perMinute,
        expiries: await countExpiries(db, new Date(phase.start)),
      };
    };

    // ---- the fleet connects at once, a few seconds after a tick --------------------------------
    await sleepUntil(Math.ceil((Date.now() + 10_000) / 60_000) * 60_000 + 5_000);
    const t0 = Date.now();
    console.log(`\n${new Date(t0).toISOString()}: connecting ${options.malls} malls at once…`);
    await massConnect(db, sandbox, "scale", 0, options.malls);
    await sampler.take();
    const phaseEnd = t0 + options.minutes * 60_000;
    const progress = setInterval(() => {
      const last = sampler.samples.at(-1);
      if (last === undefined) return;
      console.log(
        `  +${((last.wallClock - t0) / 60_000).toFixed(1)} min: ${last.refreshes} refreshed, ` +
          `due now ${last.dueNow}, expired ${last.accessExpired}, load ${last.load1}`,
      );
    }, 60_000);
    cleanups.unshift(() => Promise.resolve(clearInterval(progress)));
    await sleepUntil(phaseEnd);
    phases.push(
      await collect({
        name: "fleet",
        malls: options.malls,
        ...defaults,
        tickSeconds: options.tickSeconds,
        workers: pool.size(),
        start: t0,
        steadyFrom: t0 + options.rampMinutes * 60_000,
        end: phaseEnd,
      }),
    );
    console.log(`phase 1 done: ${JSON.stringify(phases[0]!.expiries)}`);

    const report = async (partial: string | null) => {
      const r: ScaleReport = {
        command,
        date: new Date(started).toISOString(),
        machine: { ...machine, postgres: version.split(" on ")[0] ?? version },
        loadAtEnd: (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" "),
        options,
        time,
        tickNote,
        tls: tls !== null,
        connections: tls === null ? null : (({ tlsConnections, requests }) => ({
          accepted: tlsConnections,
          requests: Object.values(requests).reduce((sum, n) => sum + n, 0),
        }))(sandbox.counters()),
        pools,
        phases,
        t0,
        totalMs: Date.now() - started,
        partial,
      };
      await Deno.writeTextFile(options.chart, renderChart(r));
      const text = renderScaleReport(r);
      await Deno.writeTextFile(options.out, text);
      return text;
    };
    // Written now too, so that a push that breaks something keeps the fleet's figures.
    if (options.pushMalls.length > 0) await report("the push had not finished yet");

    // ---- the push --------------------------------------------------------------------------------
    if (options.pushMalls.length > 0) {
      await db.sql`
        select cafe24_private.set_refresh_schedule(
          max_parallel_invocations => ${options.pushParallel})`;
      console.log(`\npush: ${options.pushWorkers} workers, ${options.pushParallel} invocations`);
      await pool.grow(options.pushWorkers);
      let connected = options.malls;
      for (const target of options.pushMalls) {
        const start = Date.now();
        if (target > connected) {
          console.log(`${new Date(start).toISOString()}: connecting ${target - connected} more`);
          await massConnect(db, sandbox, "push", connected, target);
          connected = target;
        }
        const end = start + options.pushStageMinutes * 60_000;
        await sleepUntil(end);
        const stage = await collect({
          name: `push to ${connected}`,
          malls: connected,
          cap: defaults.cap,
          parallel: options.pushParallel,
          tickSeconds: options.tickSeconds,
          workers: pool.size(),
          start,
          steadyFrom: start,
          end,
        });
        phases.push(stage);
        console.log(`  stage ${connected}: ${JSON.stringify(stage.expiries)}`);
      }
    }
    await sampler.stop();
    const text = await report(null);
    console.log(`\n${text}\nwritten to ${options.out} and ${options.chart}`);
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
  }
}
