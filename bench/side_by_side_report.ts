/**
 * The side-by-side table of `npm run bench -- --baseline <ref>` (bench/side_by_side.ts): per side
 * the median over its passes of each per-refresh figure, and new / old. Pure: no I/O.
 */
import { median } from "./measure.ts";
import { fmt } from "./report.ts";
import type { FloorFigures } from "./scenario_floor.ts";

/** The ref's code, this checkout's, and this checkout's with CAFE24_PLAINTEXT_TOKEN_COPY=true. */
export type SideName = "baseline" | "current" | "copy";

/** One pass of one side: what it refreshed and what that cost. */
export interface PassFigures {
  side: SideName;
  /** 1-based pass of this side. */
  pass: number;
  refreshed: number;
  wallMs: number;
  /**
   * utime + stime of every process of the side's cluster during the pass, with
   * pg_stat_statements tracking top-level statements only (its default, and Supabase's).
   */
  postgresCpuMs: number;
  /**
   * The same during the pass's counting run (track = all), scaled to `refreshed`: what counting
   * every nested statement adds.
   */
  countedPostgresCpuMs: number;
  /** Top-level statements plus those run inside SQL functions (the counting run's). */
  statements: number;
  /** Top-level statements the functions' role sent (the counting run's). */
  roundTrips: number;
  /** utime + stime of the side's functions process during the pass. */
  functionCpuMs: number;
}

export interface Figure {
  label: string;
  digits: number;
  baseline: number;
  current: number;
  /** current / baseline (NaN where the baseline is 0 or not a number). */
  ratio: number;
  /** The copy mode's median (NaN without copy-mode passes), and copy / baseline. */
  copy: number;
  copyRatio: number;
}

const perRefresh = (value: number, p: PassFigures) => value / Math.max(1, p.refreshed);

const FIGURES: { label: string; digits: number; of: (p: PassFigures) => number }[] = [
  {
    label: "PostgreSQL CPU per refresh (ms)",
    digits: 3,
    of: (p) => perRefresh(p.postgresCpuMs, p),
  },
  {
    label: "… while pg_stat_statements counts nested statements (ms)",
    digits: 3,
    of: (p) => perRefresh(p.countedPostgresCpuMs, p),
  },
  { label: "statements per refresh", digits: 2, of: (p) => perRefresh(p.statements, p) },
  { label: "round trips per refresh", digits: 2, of: (p) => perRefresh(p.roundTrips, p) },
  {
    label: "function CPU per refresh (ms)",
    digits: 3,
    of: (p) => perRefresh(p.functionCpuMs, p),
  },
  { label: "wall time per pass (s)", digits: 2, of: (p) => p.wallMs / 1000 },
  { label: "refreshed per pass", digits: 0, of: (p) => p.refreshed },
];

/** Each figure's median per side over that side's passes, and new / old. */
export function summarise(passes: PassFigures[]): Figure[] {
  const of = (side: SideName, f: (p: PassFigures) => number) =>
    median(passes.filter((p) => p.side === side).map(f));
  return FIGURES.map(({ label, digits, of: f }) => {
    const baseline = of("baseline", f);
    const current = of("current", f);
    const copy = of("copy", f);
    const over = (value: number) =>
      baseline > 0 && Number.isFinite(value) ? value / baseline : Number.NaN;
    return { label, digits, baseline, current, ratio: over(current), copy, copyRatio: over(copy) };
  });
}

export interface SideBySideRun {
  /** e.g. `` `5393370` = 5393370 (Benchmark flag parsing …) `` */
  baselineLabel: string;
  currentLabel: string;
  command: string;
  date: string;
  machine: string;
  concurrency: number;
  latencyMs: number;
  jitterMs: number;
  /** Per number of malls, the passes in the order they ran, and the floor measured after each
   * round of passes on the current side's database (bench/scenario_floor.ts). */
  sizes: { n: number; passes: PassFigures[]; floors: FloorFigures[] }[];
}

export const SIDE_BY_SIDE_HEADING = "## Side by side";

