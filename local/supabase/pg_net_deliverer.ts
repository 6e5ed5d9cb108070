/**
 * The background worker of the pg_net STAND-IN, for databases where local/supabase/stand_ins.sql
 * had no real pg_net to create. Where the real pg_net runs, its own worker sends the requests and
 * this one only waits for it (drain()), so callers start it the same way in both cases.
 *
 * pg_net's `net.http_post`/`http_get`/`http_delete` only insert into `net.http_request_queue`;
 * the worker takes the COMMITTED rows and writes `net._http_response` with the same ids. Like the
 * real worker (pg_net 0.20), the stand-in:
 *
 * - takes up to `batchSize` (pg_net.batch_size: 200) queued rows in one transaction, sends them
 *   concurrently, and commits their removal and all of their responses together: every row of a
 *   batch shares one `created`, and a fast answer becomes visible only when the slowest request
 *   of its batch is done (a worker that dies mid-batch leaves its requests queued, to be sent
 *   again);
 * - only sees committed rows, so a rolled-back transaction sends nothing;
 * - sends each request as libcurl does for pg_net (local/supabase/pg_net_http.ts: redirects
 *   followed, headers re-sent, the first response's headers kept, empty bodies stored as NULL);
 * - deletes responses older than pg_net.ttl (6 hours) before each batch; never retries.
 *
 * It differs in when it looks: it polls every `pollIntervalMs`, where the real worker is woken by
 * the commit and pauses ~1 s after each non-empty batch.
 *
 * It never prints anything: request headers and bodies carry secrets.
 */
import postgres from "postgres";
import { realExtensions } from "../postgres/database.ts";
import { type PgNetOutcome, sendLikePgNet } from "./pg_net_http.ts";

export interface NetDelivererOptions {
  /** How often the stand-in looks for committed requests. Default 100 ms. */
  pollIntervalMs?: number;
  /** Requests taken and answered per transaction. Default 200, as pg_net.batch_size. */
  batchSize?: number;
}

/** Who sends the queued requests: this stand-in, or the real pg_net's background worker. */
export type NetWorker = "stand-in" | "pg_net";

export interface NetDeliverer {
  /** Which worker sends this database's requests. */
  worker(): Promise<NetWorker>;
  /** Resolves once every request committed before the call has its `net._http_response` row,
   * whichever worker sends them. */
  drain(): Promise<void>;
  /** Stops polling, waits for the batch in flight, closes the connection. Idempotent. */
  stop(): Promise<void>;
}

interface QueuedRequest {
  id: string; // bigint
  method: string;
  url: string;
  header_lines: (string | null)[];
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

const DEFAULT_BATCH_SIZE = 200;
const RESPONSE_TTL = "6 hours";
/** The real worker pauses up to a second after a batch; on top of the requests' own timeouts. */
const REAL_WORKER_SLACK_MS = 15_000;

export function startNetDeliverer(dbUrl: string, options: NetDelivererOptions = {}): NetDeliverer {
  const pollIntervalMs = options.pollIntervalMs ?? 100;
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const sql = postgres(dbUrl, {
    prepare: false,
    max: 2,
    onnotice: () => {},
    connection: { application_name: "pg_net stand-in worker" },
  });

  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let tickRunning: Promise<void> | null = null;
  let batchInFlight: Promise<number> | null = null;
  let knownWorker: Promise<NetWorker> | null = null;

  const worker = (): Promise<NetWorker> => {
    knownWorker ??= realExtensions(sql).then((real) => (real.pgNet ? "pg_net" : "stand-in"));
    // A database that was briefly unreachable is asked again next time.
    knownWorker.catch(() => (knownWorker = null));
    return knownWorker;
  };

  const record = (tx: postgres.TransactionSql, id: string, outcome: PgNetOutcome) =>
    outcome.kind === "response"
      ? tx`
        insert into net._http_response
          (id, status_code, content, headers, content_type, timed_out, error_msg)
        values (${id}::bigint, ${outcome.status}, ${outcome.content}, ${tx.json(outcome.headers)},
          ${outcome.contentType}, false, null)`
      : tx`
        insert into net._http_response
          (id, status_code, content, headers, content_type, timed_out, error_msg)
        values (${id}::bigint, null, null, null, null, ${outcome.timedOut}, ${outcome.message})`;

  /** One batch in one transaction; how many requests it answered. */
  const deliverBatch = (): Promise<number> =>
    sql.begin(async (tx) => {
      await tx`
        delete from net._http_response where created < now() - ${RESPONSE_TTL}::interval`;
      const rows = await tx<QueuedRequest[]>`
        delete from net.http_request_queue q
        where q.id in (
          select id from net.http_request_queue order by id limit ${batchSize}
          for update skip locked
        )
        returning q.id::text as id, q.method::text as method, q.url, q.timeout_milliseconds,
          array(select key || ': ' || value from jsonb_each_text(q.headers)) as header_lines,
          q.body`;
      const outcomes = await Promise.all(rows.map((row) =>
        sendLikePgNet({
          method: row.method,
          url: row.url,
          headerLines: row.header_lines.filter((line): line is string => line !== null),
          body: row.body === null ? null : new Uint8Array(row.body),
          timeoutMs: row.timeout_milliseconds,
        })
      ));
      for (const [i, row] of rows.entries()) await record(tx, row.id, outcomes[i]!);
      return rows.length;
    });

  /** Batches never overlap: a second caller shares the one in flight. */
  const batch = (): Promise<number> => {
    batchInFlight ??= deliverBatch().finally(() => (batchInFlight = null));
    return batchInFlight;
  };

  const tick = async () => {
    try {
      if ((await worker()) === "stand-in") await batch();
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

  /** With the real pg_net: wait until its worker has taken (and so answered) every request queued
   * now. It commits a batch's removal from the queue together with the batch's responses. */
  const waitForRealWorker = async () => {
    // Requests inserted into the queue directly only go out after a wake.
    await sql`select net.wake()`;
    const [pending] = await sql<{ last: string | null; longest: number | null }[]>`
      select max(id)::text as last, max(timeout_milliseconds) as longest
      from net.http_request_queue`;
    if (pending?.last == null) return;
    const [up] = await sql<{ up: boolean }[]>`
      select exists (select from pg_stat_activity where backend_type ilike '%pg_net%') as up`;
    if (!up?.up) throw new Error("pg_net's background worker is not running");
    const deadline = Date.now() + (pending.longest ?? 0) + REAL_WORKER_SLACK_MS;
    for (;;) {
      const [left] = await sql<{ waiting: boolean }[]>`
        select exists (
          select from net.http_request_queue where id <= ${pending.last}::bigint
        ) as waiting`;
      if (!left?.waiting) return;
      if (Date.now() > deadline) {
        throw new Error("pg_net's worker did not answer the queued requests in time");
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };

  return {
    worker,
    async drain() {
      if (stopped) throw new Error("drain() after stop()");
      if ((await worker()) === "pg_net") return await waitForRealWorker();
      // The batch in flight may have begun before the caller's commit: finish it, then take
      // batches until one finds nothing.
      if (batchInFlight !== null) await batchInFlight.catch(() => {});
      while ((await batch()) > 0) { /* next batch */ }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      if (tickRunning) await tickRunning;
      if (batchInFlight) await batchInFlight.catch(() => {});
      await sql.end({ timeout: 5 });
    },
  };
}
