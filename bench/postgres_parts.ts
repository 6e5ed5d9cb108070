/**
 * PostgreSQL's CPU split by who made it work: each process of the cluster is read from /proc and
 * named by what pg_stat_activity says it is (its backend type and application name).
 *
 * - `functions`: the Edge Functions' connections (application_name CAFE24_FUNCTIONS_APPLICATION,
 *   set by supabase/functions/_shared/platform/db.ts): claims, stores, censuses, run rows;
 * - `pg_cron`: the launcher and its job workers (the tick: its counts and the net.http_post calls),
 *   and a connection whose application_name starts with "pg_cron" (the scale bench's emulated
 *   sub-minute ticks);
 * - `pg_net`: the pg_net stand-in's connection (or the real pg_net's worker);
 * - `background`: autovacuum, the WAL writer, checkpointer, background writer, the postmaster;
 * - `observer`: every other client, i.e. the bench's own queries;
 * - `ended unseen`: CPU of processes that started and ended between two readings (reaped by the
 *   postmaster): pg_cron's job workers (one per job run, a few ms each) above all.
 *
 * A process is named at the first reading that sees it; the CPU it used before that reading is
 * counted for it too, and what it used after the last reading that saw it lands in `ended unseen`.
 */
import type { TestDatabase } from "../local/postgres/database.ts";
import { CAFE24_FUNCTIONS_APPLICATION } from "../supabase/functions/_shared/platform/db.ts";
import { cpuMs } from "./measure.ts";

export const POSTGRES_PARTS = [
  "functions",
  "pg_cron",
  "pg_net",
  "background",
  "observer",
  "ended unseen",
] as const;
export type PostgresPart = typeof POSTGRES_PARTS[number];
export type PostgresCpuByPart = Record<PostgresPart, number>;

function partOf(backendType: string, applicationName: string): PostgresPart {
  if (applicationName === CAFE24_FUNCTIONS_APPLICATION) return "functions";
  if (backendType.startsWith("pg_cron") || applicationName.startsWith("pg_cron")) return "pg_cron";
  if (backendType.startsWith("pg_net") || applicationName.startsWith("pg_net")) return "pg_net";
  if (backendType === "client backend") return "observer";
  return "background";
}

/** Reads the cluster's CPU by part; each call returns the cumulative figures since the first. */
export function postgresPartsReader(db: TestDatabase): () => Promise<PostgresCpuByPart> {
  // By pid and start time: a pid the kernel hands out again is another process.
  const seen = new Map<string, { part: PostgresPart; cpuMs: number; alive: boolean }>();
  return async () => {
    const postmaster = Number(
      (await Deno.readTextFile(`${db.dataDir}/postmaster.pid`)).split("\n")[0],
    );
    const activity = await db.sql<{ pid: number; backend_type: string; app: string }[]>`
      select pid, coalesce(backend_type, '') as backend_type,
        coalesce(application_name, '') as app
      from pg_stat_activity`;
    const named = new Map(activity.map((a) => [a.pid, partOf(a.backend_type, a.app)]));
    for (const entry of seen.values()) entry.alive = false;
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      const pid = Number(entry.name);
      try {
        const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (Number(fields[1]) !== postmaster) continue;
        const key = `${pid}:${fields[19]}`; // field 22, starttime
        const cpu = await cpuMs(pid);
        const known = seen.get(key);
        if (known !== undefined) {
          known.cpuMs = cpu;
          known.alive = true;
        } else {
          // Not in pg_stat_activity (the logger, the stats process of older versions): background.
          seen.set(key, { part: named.get(pid) ?? "background", cpuMs: cpu, alive: true });
        }
      } catch {
        // ended while we looked
      }
    }
    const parts = Object.fromEntries(POSTGRES_PARTS.map((p) => [p, 0])) as PostgresCpuByPart;
    let endedSeen = 0;
    for (const entry of seen.values()) {
      parts[entry.part] += entry.cpuMs;
      if (!entry.alive) endedSeen += entry.cpuMs;
    }
    // The postmaster's own CPU is background; its reaped children's CPU is every ended process's,
    // of which the part seen alive is already counted above.
    parts.background += await cpuMs(postmaster);
    const reaped = await cpuMs(postmaster, true) - await cpuMs(postmaster);
    parts["ended unseen"] += Math.max(0, reaped - endedSeen);
    return parts;
  };
}
