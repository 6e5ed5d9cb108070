/**
 * The functions as the platform runs them at scale: each invocation in a worker of its own. A pool
 * of local/functions processes (the same server `npm start` and the tests run), and a dispatcher
 * in front of them in the place of the platform's router: a cafe24-refresh request goes to an idle
 * worker, which stays taken until its run has logged its end (the 202 comes first; the run goes
 * on after it), so a run's CPU budget counts its own work only, as in a hosted worker. When every
 * worker is taken, requests wait in line. Other functions (cafe24-events) go to one more process.
 *
 * Every invocation is recorded: how long it waited for a worker, the worker's CPU from /proc
 * between hand-over and the run's end, and the run's log line (refreshed, cpu_ms, max_connections).
 *
 * With `shared`, there is one worker and every invocation goes to it at once, as `supabase
 * functions serve` runs them: the runs share its CPU (each run's log line says its share), and the
 * /proc figure of one invocation means nothing, so it is not recorded.
 */
import { type FunctionsProcess, spawnFunctions } from "../../local/functions/process.ts";
import { cpuMs } from "../measure.ts";
import { allowedHosts, misdirected } from "../../local/local_access.ts";

/** The fields of a run's `cafe24_refresh_run` log line the bench reads. */
export interface RunLine {
  run_id: string;
  trigger: string;
  refreshed: number;
  failed: number;
  due: number;
  remaining: number;
  duration_ms: number;
  cpu_ms?: number;
  max_connections?: number;
  tick_id?: number;
  interrupted_by?: string;
}

export interface InvocationRecord {
  worker: number;
  /** Date.now() when the request arrived. */
  arrivedAt: number;
  status: number;
  runId: string | null;
  /** performance.now() when the request arrived, was handed to a worker, and the worker freed. */
  arrivedAtMs: number;
  startedAtMs: number;
  endedAtMs: number;
  /** The worker process's CPU (all threads, /proc) from hand-over to the run's end. */
  procCpuMs: number;
  run: RunLine | null;
  /** No end line within RUN_LINE_TIMEOUT_MS: the worker was freed anyway. */
  lost: boolean;
}

export interface WorkerPool {
  /** The dispatcher's origin, e.g. http://127.0.0.1:40123 (the project URL for Vault). */
  url: string;
  size(): number;
  /** Adds workers up to `n` (started in parallel, warmed up). */
  grow(n: number): Promise<void>;
  records: InvocationRecord[];
  /** When each request to another function (cafe24-events) arrived (Date.now()). */
  otherRequests: number[];
  /** Requests waiting for a worker now. */
  waiting(): number;
  pids(): number[];
  close(): Promise<void>;
}

const RUN_LINE_TIMEOUT_MS = 150_000;
// Hop-by-hop headers, and those that no longer describe the body once it is read as text.
const DROPPED_HEADERS = [
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-encoding",
  "content-length",
];

interface Worker {
  index: number;
  process: FunctionsProcess;
  /** Run end lines seen before anyone waited for them. */
  ended: Map<string, RunLine | null>;
  waiters: Map<string, (line: RunLine | null) => void>;
}

function parseRunEnd(line: string): { runId: string; line: RunLine | null } | null {
  if (!line.includes('"cafe24_refresh_run')) return null;
  try {
    const event = JSON.parse(line) as Record<string, unknown>;
    if (typeof event.run_id !== "string") return null;
    if (event.event === "cafe24_refresh_run") {
      return { runId: event.run_id, line: event as unknown as RunLine };
    }
    if (event.event === "cafe24_refresh_run_failed") return { runId: event.run_id, line: null };
  } catch {
    // not a log line
  }
  return null;
}

