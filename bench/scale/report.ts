/** bench/SCALE.md and its chart, from what the scale benchmark measured. */
import { POSTGRES_PARTS, type PostgresPart } from "../postgres_parts.ts";

import { type Machine, median, quantile } from "../measure.ts";
import { fmt, int } from "../report.ts";
import type { RefreshTick } from "../../local/postgres/refresh_ticks.ts";
import { type Compressed, type Expiries, REAL_REFRESH_INTERVAL_S } from "./fleet.ts";
import type { ScaleOptions } from "./options.ts";
import type { PoolMeasurement } from "./pool.ts";
import type { Sample } from "./sampler.ts";
import type { InvocationRecord } from "./workers.ts";

const POSTGRES_PART_LABELS: Record<PostgresPart, string> = {
  functions: "refresh statements (the functions' connections)",
  pg_cron: "pg_cron and the tick's counts",
  pg_net: "pg_net stand-in",
  background: "background processes",
  observer: "the bench's own queries",
  "ended unseen": "processes too short to read (pg_cron job workers)",
};

/** What one phase of the benchmark measured. */
export interface Phase {
  name: string;
  /** Local fleet during the phase. */
  malls: number;
  cap: number;
  parallel: number;
  tickSeconds: number;
  workers: number;
  /** Date.now() bounds; steady state is from steadyFrom to end. */
  start: number;
  steadyFrom: number;
  end: number;
  samples: Sample[];
  ticks: RefreshTick[];
  invocations: InvocationRecord[];
  otherRequests: number;
  /** Refreshes per wall-clock minute (epoch minute → count), from the sandbox's log. */
  perMinute: Map<number, number>;
  expiries: Expiries;
}

export interface ScaleReport {
  command: string;
  date: string;
  machine: Machine;
  loadAtEnd: string;
  options: ScaleOptions;
  time: Compressed;
  /** How the tick was run. */
  tickNote: string;
  tls: boolean;
  /** Over HTTPS: the TLS connections the sandbox accepted, and the requests it answered. */
  connections: { accepted: number; requests: number } | null;
  pools: PoolMeasurement[];
  phases: Phase[];
  /** Date.now() of the mass connect. */
  t0: number;
  totalMs: number;
  /** Why the report is incomplete, when it is. */
  partial: string | null;
}

/** The hosted CPU limit the cap must keep under (Supabase's lower figure). */
const CPU_LIMIT_MS = 200;
const RUN_CPU_BUDGET_MS = 150;

interface Stats {
  median: number;
  p95: number;
  max: number;
}

const stats = (values: number[]): Stats => ({
  median: median(values),
  p95: quantile(values, 0.95),
  max: values.length === 0 ? Number.NaN : Math.max(...values),
});

export interface Figures {
  seconds: number;
  refreshes: number;
  perSecond: number;
  equivalent: number;
  postgresCpuPerRefresh: number;
  /** The same, by who made PostgreSQL work (bench/postgres_parts.ts). */
  postgresPartsPerRefresh: Record<PostgresPart, number>;
  workersCpuPerRefresh: number;
  benchCpuPerRefresh: number;
  /** Share of the machine's cores busy with the three, over the window. */
  cpuShare: { postgres: number; workers: number; bench: number; total: number };
  ticks: number;
  invocationsPerTick: Stats;
  requestsPerTick: number;
  boundHits: number;
  earlyTotal: number;
  refreshedPerInvocation: Stats;
  runCpuMs: Stats;
  procCpuMs: Stats;
  waitMs: Stats;
  invocations: number;
  overBudget: number;
  stoppedEarly: number;
  lost: number;
  failedRequests: number;
  perMinute: number[];
  peakToMean: number;
  backlogMax: number;
  overdueMaxS: number;
  load: { mean: number; max: number };
}

