/**
 * Measuring instruments: the machine, the CPU and memory of processes (from /proc), the
 * statements the functions sent (pg_stat_statements), V8's full GCs, and medians.
 */
import type { TestDatabase } from "../local/postgres/database.ts";
import { FUNCTIONS_ROLE } from "./setup.ts";

export interface Machine {
  /** /proc/loadavg when the bench started: others' work on a shared machine shows here. */
  loadAverage: string;
  cores: number;
  memoryGiB: number;
  cpuModel: string;
  kernel: string;
  deno: string;
  postgres: string;
}

export async function describeMachine(): Promise<Omit<Machine, "postgres">> {
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

export async function readClockTicks(): Promise<void> {
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
export async function cpuMs(pid: number | "self", withChildren = false): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after "(comm)": state is field 3, utime 14, stime 15, cutime 16, cstime 17.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  const ticks = fields[11]! + fields[12]! + (withChildren ? fields[13]! + fields[14]! : 0);
  return (ticks * 1000) / clockTicksPerSecond;
}

export async function memoryKb(pid: number): Promise<{ peakKb: number; rssKb: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return {
    peakKb: Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0),
    rssKb: Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0),
  };
}

/** CPU of the whole PostgreSQL cluster: the postmaster, its live children and reaped ones. */
export async function postgresCpuMs(db: TestDatabase): Promise<number> {
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
// Statements, GCs, statistics
// ---------------------------------------------------------------------------------------------

export async function resetStatementCounts(db: TestDatabase): Promise<void> {
  await db.sql`select pg_stat_statements_reset()`;
}

/** Statements the functions' role sent since the last reset, by the SQL function they call. */
export async function statementCounts(
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

/**
 * Since the last reset: `roundTrips`, the top-level statements the functions' role sent (one
 * client round trip each, BEGIN and COMMIT included); `nested`, statements run inside SQL and
 * PL/pgSQL functions, by any role (a SECURITY DEFINER function's run as its owner). Nested ones are
 * only recorded where pg_stat_statements.track is `all`; under `top` they are 0.
 */
export async function statementTotals(
  db: TestDatabase,
): Promise<{ roundTrips: number; nested: number }> {
  const [row] = await db.sql<[{ round_trips: string | null; nested: string | null }]>`
    select sum(s.calls) filter (where s.toplevel and r.rolname = ${FUNCTIONS_ROLE})::text
             as round_trips,
           sum(s.calls) filter (where not s.toplevel)::text as nested
    from pg_stat_statements s left join pg_roles r on r.oid = s.userid`;
  return { roundTrips: Number(row?.round_trips ?? 0), nested: Number(row?.nested ?? 0) };
}

/** Full GCs in --trace-gc output: `… 5110 ms: [Incremental ]Mark-Compact 17.1 (32.1) -> 13.8
 * (31.6) MB, …` (heap used (committed) before -> after). */
export function fullGcs(lines: string[]): { atMs: number; liveMb: number; committedMb: number }[] {
  const out: { atMs: number; liveMb: number; committedMb: number }[] = [];
  for (const line of lines) {
    const m =
      /\s(\d+) ms: (?:Incremental )?Mark-Compact [\d.]+ \([\d.]+\) -> ([\d.]+) \(([\d.]+)\) MB/
        .exec(line);
    if (m) out.push({ atMs: Number(m[1]), liveMb: Number(m[2]), committedMb: Number(m[3]) });
  }
  return out;
}

export const median = (values: number[]) => quantile(values, 0.5);

export function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