export async function startWorkerPool(
  env: Record<string, string>,
  size: number,
  warmUp: (origin: string) => Promise<void>,
  { shared = false }: { shared?: boolean } = {},
): Promise<WorkerPool> {
  const workers: Worker[] = [];
  const idle: Worker[] = [];
  const queue: ((worker: Worker) => void)[] = [];
  const records: InvocationRecord[] = [];
  const otherRequests: number[] = [];
  const fullEnv = { ...Deno.env.toObject(), ...env };

  const spawn = async (index: number): Promise<Worker> => {
    const worker: Worker = {
      index,
      process: undefined as unknown as FunctionsProcess,
      ended: new Map(),
      waiters: new Map(),
    };
    worker.process = await spawnFunctions(fullEnv, (line) => {
      const end = parseRunEnd(line);
      if (end === null) return;
      const waiter = worker.waiters.get(end.runId);
      if (waiter) {
        worker.waiters.delete(end.runId);
        waiter(end.line);
      } else {
        worker.ended.set(end.runId, end.line);
      }
    });
    await warmUp(worker.process.origin);
    return worker;
  };

  const misc = await spawn(-1);

  const release = (worker: Worker) => {
    if (shared && idle.length > 0) return;
    const next = queue.shift();
    if (next) next(worker);
    else idle.push(worker);
  };
  const acquire = (): Promise<Worker> => {
    if (shared && idle.length > 0) return Promise.resolve(idle[0]!);
    const worker = idle.pop();
    if (worker) return Promise.resolve(worker);
    return new Promise((resolve) => queue.push(resolve));
  };
  const runEnd = (worker: Worker, runId: string): Promise<RunLine | null | "lost"> => {
    if (worker.ended.has(runId)) {
      const line = worker.ended.get(runId)!;
      worker.ended.delete(runId);
      return Promise.resolve(line);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        worker.waiters.delete(runId);
        resolve("lost");
      }, RUN_LINE_TIMEOUT_MS);
      worker.waiters.set(runId, (line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  };

  const forward = async (origin: string, request: Request, body: ArrayBuffer | null) => {
    const url = new URL(request.url);
    const upstream = await fetch(`${origin}${url.pathname}${url.search}`, {
      method: request.method,
      headers: request.headers,
      body,
    });
    const headers = new Headers(upstream.headers);
    for (const name of DROPPED_HEADERS) headers.delete(name);
    return { status: upstream.status, headers, text: await upstream.text() };
  };

  const handler = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    const body = request.method === "GET" || request.method === "HEAD"
      ? null
      : await request.arrayBuffer();
    if (path !== "/functions/v1/cafe24-refresh") {
      otherRequests.push(Date.now());
      const answer = await forward(misc.process.origin, request, body);
      return new Response(answer.text, { status: answer.status, headers: answer.headers });
    }
    const arrivedAtMs = performance.now();
    const arrivedAt = Date.now();
    const worker = await acquire();
    const startedAtMs = performance.now();
    const cpuBefore = shared ? Number.NaN : await cpuMs(worker.process.pid).catch(() => Number.NaN);
    let answer;
    try {
      answer = await forward(worker.process.origin, request, body);
    } catch {
      release(worker);
      return Response.json({ error: "WORKER_UNAVAILABLE" }, { status: 502 });
    }
    let runId: string | null = null;
    if (answer.status === 202) {
      try {
        runId = (JSON.parse(answer.text) as { run_id?: string }).run_id ?? null;
      } catch {
        runId = null;
      }
    }
    const finish = async (line: RunLine | null | "lost") => {
      const endedAtMs = performance.now();
      const cpuAfter = shared
        ? Number.NaN
        : await cpuMs(worker.process.pid).catch(() => Number.NaN);
      records.push({
        worker: worker.index,
        arrivedAt,
        status: answer.status,
        runId,
        arrivedAtMs,
        startedAtMs,
        endedAtMs,
        procCpuMs: cpuAfter - cpuBefore,
        run: line === "lost" ? null : line,
        lost: line === "lost",
      });
      release(worker);
    };
    if (runId === null) await finish(null);
    else runEnd(worker, runId).then(finish);
    return new Response(answer.text, { status: answer.status, headers: answer.headers });
  };

  const abort = new AbortController();
  // A local server like the others: only requests addressed to 127.0.0.1 or localhost.
  let hosts: ReadonlySet<string> = new Set();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: abort.signal, onListen: () => {} },
    (request) => misdirected(request, hosts) ?? handler(request),
  );
  const port = (server.addr as Deno.NetAddr).port;
  hosts = allowedHosts(port);

  const grow = async (n: number) => {
    if (shared) n = 1;
    const start = workers.length;
    const added = await Promise.all(
      Array.from({ length: Math.max(0, n - start) }, (_, i) => spawn(start + i)),
    );
    for (const worker of added) {
      workers.push(worker);
      release(worker);
    }
  };
  await grow(size);

  return {
    url: `http://127.0.0.1:${port}`,
    size: () => workers.length,
    grow,
    records,
    otherRequests,
    waiting: () => queue.length,
    pids: () => workers.map((w) => w.process.pid),
    async close() {
      abort.abort();
      await server.finished.catch(() => {});
      await Promise.all([...workers, misc].map((w) => w.process.stop(5_000)));
    },
  };
}