export function figures(phase: Phase, cores: number): Figures {
  const inWindow = phase.samples.filter((s) => s.wallClock >= phase.steadyFrom);
  const first = inWindow[0] ?? phase.samples[0]!;
  const last = phase.samples.at(-1)!;
  const seconds = (last.atMs - first.atMs) / 1000;
  const refreshes = last.refreshes - first.refreshes;
  const perRefresh = (a: number, b: number) => (b - a) / Math.max(1, refreshes);
  const share = (a: number, b: number) => (b - a) / (seconds * 1000 * cores);
  const ticks = phase.ticks.filter((t) => t.ticked_at.getTime() >= phase.steadyFrom);
  const invocations = phase.invocations.filter((r) => r.arrivedAt >= phase.steadyFrom);
  const runs = invocations.filter((r) => r.run !== null);
  const minuteFrom = Math.ceil(phase.steadyFrom / 60_000);
  const minuteTo = Math.floor(phase.end / 60_000);
  const perMinute: number[] = [];
  for (let m = minuteFrom; m < minuteTo; m++) perMinute.push(phase.perMinute.get(m) ?? 0);
  const mean = perMinute.reduce((a, b) => a + b, 0) / Math.max(1, perMinute.length);
  const cpu = {
    postgres: share(first.postgresCpuMs, last.postgresCpuMs),
    workers: share(first.workersCpuMs, last.workersCpuMs),
    bench: share(first.benchCpuMs, last.benchCpuMs),
  };
  const windowMinutes = Math.max(1, ticks.length);
  return {
    seconds,
    refreshes,
    perSecond: refreshes / seconds,
    equivalent: (refreshes / seconds) * REAL_REFRESH_INTERVAL_S,
    postgresCpuPerRefresh: perRefresh(first.postgresCpuMs, last.postgresCpuMs),
    postgresPartsPerRefresh: Object.fromEntries(
      POSTGRES_PARTS.map((p) => [p, perRefresh(first.postgresParts[p], last.postgresParts[p])]),
    ) as Record<PostgresPart, number>,
    workersCpuPerRefresh: perRefresh(first.workersCpuMs, last.workersCpuMs),
    benchCpuPerRefresh: perRefresh(first.benchCpuMs, last.benchCpuMs),
    cpuShare: { ...cpu, total: cpu.postgres + cpu.workers + cpu.bench },
    ticks: ticks.length,
    invocationsPerTick: stats(ticks.map((t) => t.invocations)),
    requestsPerTick: (ticks.reduce((a, t) => a + t.invocations, 0) +
      phase.otherRequests * (ticks.length / Math.max(1, phase.ticks.length))) / windowMinutes,
    boundHits: ticks.filter((t) => t.bound_hit).length,
    earlyTotal: ticks.reduce((a, t) => a + t.early, 0),
    refreshedPerInvocation: stats(runs.map((r) => r.run!.refreshed)),
    runCpuMs: stats(runs.flatMap((r) => r.run!.cpu_ms === undefined ? [] : [r.run!.cpu_ms])),
    procCpuMs: stats(invocations.map((r) => r.procCpuMs).filter(Number.isFinite)),
    waitMs: stats(invocations.map((r) => r.startedAtMs - r.arrivedAtMs)),
    invocations: invocations.length,
    overBudget: runs.filter((r) => (r.run!.cpu_ms ?? 0) >= RUN_CPU_BUDGET_MS).length,
    stoppedEarly:
      runs.filter((r) =>
        r.run!.remaining > 0 && r.run!.refreshed < (r.run!.max_connections ?? Infinity)
      ).length,
    lost: invocations.filter((r) => r.lost).length,
    failedRequests: invocations.filter((r) => r.status !== 202).length,
    perMinute,
    peakToMean: Math.max(0, ...perMinute) / mean,
    backlogMax: Math.max(0, ...inWindow.map((s) => s.dueNow)),
    overdueMaxS: Math.max(0, ...inWindow.map((s) => s.overdueS)),
    load: {
      mean: inWindow.reduce((a, s) => a + s.load1, 0) / Math.max(1, inWindow.length),
      max: Math.max(0, ...inWindow.map((s) => s.load1)),
    },
  };
}

const pct = (share: number) => `${fmt(share * 100, 0)} %`;
const statsText = (s: Stats, digits = 0) =>
  `${fmt(s.median, digits)} / ${fmt(s.p95, digits)} / ${fmt(s.max, digits)}`;

