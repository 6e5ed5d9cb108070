/** The scale benchmark's flags (documented in bench/scale/main.ts). */
import { parseArgs } from "node:util";
import { listOption, numberOption } from "../options.ts";

export interface ScaleOptions {
  /** Malls connected at once at the start (the local fleet). */
  malls: number;
  /** Real durations are divided by this (token lifetime, margin, schedule windows). */
  compression: number;
  /** The schedule's tick (Supabase's default, 20 s, emulated where pg_cron only does minutes). */
  tickSeconds: number;
  /** Minutes from the mass connect to the end of the first phase. */
  minutes: number;
  /** Minutes counted as ramp-up before steady state (one token lifetime by default). */
  rampMinutes: number;
  /** The push: local fleet sizes, one stage each, added on top of the first phase's malls. */
  pushMalls: number[];
  pushStageMinutes: number;
  /** max_parallel_invocations during the push. */
  pushParallel: number;
  /** Worker processes (one invocation each at a time) in the first phase and in the push. */
  workers: number;
  /**
   * Every cafe24-refresh invocation to one process, all at once (as `supabase functions serve`
   * runs them, and a hosted isolate may): the runs share the process's CPU.
   */
  sharedProcess: boolean;
  pushWorkers: number;
  latencyMs: number;
  jitterMs: number;
  tls: boolean;
  /** Pool sizes measured at the start (8 token requests in flight per run). */
  poolSizes: number[];
  poolRefreshes: number;
  out: string;
  chart: string;
}

export function parseScaleOptions(args: string[]): ScaleOptions {
  const { values } = parseArgs({
    args,
    options: {
      "malls": { type: "string", default: "5000" },
      "tick-seconds": { type: "string", default: "20" },
      "compression": { type: "string", default: "20" },
      "minutes": { type: "string", default: "28" },
      "ramp-minutes": { type: "string", default: "6" },
      "push-malls": { type: "string", default: "12000,24000,36000,48000" },
      "push-stage-minutes": { type: "string", default: "5" },
      "push-parallel": { type: "string", default: "150" },
      "workers": { type: "string", default: "16" },
      "push-workers": { type: "string", default: "24" },
      "latency-ms": { type: "string", default: "50" },
      "jitter-ms": { type: "string", default: "10" },
      "no-tls": { type: "boolean", default: false },
      "shared-process": { type: "boolean", default: false },
      "pool-sizes": { type: "string", default: "1,2,3,10" },
      "pool-refreshes": { type: "string", default: "600" },
      "out": { type: "string", default: "bench/SCALE.md" },
      "chart": { type: "string", default: "bench/scale.svg" },
    },
  });
  const number = numberOption;
  const list = listOption;
  return {
    malls: Math.round(number("malls", values.malls, 1, 1_000_000)),
    compression: number("compression", values.compression, 1, 120),
    tickSeconds: Math.round(number("tick-seconds", values["tick-seconds"], 1, 3600)),
    minutes: number("minutes", values.minutes, 1, 600),
    rampMinutes: number("ramp-minutes", values["ramp-minutes"], 0, 600),
    pushMalls: list("push-malls", values["push-malls"], 1, 1_000_000),
    pushStageMinutes: number("push-stage-minutes", values["push-stage-minutes"], 1, 120),
    pushParallel: Math.round(number("push-parallel", values["push-parallel"], 1, 200)),
    workers: Math.round(number("workers", values.workers, 1, 200)),
    pushWorkers: Math.round(number("push-workers", values["push-workers"], 1, 200)),
    latencyMs: number("latency-ms", values["latency-ms"], 0, 10_000),
    jitterMs: number("jitter-ms", values["jitter-ms"], 0, 10_000),
    tls: !values["no-tls"],
    sharedProcess: values["shared-process"],
    poolSizes: list("pool-sizes", values["pool-sizes"], 1, 64),
    poolRefreshes: Math.round(number("pool-refreshes", values["pool-refreshes"], 0, 100_000)),
    out: values.out,
    chart: values.chart,
  };
}
