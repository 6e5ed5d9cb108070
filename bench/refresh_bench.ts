/**
 * The refresh benchmark: how fast cafe24-refresh works through N due connections
 * through the real function over real HTTP, what each refresh costs (database statements, CPU,
 * memory), how that compares with the seed's approach, and what finding the due rows costs in a
 * large table. Prints figures and writes them to bench/RESULTS.md; it asserts nothing.
 *
 *   npm run bench                         # N = 1,000 and 10,000, L = 50 ± 10 ms, C = 16
 *   npm run bench -- --tls                # the same over HTTPS (what bench/RESULTS.md shows)
 *   npm run bench -- --sizes 1000 --concurrency 8,16 --out /tmp/results.md
 *   npm run bench -- --scale              # the schedule at fleet scale (bench/scale/main.ts)
 *   npm run bench -- --baseline 5393370 --sizes 300   # cost per refresh: that commit vs this
 *   (or: deno run --allow-all bench/refresh_bench.ts [flags])
 *
 * Flags: --sizes 1000,10000  --latency-ms 50  --jitter-ms 10  --concurrency 16 (or a list)
 *   --tls (sandbox over HTTPS, self-signed CA made with openssl, trusted through DENO_CERT)
 *   --keep-alive (reuse connections; default: one per refresh, as per-mall hosts force)
 *   --scan-rows 100000  --scan-due-percent 1  --baseline-max 1000 (0: no baseline)
 *   --repeat 3 (refresh passes per N and C, each with a fresh function process; targets use
 *     the median)  --cpu-limit-ms 2000  --cpu-share 0.5 (for the per-run cap)  --max-passes 20
 *   --out bench/RESULTS.md  --help
 *   --baseline <ref> (only the side-by-side comparison of refresh costs with a git ref, in a
 *     worktree: --repeat passes of each side, alternated; bench/side_by_side.ts) --write (with
 *     --baseline: put its "Side by side" section into --out; otherwise it is only printed)
 *
 * Every run gets a fresh throwaway PostgreSQL (local/postgres/database.ts, with
 * pg_stat_statements preloaded to count statements), the Cafe24 sandbox in this process, and the
 * functions in a child process (local/functions/server.ts) whose CPU and memory are read
 * from /proc. The functions connect as their own role, so their statements are told apart.
 */
// This file runs the measurements in order. The parts, one job each: options.ts (flags),
// setup.ts (database, sandbox, TLS), measure.ts (/proc, pg_stat_statements, GCs, medians),
// scenario_refresh.ts, scenario_baseline.ts and scenario_scan.ts (what is measured), report.ts.
import { describeMachine, median, readClockTicks } from "./measure.ts";
import { benchCommand, parseOptions } from "./options.ts";
import {
  CONFIG_DEFAULT_MAX_PER_RUN,
  makeAllDue,
  makeTlsMaterial,
  seedConnections,
  startBenchDatabase,
  startBenchSandbox,
  type TlsMaterial,
} from "./setup.ts";
import { type BaselineMeasurement, measureBaseline } from "./scenario_baseline.ts";
import { measureRefresh, type RefreshMeasurement } from "./scenario_refresh.ts";
import { measureScan, type ScanMeasurement } from "./scenario_scan.ts";
import { deriveCap, fmt, int, renderReport, type Report } from "./report.ts";
import { runSideBySide } from "./side_by_side.ts";
import { extractSection, replaceSection, SIDE_BY_SIDE_HEADING } from "./side_by_side_report.ts";

async function main(): Promise<void> {
  // `npm run bench -- --scale`: the scale benchmark (bench/scale/main.ts), with its own flags.
  if (Deno.args.includes("--scale")) {
    const { scaleMain } = await import("./scale/main.ts");
    return await scaleMain(Deno.args.filter((arg) => arg !== "--scale"));
  }
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    const doc = /\/\*\*([\s\S]*?)\*\//.exec(await Deno.readTextFile(new URL(import.meta.url)));
    console.log((doc?.[1] ?? "").replace(/^ \* ?/gm, "").trim());
    return;
  }
  const options = parseOptions(Deno.args);
  const started = performance.now();
  await readClockTicks();
  const machineInfo = await describeMachine();
  const command = benchCommand(Deno.args);
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

  if (options.baseline !== null) {
    try {
      return await runSideBySide(options.baseline, {
        options,
        tls,
        command,
        machine: `${machineInfo.cores} cores (${machineInfo.cpuModel}), ${machineInfo.memoryGiB} ` +
          `GiB, load average at start ${machineInfo.loadAverage}`,
      });
    } finally {
      if (tls !== null) await Deno.remove(tls.dir, { recursive: true }).catch(() => {});
    }
  }

  const refresh: RefreshMeasurement[] = [];
  const baseline: BaselineMeasurement[] = [];
  let postgresVersion = "PostgreSQL";
  try {
    for (const n of options.sizes) {
      const db = await startBenchDatabase();
      const sandbox = await startBenchSandbox(options, tls);
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
    // A side-by-side section written by --baseline --write stays (it is a run of its own).
    const kept = extractSection(
      await Deno.readTextFile(options.out).catch(() => ""),
      SIDE_BY_SIDE_HEADING,
    );
    await Deno.writeTextFile(
      options.out,
      kept === null ? text : replaceSection(text, SIDE_BY_SIDE_HEADING, kept),
    );
    console.log(`\n${text}`);
    console.log(`written to ${options.out}`);
  } finally {
    if (tls !== null) await Deno.remove(tls.dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