/** Peak-to-mean of refreshes per minute over consecutive windows of `size` minutes. */
function spreadOverTime(perMinute: number[], size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + size <= perMinute.length; i += size) {
    const slice = perMinute.slice(i, i + size);
    const mean = slice.reduce((a, b) => a + b, 0) / size;
    out.push(fmt(Math.max(...slice) / mean, 2));
  }
  return out;
}

/** What held the push back, from what it measured. */
function limitOf(f: Figures, phase: Phase): string {
  const reasons: string[] = [];
  if (f.cpuShare.total >= 0.85) {
    reasons.push(
      `the two cores are saturated (${pct(f.cpuShare.total)} busy: PostgreSQL ${
        pct(f.cpuShare.postgres)
      }, function workers ${pct(f.cpuShare.workers)}, sandbox + dispatcher + pg_net stand-in ${
        pct(f.cpuShare.bench)
      })`,
    );
  }
  if (f.waitMs.max > 1_000) {
    reasons.push(
      `invocations waited up to ${
        fmt(f.waitMs.max / 1000)
      } s for one of the ${phase.workers} worker processes`,
    );
  }
  if (f.boundHits > 0) {
    reasons.push(`${f.boundHits} ticks needed more than ${phase.parallel} invocations`);
  }
  if (f.stoppedEarly > 0) reasons.push(`${f.stoppedEarly} runs stopped at their CPU budget`);
  return reasons.length === 0 ? "nothing: the schedule kept up" : reasons.join("; ");
}

