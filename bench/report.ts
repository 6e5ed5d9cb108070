/** RESULTS.md from the measurements: targets, tables, the per-run cap and notes. */
import { type Machine, median } from "./measure.ts";
import type { BenchOptions } from "./options.ts";
import type { BaselineMeasurement } from "./scenario_baseline.ts";
import type { RefreshMeasurement } from "./scenario_refresh.ts";
import type { ScanMeasurement } from "./scenario_scan.ts";
import { CONFIG_DEFAULT_MAX_PER_RUN } from "./setup.ts";

export const fmt = (value: number, digits = 1) =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    })
    : "n/a";
export const int = (value: number) => fmt(value, 0);

/** CPU one invocation at the config's default cap would use, at the measured rate. */
function defaultCapCpuMs(cap: CapDerivation): number {
  return CONFIG_DEFAULT_MAX_PER_RUN * cap.cpuPerRefreshMs + cap.fixedMs;
}

export interface CapDerivation {
  cpuPerRefreshMs: number;
  fixedMs: number;
  budgetMs: number;
  rawCap: number;
  cap: number;
  source: string;
}

export function deriveCap(results: RefreshMeasurement[], options: BenchOptions): CapDerivation {
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

export interface Report {
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

type Push = (...lines: string[]) => void;

export function renderReport(r: Report): string {
  const lines: string[] = [];
  const push: Push = (...l) => void lines.push(...l);
  const sections = [
    headerSection,
    targetsSection,
    refreshSection,
    memorySection,
    baselineSection,
    scanSection,
    capSection,
    notesSection,
  ];
  for (const section of sections) section(r, push);
  return lines.join("\n") + "\n";
}

/** The product's time at N: the median run of the fastest concurrency. */
function productWall(r: Report, n: number): number {
  return byNAndC(r.refresh).filter((g) => g[0]!.n === n).map((g) => medianRun(g).wallMs)
    .reduce((a, b) => Math.min(a, b), Infinity);
}

/** The title, the machine, the command and the sandbox's settings. */
function headerSection(r: Report, push: Push): void {
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
    `- Sandbox: token endpoint latency ${r.options.latencyMs} ± ${r.options.jitterMs} ms (uniform), per-mall ` +
      `leaky bucket on (40, 2/s), ${r.tlsUsed ? "HTTPS (self-signed CA via DENO_CERT)" : "HTTP"}` +
      `, ${
        r.options.keepAlive
          ? "keep-alive"
          : "a new connection per request (as per-mall hosts force)"
      }`,
    `- Everything on one machine: the function process, the sandbox (in the bench process) and ` +
      `PostgreSQL share ${r.machine.cores} cores. Total bench time ${fmt(r.totalMs / 1000)} s.`,
  );
  if (r.tlsNote !== null) push(`- TLS: ${r.tlsNote}`);
}

/** The targets and whether this run met them. */
function targetsSection(r: Report, push: Push): void {
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
  const ratios = r.baseline.map((b) => ({ n: b.n, ratio: b.wallMs / productWall(r, b.n) }));
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
      `| claiming the due ${r.options.scanDuePercent} % of ${
        int(s.rows)
      } rows < 50 ms | one batch: ` +
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
}

/** One row per refresh measurement, then the statements each one sent. */
function refreshSection(r: Report, push: Push): void {
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
      } | ${
        fmt((m.wallMs * m.concurrency) / Math.max(1, m.refreshed) - r.options.latencyMs, 1)
      } | ${fmt(per(m.statementsTotal), 2)} | ${fmt(per(m.functionCpuMs), 2)} | ${
        fmt(m.noOpCpuMs, 1)
      } | ${fmt(m.peakKb / 1024)} | ${fmt(per(m.postgresCpuMs), 2)} | ${
        fmt(per(m.benchCpuMs), 2)
      } |`,
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
}

/** The function process's memory over each measurement. */
function memorySection(r: Report, push: Push): void {
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
}

/** The seed's approach against the product's time at the same N. */
function baselineSection(r: Report, push: Push): void {
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
      const best = productWall(r, b.n);
      push(
        `| ${int(b.n)} | ${fmt(b.wallMs / 1000, 2)} | ${int(b.refreshed / (b.wallMs / 1000))} | ${
          fmt(b.statements / Math.max(1, b.refreshed), 2)
        } | ${fmt(best / 1000, 2)} | ${fmt(b.wallMs / best)}× |`,
      );
    }
  }
}

/** Scan cost: census and claims on a large table, with their plans. */
function scanSection(r: Report, push: Push): void {
  if (r.scan !== null) {
    const s = r.scan;
    push(
      "",
      `## Scan cost: ${int(s.rows)} connections, ${int(s.due)} due (${r.options.scanDuePercent} %)`,
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
      "The plan of the claim's candidate statement inside `claim_due_pairs` (auto_explain with " +
        "analyze and buffers, nested statements), limit 1 (what each claim runs):",
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
    );
  }
}

/** The per-run cap derived from the measured CPU. */
function capSection(r: Report, push: Push): void {
  if (r.cap !== null) {
    const c = r.cap;
    push(
      "",
      "## Per-run cap (CAFE24_MAX_CONNECTIONS_PER_RUN)",
      "",
      `A hosted invocation gets ${int(r.options.cpuLimitMs)} ms of CPU. Keeping it under ` +
        `${int(r.options.cpuShare * 100)} % of that (${
          int(c.budgetMs)
        } ms), with the worst measured ` +
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
}

/** How to read the figures, and what stands out in this run. */
function notesSection(r: Report, push: Push): void {
  push("", "## Notes", "");
  for (const note of notes(r)) push(`- ${note}`);
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
    const candidateMs = Number(/duration: ([\d.]+) ms/.exec(s.explainBatch)?.[1]);
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
