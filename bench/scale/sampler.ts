/**
 * What the bench watches while the schedule runs, every few seconds: refreshes done (the sandbox's
 * count), the backlog as operators see it (cafe24_private.refresh_backlog()), CPU of PostgreSQL,
 * of the function workers and of the bench process (sandbox, dispatcher, pg_net stand-in), the
 * machine's load, and requests waiting for a worker.
 */
import type { Cafe24Sandbox } from "../../local/cafe24_sandbox.ts";
import type { TestDatabase } from "../../local/postgres/database.ts";
import { cpuMs, postgresCpuMs } from "../measure.ts";
import { type PostgresCpuByPart, postgresPartsReader } from "../postgres_parts.ts";
import type { WorkerPool } from "./workers.ts";

export interface Sample {
  /** performance.now() */
  atMs: number;
  wallClock: number;
  refreshes: number;
  dueNow: number;
  overdueS: number;
  accessExpired: number;
  postgresCpuMs: number;
  /** The same CPU by who made PostgreSQL work (bench/postgres_parts.ts). */
  postgresParts: PostgresCpuByPart;
  workersCpuMs: number;
  benchCpuMs: number;
  load1: number;
  waiting: number;
}

export interface Sampler {
  samples: Sample[];
  /** Takes one sample now (also at the start and end of a phase). */
  take(): Promise<Sample>;
  stop(): Promise<void>;
}

async function load1(): Promise<number> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  return Number(text.split(" ")[0] ?? Number.NaN);
}

export function startSampler(
  db: TestDatabase,
  sandbox: Cafe24Sandbox,
  pool: WorkerPool,
  intervalMs: number,
): Sampler {
  const samples: Sample[] = [];
  // Workers that have exited keep their last reading (a pool only grows while it runs).
  const lastCpu = new Map<number, number>();
  const readParts = postgresPartsReader(db);
  const take = async (): Promise<Sample> => {
    const [backlog] = await db.sql<
      { due_now: number; overdue_s: number | null; access_expired: number }[]
    >`
      select due_now::int, extract(epoch from overdue_for)::float8 as overdue_s,
        access_expired::int
      from cafe24_private.refresh_backlog()`;
    let workersCpuMs = 0;
    for (const pid of pool.pids()) {
      const cpu = await cpuMs(pid).catch(() => lastCpu.get(pid) ?? 0);
      lastCpu.set(pid, cpu);
      workersCpuMs += cpu;
    }
    const sample: Sample = {
      atMs: performance.now(),
      wallClock: Date.now(),
      refreshes: sandbox.counters().refreshSuccesses,
      dueNow: backlog!.due_now,
      overdueS: backlog!.overdue_s ?? 0,
      accessExpired: backlog!.access_expired,
      postgresCpuMs: await postgresCpuMs(db),
      postgresParts: await readParts(),
      workersCpuMs,
      benchCpuMs: await cpuMs("self"),
      load1: await load1(),
      waiting: pool.waiting(),
    };
    samples.push(sample);
    return sample;
  };
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    if (stopped) return;
    running = take().catch(() => {});
  }, intervalMs);
  return {
    samples,
    take,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