export function renderScaleReport(r: ScaleReport): string {
  const cores = r.machine.cores;
  const [fleet, ...push] = r.phases;
  const f = figures(fleet!, cores);
  const o = r.options;
  const lines: string[] = [];
  const steadyMinutes = (fleet!.end - fleet!.steadyFrom) / 60_000;
  const expired = fleet!.expiries.replacedAfterExpiry + fleet!.expiries.expiredNow;
  const lastWindow = f.perMinute.slice(-8);
  const lastMean = lastWindow.reduce((a, b) => a + b, 0) / Math.max(1, lastWindow.length);
  const lastPeakToMean = Math.max(0, ...lastWindow) / lastMean;
  lines.push(
    "# Scale benchmark: one schedule for a whole fleet",
    "",
    "Produced by `bench/scale/main.ts`; every figure below comes from that run. Rerun with the " +
      "command shown to reproduce on another machine.",
    "",
    ...(r.partial === null ? [] : [`**Incomplete: ${r.partial}.**`, ""]),
    `- Date: ${r.date}; ${fmt(r.totalMs / 60_000, 0)} minutes in all`,
    `- Machine: ${cores} cores (${r.machine.cpuModel}), ${r.machine.memoryGiB} GiB, ` +
      `${r.machine.kernel}; shared with other work: load average ${r.machine.loadAverage} at the ` +
      `start, ${r.loadAtEnd} at the end, ${fmt(f.load.mean, 2)} on average (max ` +
      `${fmt(f.load.max, 2)}) during the steady state`,
    `- Software: Deno ${r.machine.deno}, ${r.machine.postgres}, pg_cron 1.4`,
    `- The tick: ${r.tickNote}`,
    `- Command: \`${r.command}\``,
    `- Cafe24 sandbox: ${o.latencyMs} ± ${o.jitterMs} ms per token request, ` +
      `${r.tls ? "HTTPS" : "plain HTTP"}, a new connection per request (each mall has its own ` +
      "host at Cafe24)" +
      (r.connections === null
        ? ""
        : `: ${fmt(r.connections.accepted, 0)} TLS connections for ${
          fmt(r.connections.requests, 0)
        } requests`),
    "- Everything on this machine: PostgreSQL with the migrations and pg_cron running the " +
      "migration's own job every minute; the pg_net stand-in delivering its requests; " +
      (o.sharedProcess
        ? "every `cafe24-refresh` invocation in one `local/functions` process, all at once (as " +
          "`supabase functions serve` runs them, and as a hosted isolate may: the runs share " +
          "its CPU, and each run's budget counts its share)"
        : "each `cafe24-refresh` invocation in a `local/functions` worker process of its own " +
          "(one run at a time, as a hosted worker runs it, so each run's CPU budget counts its " +
          "own work)") +
      " behind a dispatcher in the platform's place; the sandbox.",
    "",
    "## Time compression",
    "",
    `Every duration of the refresh cycle is divided by ${r.time.factor}: the sandbox issues access ` +
      `tokens for ${fmt(r.time.accessTokenLifetimeMs / 1000, 0)} s (2 h / ${r.time.factor}), the ` +
      `function refreshes them ${r.time.refreshMarginS} s before expiry (30 min / ${r.time.factor}), ` +
      `and the schedule's early window, minimum token age and first-due spread are ` +
      `${r.time.earlyWindow}, ${r.time.earlyMinTokenAge} and ${r.time.firstDueSpread}. ` +
      `The schedule's tick (${fleet!.tickSeconds} s) is not compressed, so each tick carries the ` +
      "work it would carry at full scale.",
    "",
    "**Equivalent fleet = refreshes per second × 5,400 s**: under `eager` a mall with 2-hour " +
      "tokens and the 30-minute margin is refreshed once every 90 minutes, so a schedule that " +
      "sustains R refreshes per second keeps R × 5,400 malls fresh. (The local fleet is refreshed " +
      "a little more often than every 4.5 minutes: the tick's lookahead is not compressed. The " +
      "rate is what counts.)",
    "",
    "## Results",
    "",
    "| target | measured | met |",
    "|---|---|---|",
    `| ≈ 100,000 malls (≈ 18.5 refreshes/s) with the default settings | ${
      int(f.equivalent)
    } malls equivalent: ${fmt(f.perSecond, 2)} refreshes/s sustained by ${
      int(fleet!.malls)
    } local ` +
      `malls (cap ${fleet!.cap}, ${fleet!.parallel} invocations per ${
        fleet!.tickSeconds
      } s tick at most) | ${f.equivalent >= 95_000 ? "yes" : "**no**"} |`,
    `| 0 access tokens expired while their mall was active | ${expired} (${
      fleet!.expiries.replacedAfterExpiry
    } ` +
      `replaced after expiry, ${fleet!.expiries.expiredNow} expired at the end) | ${
        expired === 0 ? "yes" : "**no**"
      } |`,
    `| ≥ 20 minutes of steady state after a mass connect | every mall connected at once, then ` +
      `${
        fmt(steadyMinutes, 0)
      } minutes of steady state after ${o.rampMinutes} minutes of first wave | ${
        steadyMinutes >= 20 ? "yes" : "**no**"
      } |`,
    `| an invocation's CPU under ${CPU_LIMIT_MS} ms | run CPU median / p95 / max ` +
      `${statsText(f.runCpuMs)} ms; whole invocation (/proc, 10 ms ticks) ${
        statsText(f.procCpuMs)
      } ms | ${f.runCpuMs.max < CPU_LIMIT_MS ? "yes" : "**no**"} |`,
    `| load spread evenly by the end | peak-to-mean of refreshes per minute over the last ` +
      `${lastWindow.length} minutes: ${fmt(lastPeakToMean, 2)} (whole steady state ${
        fmt(f.peakToMean, 2)
      }) | ${lastPeakToMean <= 1.5 ? "yes" : "**no**"} |`,
    "",
    `### The fleet: ${int(fleet!.malls)} malls connected at once`,
    "",
    "| figure | value |",
    "|---|---|",
    `| sustained refreshes per second (steady state) | ${fmt(f.perSecond, 2)} (${
      int(f.refreshes)
    } in ${fmt(f.seconds / 60, 1)} min) |`,
    `| equivalent fleet | ${int(f.equivalent)} malls (each local mall refreshed every ${
      fmt(fleet!.malls / f.perSecond, 0)
    } s on average, 5,400 s at full scale) |`,
    `| early refreshes | ${int(f.earlyTotal)} granted, ${
      pct(f.earlyTotal / Math.max(1, f.refreshes))
    } of the refreshes |`,
    `| invocations per tick, median / max | ${fmt(f.invocationsPerTick.median, 0)} / ${
      fmt(f.invocationsPerTick.max, 0)
    } (${f.ticks} ticks; bound hit ${f.boundHits} times) |`,
    `| pg_net requests per tick (cafe24-refresh + cafe24-events) | ${fmt(f.requestsPerTick, 1)} |`,
    `| refreshes per invocation, median / p95 / max | ${statsText(f.refreshedPerInvocation)} (cap ${
      fleet!.cap
    }) |`,
    `| run CPU per invocation (Deno.cpuUsage in the run), median / p95 / max | ${
      statsText(f.runCpuMs)
    } ms; ${f.overBudget} of ${f.invocations} reached the ${RUN_CPU_BUDGET_MS} ms budget |`,
    `| invocation CPU (/proc, hand-over to the run's end), median / p95 / max | ${
      statsText(f.procCpuMs)
    } ms |`,
    `| function CPU per refresh | ${fmt(f.workersCpuPerRefresh, 2)} ms |`,
    `| PostgreSQL CPU per refresh | ${fmt(f.postgresCpuPerRefresh, 2)} ms |`,
    `| … of which | ${
      POSTGRES_PARTS.map((p) =>
        `${POSTGRES_PART_LABELS[p]} ${fmt(f.postgresPartsPerRefresh[p], 2)}`
      )
        .join("; ")
    } ms |`,
    `| sandbox + dispatcher + pg_net stand-in CPU per refresh | ${
      fmt(f.benchCpuPerRefresh, 2)
    } ms |`,
    `| machine busy (of ${cores} cores) | ${pct(f.cpuShare.total)} (PostgreSQL ${
      pct(f.cpuShare.postgres)
    }, functions ${pct(f.cpuShare.workers)}, bench ${pct(f.cpuShare.bench)}) |`,
    `| backlog (due now) max; oldest overdue max | ${int(f.backlogMax)}; ${
      fmt(f.overdueMaxS, 0)
    } s |`,
    `| waiting for a worker, median / max | ${fmt(f.waitMs.median, 0)} / ${
      fmt(f.waitMs.max, 0)
    } ms |`,
    `| invocations failed / lost | ${f.failedRequests} / ${f.lost} |`,
    "",
    `How evenly the load is spread: refreshes per minute over the steady state (` +
      `${f.perMinute.map(int).join(", ")}); peak-to-mean per ${
        Math.round(r.time.accessTokenLifetimeMs / 60_000)
      }-minute window: ${
        spreadOverTime(f.perMinute, Math.round(r.time.accessTokenLifetimeMs / 60_000)).join(" → ")
      }.`,
    "",
    `![backlog and invocations over time](${r.options.chart.replace(/^bench\//, "")})`,
    "",
  );
  if (push.length > 0) {
    lines.push(
      "## The push toward 1,000,000",
      "",
      `More malls connected at once at each stage, ${o.pushStageMinutes} minutes per stage, ` +
        `max_parallel_invocations ${o.pushParallel}, ${
          push[0]!.workers
        } worker processes. A stage ` +
        "starts with its mass connect, so its figures include a first wave.",
      "",
      "| local malls | equivalent (measured) | refreshes/s | invocations per tick, median / max | " +
        "backlog max | oldest overdue | expired | machine busy (PG / functions / bench) | " +
        "run CPU max | waited for a worker, max | what limits it |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
    );
    for (const phase of push) {
      const p = figures(phase, cores);
      const exp = phase.expiries.replacedAfterExpiry + phase.expiries.expiredNow;
      lines.push(
        `| ${int(phase.malls)} | ${int(p.equivalent)} | ${fmt(p.perSecond, 1)} | ${
          fmt(p.invocationsPerTick.median, 0)
        } / ${fmt(p.invocationsPerTick.max, 0)} | ${int(p.backlogMax)} | ${
          fmt(p.overdueMaxS, 0)
        } s | ${exp} | ${pct(p.cpuShare.total)} (${pct(p.cpuShare.postgres)} / ${
          pct(p.cpuShare.workers)
        } / ${pct(p.cpuShare.bench)}) | ${fmt(p.runCpuMs.max, 0)} ms | ${
          fmt(p.waitMs.max / 1000, 1)
        } s | ${limitOf(p, phase)} |`,
      );
    }
    lines.push("");
  }
  lines.push(
    "## Database connections per invocation",
    "",
    `The same ${o.poolRefreshes} refreshes through one function process with 8 token requests in ` +
      `flight and pools of ${o.poolSizes.join(", ")} connections, then four invocations of the ` +
      `schedule's cap (${fleet!.cap}):`,
    "",
    "| pool | refreshed | wall s | refreshes/s | ideal N·L/8 s | function CPU ms / refresh | " +
      `invocation of ${fleet!.cap}, median ms |`,
    "|---|---|---|---|---|---|---|",
    ...r.pools.map((p) =>
      `| ${p.poolSize} | ${p.refreshed} | ${fmt(p.wallMs / 1000, 2)} | ${
        fmt(p.refreshed / (p.wallMs / 1000), 0)
      } | ${fmt(p.idealMs / 1000, 2)} | ${fmt(p.cpuMsPerRefresh, 2)} | ${
        fmt(p.capInvocationMs, 0)
      } |`
    ),
    "",
    "## Notes",
    "",
    o.sharedProcess
      ? "- Run CPU per invocation is the run's share of the one process's CPU (what its budget " +
        "reads: the process's CPU between two readings, split evenly among the runs open then); " +
        "no /proc figure per invocation is possible in one shared process."
      : "- CPU per invocation is the worker process's own: one run at a time per process, so " +
        "`Deno.cpuUsage()` in the run (the figure its CPU budget reads) counts that run only. " +
        "The /proc figure adds the request's handling before the run and is read at 10 ms " +
        "resolution.",
    '- PostgreSQL CPU is every process of the cluster; "of which" names them by ' +
      "pg_stat_activity: the functions' connections (claims, stores, censuses, run rows), " +
      "pg_cron (its launcher and the tick's job workers: the tick's counts and net.http_post), " +
      "the pg_net stand-in's connection, background processes (autovacuum, WAL writer, " +
      "checkpointer, postmaster), the bench's own queries, and processes that started and ended " +
      "between two readings (pg_cron's job workers above all). The bench figure includes the " +
      "sandbox's TLS handshakes, which Cafe24 pays in reality.",
    "- Each run of a tick after the first counts only what the due index holds up to its horizon, " +
      "so the per-run census stays small however large the table; the first run counts every row " +
      "once per tick.",
    "",
  );
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// The chart
// ---------------------------------------------------------------------------------------------

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function niceMax(value: number): number {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

/** Two panels over minutes since the mass connect: refreshes per minute, then backlog and
 * invocations per tick. Written by the bench, no dependencies. */
export function renderChart(r: ScaleReport): string {
  const width = 960;
  const left = 70;
  const right = 70;
  const plotW = width - left - right;
  const panelH = 200;
  const top1 = 40;
  const top2 = top1 + panelH + 70;
  const height = top2 + panelH + 60;
  const end = r.phases.at(-1)!.end;
  const minutes = (end - r.t0) / 60_000;
  const x = (at: number) => left + ((at - r.t0) / 60_000 / minutes) * plotW;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];

  // Panel 1: refreshes per minute.
  const perMinute = new Map<number, number>();
  for (const phase of r.phases) for (const [m, n] of phase.perMinute) perMinute.set(m, n);
  const capacity = (p: Phase) => (p.cap * p.parallel * 60) / p.tickSeconds;
  const maxRefresh = niceMax(
    Math.max(
      ...perMinute.values(),
      ...r.phases.map(capacity).filter((c) => c < 3 * Math.max(1, ...perMinute.values())),
    ),
  );
  const y1 = (v: number) => top1 + panelH - (v / maxRefresh) * panelH;
  out.push(
    `<text x="${left}" y="${top1 - 15}" font-weight="bold">Refreshes per minute (bars) and the ` +
      `schedule's capacity per minute (dashed)</text>`,
  );
  const barW = Math.max(1, plotW / minutes - 2);
  for (const [minute, count] of perMinute) {
    const at = minute * 60_000;
    if (at < r.t0 || at >= end) continue;
    out.push(
      `<rect x="${x(at).toFixed(1)}" y="${y1(count).toFixed(1)}" width="${barW.toFixed(1)}" ` +
        `height="${(top1 + panelH - y1(count)).toFixed(1)}" fill="#4e79a7"/>`,
    );
  }
  for (const phase of r.phases) {
    const perMinuteCapacity = capacity(phase);
    if (perMinuteCapacity > maxRefresh) continue;
    out.push(
      `<line x1="${x(phase.start).toFixed(1)}" x2="${x(phase.end).toFixed(1)}" y1="${
        y1(perMinuteCapacity).toFixed(1)
      }" y2="${y1(perMinuteCapacity).toFixed(1)}" stroke="#e15759" stroke-dasharray="6 4"/>`,
    );
  }
  axes(out, left, top1, plotW, panelH, maxRefresh, minutes, "refreshes");

  // Panel 2: backlog (line) and invocations per tick (dots, right axis).
  const samples = r.phases.flatMap((p) => p.samples).sort((a, b) => a.wallClock - b.wallClock);
  const ticks = r.phases.flatMap((p) => p.ticks);
  const maxBacklog = niceMax(Math.max(1, ...samples.map((s) => s.dueNow)));
  const maxInvocations = niceMax(Math.max(1, ...ticks.map((t) => t.invocations)));
  const y2 = (v: number) => top2 + panelH - (v / maxBacklog) * panelH;
  const y2r = (v: number) => top2 + panelH - (v / maxInvocations) * panelH;
  out.push(
    `<text x="${left}" y="${top2 - 15}" font-weight="bold">Backlog: connections due now ` +
      `(line, left) and invocations started per tick (dots, right)</text>`,
  );
  out.push(
    `<polyline fill="none" stroke="#f28e2b" stroke-width="1.5" points="${
      samples.filter((s) => s.wallClock >= r.t0 && s.wallClock <= end)
        .map((s) => `${x(s.wallClock).toFixed(1)},${y2(s.dueNow).toFixed(1)}`).join(" ")
    }"/>`,
  );
  for (const t of ticks) {
    out.push(
      `<circle cx="${x(t.ticked_at.getTime()).toFixed(1)}" cy="${y2r(t.invocations).toFixed(1)}" ` +
        `r="2.5" fill="${t.bound_hit ? "#e15759" : "#59a14f"}"/>`,
    );
  }
  axes(out, left, top2, plotW, panelH, maxBacklog, minutes, "due now");
  for (let i = 0; i <= 4; i++) {
    const v = (maxInvocations * i) / 4;
    out.push(
      `<text x="${left + plotW + 8}" y="${(y2r(v) + 4).toFixed(1)}">${int(v)}</text>`,
    );
  }
  out.push(
    `<text x="${left + plotW + 8}" y="${top2 - 2}">invocations</text>`,
  );

  // Phase boundaries.
  for (const phase of r.phases.slice(1)) {
    const px = x(phase.start).toFixed(1);
    out.push(
      `<line x1="${px}" x2="${px}" y1="${top1}" y2="${
        top2 + panelH
      }" stroke="#999" stroke-dasharray="2 3"/>`,
      `<text x="${Number(px) + 3}" y="${top1 + 12}" fill="#555">${esc(phase.name)}</text>`,
    );
  }
  out.push(
    `<text x="${left + plotW / 2}" y="${height - 15}" text-anchor="middle">minutes since ` +
      `${int(r.phases[0]!.malls)} malls connected at once</text>`,
    "</svg>",
  );
  return out.join("\n") + "\n";
}

function axes(
  out: string[],
  left: number,
  top: number,
  plotW: number,
  panelH: number,
  maxY: number,
  minutes: number,
  label: string,
) {
  out.push(
    `<line x1="${left}" x2="${left + plotW}" y1="${top + panelH}" y2="${
      top + panelH
    }" stroke="#333"/>`,
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + panelH}" stroke="#333"/>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = (maxY * i) / 4;
    const y = top + panelH - (v / maxY) * panelH;
    out.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${y.toFixed(1)}" y2="${
        y.toFixed(1)
      }" stroke="#eee"/>`,
      `<text x="${left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end">${int(v)}</text>`,
    );
  }
  const step = minutes > 40 ? 10 : 5;
  for (let m = 0; m <= minutes; m += step) {
    const x = left + (m / minutes) * plotW;
    out.push(
      `<text x="${x.toFixed(1)}" y="${top + panelH + 16}" text-anchor="middle">${m}</text>`,
    );
  }
  out.push(`<text x="${left - 8}" y="${top - 2}" text-anchor="end">${esc(label)}</text>`);
}
