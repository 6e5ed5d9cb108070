/**
 * STAND-IN for pg_net's background worker (pg_net is not installed on these machines).
 *
 * pg_net's `net.http_post`/`net.http_get`/`net.http_delete` only insert into
 * `net.http_request_queue`; a background worker picks up the COMMITTED rows, sends them, and writes
 * `net._http_response` with the same id. This module plays that worker against a database prepared
 * with local/supabase/stand_ins.sql:
 *
 * - it only sees committed rows (it reads from its own connection), so a rolled-back transaction
 *   sends nothing;
 * - it takes each request with `delete … returning` (skip locked), so one deliverer sends each
 *   request once;
 * - it sends with fetch (method, headers, body), aborts after `timeout_milliseconds`, does not
 *   follow redirects, never retries;
 * - it writes status_code, content_type, headers (jsonb), content (text), timed_out, error_msg.
 *
 * It never prints anything: request headers and bodies carry secrets.
 */
import postgres from "postgres";

export interface NetDelivery {
  id: number;
  url: string;
  status: number | null;
  error: string | null;
}

export interface NetDelivererOptions {
  /** How often the background loop looks for committed requests. Default 100 ms. */
  pollIntervalMs?: number;
  /** Called after each response row is written. Gets no headers or bodies. */
  onResponse?: (r: NetDelivery) => void;
}

export interface NetDeliverer {
  /** Stops polling, waits for requests in flight, closes the connection. Idempotent. */
  stop(): Promise<void>;
  /** Delivers everything queued (committed) now and in flight, waits for the responses to be
   * written, and returns how many requests that was. */
  drain(): Promise<number>;
}

interface QueuedRequest {
  id: string; // bigint
  method: string;
  url: string;
  headers: Record<string, unknown> | null;
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

const BATCH = 50;
const USER_AGENT = "pg_net/0.19 (stand-in)";

export function startNetDeliverer(dbUrl: string, options: NetDelivererOptions = {}): NetDeliverer {
  const pollIntervalMs = options.pollIntervalMs ?? 100;
  const onResponse = options.onResponse;
  const sql = postgres(dbUrl, {
    prepare: false,
    max: 3,
    onnotice: () => {},
    connection: { application_name: "pg_net stand-in worker" },
  });

  const inFlight = new Set<Promise<void>>();
  let takeLock: Promise<unknown> = Promise.resolve();
  let draining = 0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let tickRunning: Promise<void> | null = null;

  /** Takes up to BATCH committed requests, serialized so drain and the poller never interleave. */
  const take = (): Promise<QueuedRequest[]> => {
    const next = takeLock.then(() =>
      sql<QueuedRequest[]>`
        delete from net.http_request_queue q
        where q.id in (
          select id from net.http_request_queue order by id limit ${BATCH} for update skip locked
        )
        returning q.id::text as id, q.method::text as method, q.url, q.headers, q.body,
          q.timeout_milliseconds
      `.then((rows) => [...rows].sort((a, b) => Number(BigInt(a.id) - BigInt(b.id))))
    );
    takeLock = next.catch(() => {});
    return next;
  };

  const deliver = async (req: QueuedRequest): Promise<void> => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers ?? {})) {
      if (value === null || value === undefined) continue;
      headers.set(name, typeof value === "string" ? value : JSON.stringify(value));
    }
    if (!headers.has("user-agent")) headers.set("user-agent", USER_AGENT);

    const controller = new AbortController();
    const started = performance.now();
    const timer = setTimeout(() => controller.abort(), req.timeout_milliseconds);
    let status: number | null = null;
    let contentType: string | null = null;
    let responseHeaders: Record<string, string> | null = null;
    let content: string | null = null;
    let timedOut = false;
    let error: string | null = null;
    try {
      const init: RequestInit = {
        method: req.method.toUpperCase(),
        headers,
        redirect: "manual",
        signal: controller.signal,
      };
      if (req.body !== null) init.body = new Uint8Array(req.body);
      const res = await fetch(req.url, init);
      content = await res.text(); // the timeout covers the whole transfer, as curl's does
      status = res.status;
      contentType = res.headers.get("content-type");
      responseHeaders = Object.fromEntries(res.headers.entries());
    } catch (e) {
      if (controller.signal.aborted) {
        timedOut = true;
        const total = (performance.now() - started).toFixed(3);
        error = `Timeout of ${req.timeout_milliseconds} ms reached. Total time: ${total} ms`;
      } else {
        error = e instanceof Error ? e.message : String(e);
      }
      status = null;
      content = null;
    } finally {
      clearTimeout(timer);
    }

    await sql`
      insert into net._http_response
        (id, status_code, content_type, headers, content, timed_out, error_msg, created)
      values (
        ${req.id}::bigint, ${status}, ${contentType},
        ${responseHeaders === null ? null : sql.json(responseHeaders)},
        ${content}, ${timedOut}, ${error}, now()
      )
    `;
    onResponse?.({ id: Number(req.id), url: req.url, status, error });
  };

  const launch = (rows: QueuedRequest[]): Promise<void>[] =>
    rows.map((row) => {
      const p = deliver(row);
      const tracked = p.catch(() => {}).finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      return p;
    });

  const tick = async () => {
    if (draining > 0 || stopped) return;
    try {
      launch(await take());
    } catch {
      // Database briefly unreachable (e.g. a restart in a fault test): try again next tick. Never
      // print: a failure here could quote request data.
    }
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      tickRunning = tick().finally(() => {
        tickRunning = null;
        schedule();
      });
    }, pollIntervalMs);
  };
  schedule();

  return {
    async drain() {
      if (stopped) throw new Error("drain() after stop()");
      draining++;
      try {
        if (tickRunning) await tickRunning;
        const pending = [...inFlight];
        let count = pending.length;
        await Promise.all(pending);
        for (;;) {
          const rows = await take();
          if (rows.length === 0) break;
          count += rows.length;
          await Promise.all(launch(rows));
        }
        return count;
      } finally {
        draining--;
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      if (tickRunning) await tickRunning;
      await Promise.all([...inFlight]);
      await sql.end({ timeout: 5 });
    },
  };
}