/** The section (from its `## Side by side` heading on): per N the table and the passes; how. */
export function renderSideBySide(run: SideBySideRun): string {
  const lines: string[] = [
    SIDE_BY_SIDE_HEADING,
    "",
    `- Command: \`${run.command}\` (${run.date})`,
    `- Machine: ${run.machine}`,
    `- Baseline: ${run.baselineLabel}`,
    `- Current: ${run.currentLabel}`,
    `- Scenario: sandbox latency ${run.latencyMs} ± ${run.jitterMs} ms, concurrency ` +
    `${run.concurrency}; each side its own database (its own stand-ins and migrations), its own ` +
    "sandbox and a fresh functions process per pass serving its own supabase/functions; its " +
    "pg_cron jobs off; every mall due at the start of each pass; passes alternated old/new" +
    (run.sizes.some(({ passes }) => passes.some((p) => p.side === "copy"))
      ? "/copy mode (this checkout with `CAFE24_PLAINTEXT_TOKEN_COPY=true`, which also writes " +
        "each new access token into `providers.cafe24`)."
      : "."),
  ];
  for (const { n, passes, floors } of run.sizes) {
    const withCopy = passes.some((p) => p.side === "copy");
    const figures = summarise(passes);
    lines.push(
      "",
      `### ${n.toLocaleString("en-US")} malls due`,
      "",
      `| median of each side's passes | baseline | current | new / old |` +
        (withCopy ? " copy mode | copy / old |" : ""),
      "|---|--:|--:|--:|" + (withCopy ? "--:|--:|" : ""),
    );
    for (const f of figures) {
      lines.push(
        `| ${f.label} | ${fmt(f.baseline, f.digits)} | ${fmt(f.current, f.digits)} | ${
          fmt(f.ratio, 2)
        } |` + (withCopy ? ` ${fmt(f.copy, f.digits)} | ${fmt(f.copyRatio, 2)} |` : ""),
      );
    }
    lines.push(...floorTable(floors, figures[0]!.current, run.concurrency));
    lines.push(
      "",
      "| pass | side | refreshed | wall (s) | PostgreSQL CPU (ms) | … while counting (ms) | " +
        "statements | round trips | function CPU (ms) |",
      "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    );
    for (const p of passes) {
      lines.push(
        `| ${p.pass} | ${p.side} | ${p.refreshed} | ${fmt(p.wallMs / 1000, 2)} | ${
          fmt(perRefresh(p.postgresCpuMs, p), 3)
        } | ${fmt(perRefresh(p.countedPostgresCpuMs, p), 3)} | ${
          fmt(perRefresh(p.statements, p), 2)
        } | ${fmt(perRefresh(p.roundTrips, p), 2)} | ${fmt(perRefresh(p.functionCpuMs, p), 3)} |`,
      );
    }
  }
  lines.push(
    "",
    "Per refresh, in the pass rows too. Each pass is two runs over every mall, each with its own " +
      "functions process: one counts, one measures. PostgreSQL CPU: utime + stime from /proc of " +
      "the side's postmaster, its live children and its reaped ones, over the measuring run, " +
      "where pg_stat_statements tracks top-level statements only (its default, and Supabase's); " +
      '"while counting": the same over the counting run, where it tracks every nested statement ' +
      "too, which adds its own work to each. Statements and round trips: the counting run's " +
      "pg_stat_statements (track = all, reset before the run); round trips are the top-level " +
      "statements of the functions' own role (BEGIN and COMMIT count), statements add those run " +
      "inside SQL and PL/pgSQL functions. Function CPU and wall time: the measuring run's, utime " +
      "+ stime of its functions process. With `--baseline HEAD` the ratios show the noise.",
  );
  return lines.join("\n") + "\n";
}

/**
 * The floor under a refresh's cost (bench/scenario_floor.ts), medians over the rounds, beside the
 * current side's median PostgreSQL CPU per refresh (`currentMs`): nothing when none was measured.
 */
export function floorTable(
  floors: FloorFigures[],
  currentMs: number,
  concurrency: number,
): string[] {
  if (floors.length === 0) return [];
  const roundTrip = median(floors.map((f) => f.roundTripMs));
  const rowWrite = median(floors.map((f) => f.rowWriteMs));
  const ratio = (floor: number) => (floor > 0 ? fmt(currentMs / floor, 2) : "n/a");
  return [
    "",
    `The floor, on the current side's database after each round of passes (median of ${floors.length}): ` +
    `the least a refresh could send, paced like a pass (${concurrency} workers over one ` +
    "connection, each waiting one token request's latency before each statement), PostgreSQL CPU " +
    "per statement.",
    "",
    "| per refresh | PostgreSQL CPU (ms) | current / floor |",
    "|---|--:|--:|",
    `| \`select 1\`: the round trip alone | ${fmt(roundTrip, 3)} | ${ratio(roundTrip)} |`,
    "| one-row UPDATE moving a connection's due time, by primary key, synchronous commit, no " +
    `triggers: the write every refresh makes | ${fmt(rowWrite, 3)} | ${ratio(rowWrite)} |`,
  ];
}

/** Where `heading`'s section is in `doc`'s lines: from the heading line to the next heading of
 * the same or a higher level (exclusive), or the end; null when there is no such heading. */
function sectionBounds(lines: string[], heading: string): { start: number; end: number } | null {
  const level = /^#+/.exec(heading)?.[0].length ?? 2;
  const start = lines.findIndex((line) => line.trimEnd() === heading);
  if (start === -1) return null;
  const end = lines.findIndex((line, i) => {
    const m = /^(#+)\s/.exec(line);
    return i > start && m !== null && m[1]!.length <= level;
  });
  return { start, end: end === -1 ? lines.length : end };
}

/** `doc` with its `heading` section replaced by `section`, or `section` appended when there is
 * none; one blank line between sections. */
export function replaceSection(doc: string, heading: string, section: string): string {
  const lines = doc.split("\n");
  const body = section.replace(/\n+$/, "") + "\n";
  const bounds = sectionBounds(lines, heading);
  if (bounds === null) {
    const trimmed = doc.replace(/\n+$/, "");
    return trimmed === "" ? body : `${trimmed}\n\n${body}`;
  }
  const before = lines.slice(0, bounds.start).join("\n").replace(/\n+$/, "");
  const after = lines.slice(bounds.end).join("\n").replace(/^\n+/, "").replace(/\n+$/, "");
  return (before === "" ? "" : `${before}\n\n`) + body + (after === "" ? "" : `\n${after}\n`);
}

/** The `heading` section of `doc` (as replaceSection delimits it), or null. */
export function extractSection(doc: string, heading: string): string | null {
  const lines = doc.split("\n");
  const bounds = sectionBounds(lines, heading);
  if (bounds === null) return null;
  return lines.slice(bounds.start, bounds.end).join("\n").replace(/\n+$/, "") + "\n";
}
