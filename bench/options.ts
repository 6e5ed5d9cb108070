/** The bench's command-line flags (documented in bench/refresh_bench.ts). */
import { parseArgs } from "node:util";

export interface BenchOptions {
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
  /** A git ref to measure side by side with this checkout (bench/side_by_side.ts), or null. */
  baseline: string | null;
  /** With --baseline: put the side-by-side section into --out (otherwise only printed). */
  write: boolean;
}

export function parseOptions(args: string[]): BenchOptions {
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
      "baseline": { type: "string" },
      "write": { type: "boolean", default: false },
    },
  });
  const number = numberOption;
  const list = listOption;
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
    baseline: values.baseline === undefined || values.baseline === "" ? null : values.baseline,
    write: values.write,
  };
}

/** A numeric flag's value, or a RangeError naming the flag and its range. */
export function numberOption(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new RangeError(`--${name} must be a number from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

/** A comma-separated list of whole numbers (empty: none), each checked like numberOption. */
export function listOption(name: string, value: string, min: number, max: number): number[] {
  return value === ""
    ? []
    : value.split(",").map((v) => Math.round(numberOption(name, v.trim(), min, max)));
}

/**
 * The command line as it was started, for the console and the reports (`npm run bench -- …`
 * sets npm_lifecycle_event). Empty arguments and ones with spaces or quotes are quoted.
 */
export function benchCommand(args: string[]): string {
  const quoted = args.map((arg) =>
    /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`
  );
  return Deno.env.get("npm_lifecycle_event") === "bench"
    ? ["npm run bench", ...(quoted.length > 0 ? ["--", ...quoted] : [])].join(" ")
    : ["deno run --allow-all bench/refresh_bench.ts", ...quoted].join(" ");
}
