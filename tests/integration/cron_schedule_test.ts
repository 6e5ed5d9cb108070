/**
 * The schedule: the pg_cron job's own command, its settings, Vault secrets, pg_net (the real one
 * where the PostgreSQL installation ships it, else the stand-in worker delivers the requests),
 * the functions answering 202 and finishing their runs afterwards. Each tick fans out into as many
 * invocations as the due connections need (bounded), the invocations share the lease queue, early
 * refreshes stay within the tick's share, new connections get a jittered first due time, no
 * request goes to a project URL that is malformed, and a redirect is warned about. Also the Vault rights of the call,
 * the migrations' idempotence, an existing auth_settings table, and the history cleanup.
 *
 * The jobs themselves are deactivated: each step runs the job's command when it wants a tick, so
 * that no minute boundary adds a tick of its own.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { signCronCall } from "../../supabase/functions/_shared/platform/signature.ts";
import {
  cafe24Entry,
  connectMall,
  CRON_SECRET,
  type RefreshStack,
  startRefreshStack,
} from "../support/stack.ts";
import { startNetDeliverer } from "../../local/supabase/pg_net_deliverer.ts";
import { installedSupabaseLibraries, startPostgresCluster } from "../../local/postgres/cluster.ts";
import { applyMigrations, applyStandIns } from "../../local/postgres/database.ts";
import { readRefreshTicks, type RefreshTick } from "../../local/postgres/refresh_ticks.ts";
import { startGateway } from "../../local/functions/gateway.ts";
import { waitFor } from "../support/wait.ts";

const MIGRATIONS = new URL("../../supabase/migrations/", import.meta.url);
const JOB_COMMAND = "select cafe24_private.invoke_cafe24_refresh()";

/** Carries a value out of a transaction that must not commit. */
class RolledBack extends Error {
  constructor(readonly value: unknown) {
    super("rolled back");
  }
}

interface TickRun {
  id: string;
  status: string;
  tick_slot: number;
  summary: { refreshed: number; failed: number; remaining: number; scanned: number };
}

/** Runs the job's command on its own connection; returns the tick and the notices raised. */
async function tick(
  dbUrl: string,
  sql: postgres.Sql,
): Promise<{ tick: RefreshTick; notices: string[] }> {
  const notices: string[] = [];
  const client = postgres(dbUrl, {
    prepare: false,
    max: 1,
    onnotice: (n) => notices.push(String(n.message)),
  });
  let id: string;
  try {
    const [row] = await client.unsafe(JOB_COMMAND);
    id = String(Object.values(row!)[0]);
  } finally {
    await client.end();
  }
  const [row] = await readRefreshTicks(sql, sql`where id = ${id}::bigint`);
  assert.ok(row, `tick ${id} is recorded`);
  return { tick: row, notices };
}

/** Waits until `count` runs of the tick have finished; returns them by slot. */
function tickRuns(sql: postgres.Sql, tickId: string, count: number): Promise<TickRun[]> {
  return waitFor(`${count} finished runs of tick ${tickId}`, async () => {
    const runs = await sql<TickRun[]>`
      select id, status, tick_slot, summary from cafe24_private.refresh_runs
      where tick_id = ${tickId}::bigint order by tick_slot`;
    return runs.length === count && runs.every((r) => r.status === "finished") ? runs : null;
  });
}

async function requestCounts(sql: postgres.Sql): Promise<{ queued: number; answered: number }> {
  const [row] = await sql<{ queued: number; answered: number }[]>`
    select (select count(*)::int from net.http_request_queue) as queued,
      (select count(*)::int from net._http_response) as answered`;
  return row!;
}

async function setVault(sql: postgres.Sql, name: string, value: string): Promise<void> {
  const [updated] = await sql`
    select vault.update_secret(id, ${value}) from vault.secrets where name = ${name}`;
  if (updated === undefined) await sql`select vault.create_secret(${value}, ${name})`;
}

/** Connects `count` malls named prefix01… with tokens due now. */
async function connectDue(stack: RefreshStack, prefix: string, count: number): Promise<string[]> {
  const malls = Array.from(
    { length: count },
    (_, i) => `${prefix}${String(i + 1).padStart(2, "0")}`,
  );
  for (const mall of malls) await connectMall(stack, mall);
  return malls;
}

/** Every cafe24_refresh_run log line of the functions, parsed. */
function runLogLines(outputs: string[][]): Record<string, unknown>[] {
  return outputs.flat().filter((line) => line.includes('"cafe24_refresh_run"')).map((line) =>
    JSON.parse(line) as Record<string, unknown>
  );
}

Deno.test("pg_cron schedule", async (t) => {
  const stack = await startRefreshStack({
    // Every run in one test process shares its CPU clock: the budget is not what is tested here.
    env: { CAFE24_RUN_CPU_BUDGET_MS: "600000", CAFE24_REFRESH_POOL_SIZE: "2" },
    // Token requests take a moment, so the invocations of a tick overlap.
    sandbox: { latencyMs: 40, jitterMs: 20 },
  });
  const { db, sandbox } = stack;
  // Two function processes behind one address, taking turns, as separate workers would.
  const second = await stack.startFunctions();
  const origins = [stack.functions.url, second.url].map((url) => new URL(url).origin);
  let turn = 0;
  const gateway = await startGateway({
    hostname: "127.0.0.1",
    port: 0,
    functionsOrigin: () => origins[turn++ % origins.length]!,
    jwks: () => ({ keys: [] }),
  });
  const deliverer = startNetDeliverer(db.dbUrl);
  const setSchedule = (args: string) =>
    db.sql.unsafe(`select * from cafe24_private.set_refresh_schedule(${args})`);
  try {
    await t.step("the job is registered once, every minute, with its cleanup jobs", async () => {
      const jobs = await db.sql<{ jobname: string; schedule: string; command: string }[]>`
        select jobname, schedule, command from cron.job order by jobname`;
      assert.deepEqual(jobs.map((j) => [j.jobname, j.schedule]), [
        ["cafe24-events", "* * * * *"],
        ["cafe24-oauth-states-cleanup", "41 * * * *"],
        ["cafe24-refresh", "* * * * *"],
        ["cafe24-trim-events", "23 3 * * *"],
        ["cafe24-trim-histories", "17 3 * * *"],
      ]);
      assert.equal(jobs.find((j) => j.jobname === "cafe24-refresh")!.command, JOB_COMMAND);
      await db.sql`
        update cron.job set active = false where jobname in ('cafe24-refresh', 'cafe24-events')`;
    });

    await t.step(
      "settings: one call changes them and the schedule; re-applying every migration keeps them",
      async () => {
        const [defaults] = await db.sql`select * from cafe24_private.refresh_schedule_settings`;
        assert.equal(defaults!.per_invocation_cap, 40);
        assert.equal(defaults!.max_parallel_invocations, 15);
        // 20 seconds where pg_cron takes seconds (Supabase's), a minute here (pg_cron 1.4).
        const [{ seconds }] = await db.sql<[{ seconds: boolean }]>`
          select cafe24_private.pg_cron_takes_seconds() as seconds`;
        assert.equal(defaults!.tick_seconds, seconds ? 20 : 60);

        const [changed] = await setSchedule(
          "per_invocation_cap => 7, max_parallel_invocations => 3, tick_seconds => 120, " +
            "early_window => '20 minutes'",
        );
        assert.equal(changed!.per_invocation_cap, 7);
        assert.equal(changed!.early_min_token_age, "00:30:00", "unnamed settings stay");
        const schedule = async () =>
          (await db.sql<{ schedule: string; active: boolean }[]>`
            select schedule, active from cron.job where jobname = 'cafe24-refresh'`)[0]!;
        assert.deepEqual(await schedule(), { schedule: "*/2 * * * *", active: false });

        await assert.rejects(setSchedule("tick_seconds => 61"), /divides an hour/);
        await assert.rejects(setSchedule("per_invocation_cap => 0"), /per_invocation_cap/);
        // pg_cron here is older than 1.5: no sub-minute ticks (Supabase's takes them).
        const [cron] = await db.sql<{ extversion: string }[]>`
          select extversion from pg_extension where extname = 'pg_cron'`;
        if (/^1\.[0-4]/.test(cron!.extversion)) {
          await assert.rejects(setSchedule("tick_seconds => 30"), /needs pg_cron 1\.5/);
        }

        // In order, as `supabase db push` applies them.
        const names: string[] = [];
        for await (const entry of Deno.readDir(MIGRATIONS)) {
          if (entry.name.endsWith(".sql")) names.push(entry.name);
        }
        for (const name of names.sort()) {
          await db.sql.unsafe(await Deno.readTextFile(new URL(name, MIGRATIONS))).simple();
        }
        const jobs = await db.sql<{ n: number }[]>`
          select count(*)::int as n from cron.job group by jobname`;
        assert.ok(jobs.every((j) => j.n === 1), "no job is duplicated");
        const [kept] = await db.sql`select * from cafe24_private.refresh_schedule_settings`;
        assert.deepEqual(
          [kept!.per_invocation_cap, kept!.max_parallel_invocations, kept!.tick_seconds],
          [7, 3, 120],
        );
        assert.equal(kept!.early_window, "00:20:00");
        assert.deepEqual(await schedule(), { schedule: "*/2 * * * *", active: false });

        await setSchedule(
          "per_invocation_cap => 40, max_parallel_invocations => 15, tick_seconds => 60, " +
            "early_window => '45 minutes'",
        );
        assert.deepEqual(await schedule(), { schedule: "* * * * *", active: false });
      },
    );

    await t.step("without Vault secrets the job sends nothing and says why", async () => {
      await connectMall(stack, "shopcron");
      const before = await requestCounts(db.sql);
      const { tick: row, notices } = await tick(db.dbUrl, db.sql);
      assert.ok(notices.some((n) => n.includes("cafe24_project_url")), notices.join("\n"));
      assert.equal(row.due, 1);
      assert.equal(row.outcome, "refused");
      assert.match(row.reason!, /Vault secret cafe24_project_url is missing/);
      assert.equal(row.invocations, 0);
      await deliverer.drain();
      assert.deepEqual(await requestCounts(db.sql), before);
    });

    await t.step("a malformed project URL: a notice naming the problem, nothing sent", async () => {
      await setVault(db.sql, "cafe24_cron_secret", CRON_SECRET);
      const cases: [string, RegExp][] = [
        ["ftp://functions.example", /must start with https:\/\//],
        ["functions.example", /is not an absolute URL/],
        [`${gateway.url}/functions/v1`, /no path, query or fragment/],
        ["https://ref.supabase.co/?x=1", /no path, query or fragment/],
        ["https://ref.supabase.co#top", /no path, query or fragment/],
        ["https://user:pass@ref.supabase.co", /user name or password/],
        ["http://ref.supabase.co", /must use https:\/\//],
        ["https://ref..supabase.co", /valid host/],
        ["https://ref.supabase.co:70000", /port/],
        [" https://ref.supabase.co", /white space/],
      ];
      for (const [url, problem] of cases) {
        await setVault(db.sql, "cafe24_project_url", url);
        const before = await requestCounts(db.sql);
        const { tick: row, notices } = await tick(db.dbUrl, db.sql);
        assert.ok(notices.some((n) => problem.test(n)), `${url}: ${notices.join("\n")}`);
        assert.equal(row.outcome, "refused", url);
        assert.match(row.reason!, problem, url);
        assert.equal(row.invocations, 0, url);
        await deliverer.drain();
        assert.deepEqual(await requestCounts(db.sql), before, `${url}: nothing queued`);
      }
    });

    await t.step(
      "the job's own command reaches the function, which answers 202 and finishes the run",
      async () => {
        // With a trailing slash: an origin all the same.
        await setVault(db.sql, "cafe24_project_url", `${gateway.url}/`);
        const { tick: row } = await tick(db.dbUrl, db.sql);
        assert.deepEqual(
          [row.outcome, row.due, row.invocations, row.per_invocation, row.bound_hit],
          ["sent", 1, 1, 1, false],
        );
        await deliverer.drain();
        const [response] = await db.sql<{ status_code: number; content: string }[]>`
          select status_code, content from net._http_response
          where id = ${row.request_ids![0]!}::bigint`;
        assert.equal(response!.status_code, 202);
        const runId = JSON.parse(response!.content).run_id;
        const [run] = await tickRuns(db.sql, row.id, 1);
        assert.equal(run!.id, runId);
        const [recorded] = await db.sql<{ trigger: string; mode: string; tick_slot: number }[]>`
          select trigger, mode, tick_slot from cafe24_private.refresh_runs where id = ${runId}`;
        assert.deepEqual(recorded, { trigger: "cron", mode: "async", tick_slot: 0 });
        assert.equal(run!.summary.refreshed, 1);
        const [id] = await db.sql<{ id: string }[]>`
          select auth_settings_id as id from cafe24_private.connections where mall_id = 'shopcron'`;
        assert.equal(
          (await cafe24Entry(db, id!.id)).refresh_token,
          sandbox.liveRefreshToken("shopcron"),
        );
        const idle = await tick(db.dbUrl, db.sql);
        assert.deepEqual([idle.tick.outcome, idle.tick.invocations], ["nothing_due", 0]);
      },
    );

    await t.step(
      "a wrong secret in Vault is refused by the function (401) and changes nothing",
      async () => {
        await connectMall(stack, "shopwrong");
        await setVault(db.sql, "cafe24_cron_secret", "not-the-secret");
        const { tick: row } = await tick(db.dbUrl, db.sql);
        await deliverer.drain();
        const [response] = await db.sql<{ status_code: number; content: string }[]>`
          select status_code, content from net._http_response
          where id = ${row.request_ids![0]!}::bigint`;
        assert.equal(response!.status_code, 401);
        assert.deepEqual(JSON.parse(response!.content), { error: "UNAUTHORIZED" });
        await setVault(db.sql, "cafe24_cron_secret", CRON_SECRET);
        const again = await tick(db.dbUrl, db.sql);
        await tickRuns(db.sql, again.tick.id, 1);
      },
    );

    await t.step(
      "the call reads Vault with its owner's rights: EXECUTE on the decrypt function is needed",
      async () => {
        await connectMall(stack, "shopowner");
        // Inside a transaction that is rolled back: the owner change and the queued request too.
        const asOwner = (grantDecrypt: boolean) =>
          db.sql.begin(async (tx) => {
            await tx`create role cafe24_job_owner nologin`;
            // All the call is given, except the decrypt function itself.
            await tx`grant usage on schema vault, cafe24_private, extensions to cafe24_job_owner`;
            await tx`grant select on vault.decrypted_secrets to cafe24_job_owner`;
            await tx`grant select, insert, delete on cafe24_private.project_calls,
              cafe24_private.project_url_refusals to cafe24_job_owner`;
            await tx`grant execute on function cafe24_private.project_url_problem(text),
              cafe24_private.location_header(jsonb) to cafe24_job_owner`;
            if (grantDecrypt) {
              await tx`grant execute on function vault._crypto_aead_det_decrypt(
                bytea, bytea, bigint, bytea, bytea) to cafe24_job_owner`;
            }
            await tx`alter function cafe24_private.call_project_function(text, jsonb, integer)
              owner to cafe24_job_owner`;
            const [row] = await tx.unsafe(JOB_COMMAND);
            const [queued] = await tx<{ invocations: number }[]>`
              select invocations from cafe24_private.refresh_ticks
              where id = ${String(Object.values(row!)[0])}::bigint`;
            throw new RolledBack(queued!.invocations);
          }).catch((e) => {
            if (e instanceof RolledBack) return e.value;
            throw e;
          });
        await assert.rejects(
          asOwner(false),
          /permission denied for function _crypto_aead_det_decrypt/,
        );
        assert.equal(await asOwner(true), 1, "with the grant the job queues its request");
        const { tick: row } = await tick(db.dbUrl, db.sql);
        await tickRuns(db.sql, row.id, 1);
      },
    );

    await t.step(
      "the function honours max_connections within its own CAFE24_MAX_CONNECTIONS_PER_RUN",
      async () => {
        await connectDue(stack, "capped", 5);
        const call = async (server: { url: string }, maxConnections: number) => {
          const response = await fetch(`${server.url}/cafe24-refresh`, {
            method: "POST",
            headers: { "x-cron-secret": CRON_SECRET, "content-type": "application/json" },
            body: JSON.stringify({ trigger: "manual", max_connections: maxConnections }),
          });
          assert.equal(response.status, 200);
          return (await response.json()) as { refreshed: number; remaining: number };
        };
        const two = await call(stack.functions, 2);
        assert.deepEqual([two.refreshed, two.remaining], [2, 3]);
        const small = await stack.startFunctions({ CAFE24_MAX_CONNECTIONS_PER_RUN: "1" });
        const one = await call(small, 50);
        assert.deepEqual([one.refreshed, one.remaining], [1, 2]);
        const rest = await call(stack.functions, 50);
        assert.deepEqual([rest.refreshed, rest.remaining], [2, 0]);
      },
    );

    await t.step(
      "fan-out: one request per cap's worth of due connections; overlapping runs refresh each mall once",
      async () => {
        await setSchedule("per_invocation_cap => 4, max_parallel_invocations => 10");
        const malls = await connectDue(stack, "fanout", 23);
        sandbox.resetCounters();
        const outputFrom = [stack.functions.output.length, second.output.length];
        const { tick: row } = await tick(db.dbUrl, db.sql);
        // ceil(23 / 4) = 6 requests, the 23 split evenly: 4 each (the last takes what is left).
        assert.deepEqual(
          [row.due, row.requested, row.invocations, row.per_invocation, row.bound_hit],
          [23, 23, 6, 4, false],
        );
        await deliverer.drain();
        const responses = await db.sql<{ status_code: number; content: string }[]>`
          select status_code, content from net._http_response
          where id = any(${row.request_ids!}::bigint[])`;
        assert.equal(responses.length, 6);
        assert.ok(responses.every((r) => r.status_code === 202));
        assert.equal(new Set(responses.map((r) => JSON.parse(r.content).run_id)).size, 6);

        const runs = await tickRuns(db.sql, row.id, 6);
        assert.deepEqual(runs.map((r) => r.tick_slot), [0, 1, 2, 3, 4, 5]);
        const [{ overlapping }] = await db.sql<[{ overlapping: number }]>`
          select count(*)::int as overlapping
          from cafe24_private.refresh_runs a join cafe24_private.refresh_runs b
            on a.id < b.id and a.started_at < b.finished_at and b.started_at < a.finished_at
          where a.tick_id = ${row.id}::bigint and b.tick_id = ${row.id}::bigint`;
        assert.ok(overlapping > 0, "the tick's runs ran at the same time");
        assert.ok(runs.every((r) => r.summary.refreshed <= 4), "each run keeps to its cap");
        assert.equal(runs.reduce((sum, r) => sum + r.summary.refreshed, 0), 23);
        const counters = sandbox.counters();
        for (const mall of malls) {
          assert.equal(counters.byMall[mall]?.refreshSuccesses, 1, `${mall}: refreshed once`);
        }
        assert.equal(counters.concurrentRefreshViolations, 0);
        assert.equal(counters.samePairConcurrentRefreshes, 0);
        assert.equal(counters.deadTokenReuses, 0);
        // Both processes served the tick, and every run kept the cap the request carried.
        // Each run logs its line just after it records its end.
        const lines = await waitFor("the six runs' log lines", () => {
          const found = runLogLines([
            stack.functions.output.slice(outputFrom[0]),
            second.output.slice(outputFrom[1]),
          ]).filter((line) => line.tick_id === Number(row.id));
          return found.length === 6 ? found : null;
        });
        assert.ok(lines.every((line) => line.max_connections === 4));
        const [started] = await db.sql<{ runs_started: number }[]>`
          select runs_started from cafe24_private.refresh_ticks where id = ${row.id}::bigint`;
        assert.equal(started!.runs_started, 6);
      },
    );

    await t.step(
      "the bound: no more requests than max_parallel_invocations; the rest waits for the next tick",
      async () => {
        await setSchedule("per_invocation_cap => 2, max_parallel_invocations => 3");
        const malls = await connectDue(stack, "bound", 10);
        sandbox.resetCounters();
        const first = await tick(db.dbUrl, db.sql);
        assert.deepEqual(
          [first.tick.due, first.tick.invocations, first.tick.per_invocation, first.tick.bound_hit],
          [10, 3, 2, true],
        );
        const firstRuns = await tickRuns(db.sql, first.tick.id, 3);
        assert.equal(firstRuns.reduce((sum, r) => sum + r.summary.refreshed, 0), 6);
        const next = await tick(db.dbUrl, db.sql);
        assert.deepEqual(
          [next.tick.due, next.tick.invocations, next.tick.per_invocation, next.tick.bound_hit],
          [4, 2, 2, false],
        );
        await tickRuns(db.sql, next.tick.id, 2);
        const counters = sandbox.counters();
        for (const mall of malls) assert.equal(counters.byMall[mall]?.refreshSuccesses, 1, mall);
        assert.equal(counters.concurrentRefreshViolations, 0);
      },
    );

    await t.step(
      "early refreshes: into spare capacity only, at most the tick's share, old enough tokens, eager only",
      async () => {
        // Every connection so far was refreshed minutes ago and is due in about 90 minutes.
        const [{ active }] = await db.sql<[{ active: number }]>`
          select count(*)::int as active from cafe24_private.connections
          where row_state = 'ok' and status = 'active'`;
        await setSchedule(
          "per_invocation_cap => 5, max_parallel_invocations => 4, early_share_percent => 100, " +
            "early_window => '3 hours', early_min_token_age => '0'",
        );
        sandbox.resetCounters();
        const { tick: row } = await tick(db.dbUrl, db.sql);
        // Nothing is due; the even share of what comes due within the window is
        // ceil(active × 60 s / (60 s + 3 h)) = 1, so one connection is refreshed early.
        assert.equal(row.due, 0);
        assert.equal(row.even_share, Math.ceil((active * 60) / (60 + 3 * 3600)));
        assert.deepEqual([row.early, row.requested, row.invocations], [1, 1, 1]);
        const [run] = await tickRuns(db.sql, row.id, 1);
        assert.equal(run!.summary.refreshed, 1);
        assert.equal(sandbox.counters().refreshSuccesses, 1, "exactly the granted early refresh");

        // No share of the spare capacity for early refreshes: nothing is sent.
        await setSchedule("early_share_percent => 0");
        const none = await tick(db.dbUrl, db.sql);
        assert.deepEqual([none.tick.early, none.tick.outcome], [0, "nothing_due"]);
        // Tokens younger than the minimum age are never refreshed early.
        await setSchedule("early_share_percent => 100, early_min_token_age => '1 hour'");
        const young = await tick(db.dbUrl, db.sql);
        assert.deepEqual([young.tick.early, young.tick.outcome], [0, "nothing_due"]);
        // keep_alive (the policy the last scheduled run recorded) refreshes nothing early.
        await setSchedule("early_min_token_age => '0'");
        await db.sql`
          insert into cafe24_private.refresh_runs (trigger, mode, status, refresh_margin,
            lease_duration, policy, keep_alive_window, token_request_window, started_at)
          values ('cron', 'async', 'finished', '30 minutes', '75 seconds', 'keep_alive',
            '7 days', '24 hours', now() + interval '1 second')`;
        const keepAlive = await tick(db.dbUrl, db.sql);
        assert.deepEqual(
          [keepAlive.tick.policy, keepAlive.tick.early, keepAlive.tick.outcome],
          ["keep_alive", 0, "nothing_due"],
        );
        await db.sql`delete from cafe24_private.refresh_runs where policy = 'keep_alive'`;
        await setSchedule(
          "per_invocation_cap => 40, max_parallel_invocations => 15, early_share_percent => 50, " +
            "early_window => '45 minutes', early_min_token_age => '30 minutes'",
        );
        assert.equal(sandbox.counters().refreshSuccesses, 1);
      },
    );

    await t.step(
      "new pairs (connected, or stored the original app's way) are first due at a jittered time; refreshed ones are not",
      async () => {
        const expiresAt = new Date(Date.now() + 2 * 60 * 60_000);
        const ids: string[] = [];
        for (let i = 1; i <= 30; i++) {
          const mall = `jitter${String(i).padStart(2, "0")}`;
          const tokens = sandbox.issueTokens(mall);
          const [row] = await db.sql<{ id: string }[]>`
            select id from cafe24_private.store_connection(
              ${crypto.randomUUID()}::uuid, ${mall}, ${
            db.sql.json({
              access_token: tokens.accessToken,
              refresh_token: tokens.refreshToken,
              expires_at: expiresAt.toISOString(),
              refresh_token_expires_at: new Date(Date.now() + 14 * 86_400_000).toISOString(),
            })
          })`;
          ids.push(row!.id);
        }
        const rows = await db.sql<{ id: string; due_at: Date; access_expires_at: Date }[]>`
          select auth_settings_id as id, due_at, access_expires_at from cafe24_private.connections
          where auth_settings_id = any(${ids}::uuid[])`;
        for (const row of rows) {
          const pulled = row.access_expires_at.getTime() - row.due_at.getTime();
          assert.ok(pulled >= 0 && pulled <= 60 * 60_000, `pulled ${pulled} ms earlier`);
        }
        assert.ok(new Set(rows.map((r) => r.due_at.getTime())).size >= 25, "spread, not bunched");

        // A row written without the connect flow (the original app's way) is dated by its access
        // token's expiry less Cafe24's 2 hours: just issued, so it is spread the same.
        const plain = await connectMall(stack, "jitterplain", {
          expiresAt: expiresAt.toISOString(),
        });
        const [spread] = await db.sql<{ pulled_ms: number }[]>`
          select extract(epoch from access_expires_at - due_at) * 1000 as pulled_ms
          from cafe24_private.connections where auth_settings_id = ${plain.id}`;
        const pulled = Number(spread!.pulled_ms);
        assert.ok(pulled >= 0 && pulled <= 60 * 60_000, `pulled ${pulled} ms earlier`);

        // A refresh's new tokens are never moved.
        const response = await stack.refresh({ mall_id: "jitter01", force: "true" });
        assert.equal((await response.json()).refreshed, 1);
        const [refreshed] = await db.sql<{ same: boolean }[]>`
          select due_at = access_expires_at as same from cafe24_private.connections
          where mall_id = 'jitter01'`;
        assert.equal(refreshed!.same, true);
      },
    );

    await t.step("a queued call holds a signature, never the cron secret", async () => {
      const queued = await db.sql.begin(async (tx) => {
        const [{ ids }] = await tx<[{ ids: string[] }]>`
          select (cafe24_private.call_project_function(
            'cafe24-refresh', '{"trigger": "cron"}'::jsonb, 1)).request_ids as ids`;
        const rows = await tx<{ headers: Record<string, string>; body: string }[]>`
          select headers, convert_from(body, 'UTF8') as body from net.http_request_queue
          where id = any(${ids}::bigint[])`;
        throw new RolledBack(rows);
      }).catch((e) => {
        if (e instanceof RolledBack) {
          return e.value as { headers: Record<string, string>; body: string }[];
        }
        throw e;
      });
      assert.equal(queued.length, 1);
      const [{ headers, body }] = queued as [{ headers: Record<string, string>; body: string }];
      assert.ok(!JSON.stringify(headers).includes(CRON_SECRET), "the secret is not in the queue");
      const at = Number(headers["x-cron-timestamp"]);
      const nonce = headers["x-cron-nonce"]!;
      assert.match(nonce, /^[0-9a-f-]{36}$/);
      assert.equal(
        headers["x-cron-signature"],
        signCronCall(CRON_SECRET, "cafe24-refresh", at, nonce, body),
      );
    });

    await t.step(
      "a project URL that redirects: recorded and warned about once, the calls go on",
      async () => {
        const trapped: { method: string; secret: string | null; signed: boolean }[] = [];
        const trap = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
          trapped.push({
            method: req.method,
            secret: req.headers.get("x-cron-secret"),
            signed: req.headers.get("x-cron-signature")?.startsWith("v1=") ?? false,
          });
          return Response.json({ ok: true });
        });
        const trapUrl = `http://127.0.0.1:${(trap.addr as Deno.NetAddr).port}`;
        const redirector = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen: () => {} },
          (req) =>
            new Response(null, {
              status: 301,
              headers: { Location: trapUrl + new URL(req.url).pathname },
            }),
        );
        const redirectorUrl = `http://127.0.0.1:${(redirector.addr as Deno.NetAddr).port}`;
        try {
          await connectMall(stack, "shopredirect");
          await setVault(db.sql, "cafe24_project_url", redirectorUrl);
          const first = await tick(db.dbUrl, db.sql);
          assert.deepEqual([first.tick.outcome, first.tick.invocations], ["sent", 1]);
          await deliverer.drain();
          // What pg_net does with a redirect: the POST became a GET carrying every header again.
          // The call is signed, so what reached the other address is a signature, not the secret.
          assert.deepEqual(trapped, [{ method: "GET", secret: null, signed: true }]);

          // What pg_net recorded is only a warning (any role can write those rows): the next
          // tick is sent all the same, and says what was seen.
          const warned = await tick(db.dbUrl, db.sql);
          assert.deepEqual([warned.tick.outcome, warned.tick.invocations], ["sent", 1]);
          assert.ok(
            warned.notices.some((n) =>
              /redirect for a call to cafe24-refresh \(HTTP 200, Location /.test(n)
            ),
            warned.notices.join("\n"),
          );
          await deliverer.drain();
          assert.equal(trapped.length, 2, "the call went out");
          const [refusal] = await db.sql<{ project_url: string; location: string }[]>`
            select project_url, location from cafe24_private.project_url_refusals`;
          assert.deepEqual(refusal, {
            project_url: redirectorUrl,
            location: `${trapUrl}/functions/v1/cafe24-refresh`,
          });
          // Warned once per URL: the next tick goes out without a word.
          const quiet = await tick(db.dbUrl, db.sql);
          assert.equal(quiet.tick.outcome, "sent");
          assert.ok(!quiet.notices.some((n) => n.includes("redirect")), quiet.notices.join("\n"));
          await deliverer.drain();

          // The right URL again: calls go out, and the due mall is refreshed.
          await setVault(db.sql, "cafe24_project_url", gateway.url);
          const fixed = await tick(db.dbUrl, db.sql);
          assert.deepEqual([fixed.tick.outcome, fixed.tick.due], ["sent", 1]);
          const [run] = await tickRuns(db.sql, fixed.tick.id, 1);
          assert.equal(run!.summary.refreshed, 1);
        } finally {
          await trap.shutdown();
          await redirector.shutdown();
        }
      },
    );

    await t.step(
      "the backlog query: what is due now and since when",
      async () => {
        const { id } = await connectMall(stack, "shopbacklog");
        await db.sql`
          update public.auth_settings
          set providers = jsonb_set(providers, '{cafe24,expires_at}',
            to_jsonb(to_char((now() + interval '20 minutes') at time zone 'UTC',
              'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
          where id = ${id}`;
        const [backlog] = await db.sql<
          { due_now: number; oldest_due_since: Date; overdue_for: string }[]
        >`select due_now::int, oldest_due_since, overdue_for::text from cafe24_private.refresh_backlog()`;
        assert.equal(backlog!.due_now, 1);
        // Due since 30 minutes (the margin) before its expiry: 10 minutes ago.
        const since = Date.now() - backlog!.oldest_due_since.getTime();
        assert.ok(since > 9 * 60_000 && since < 11 * 60_000, `${since} ms`);
        assert.match(backlog!.overdue_for, /^00:(09|10):/);
      },
    );

    await t.step(
      "the cleanup trims old cron details, runs, ticks, unanswered calls and nonces, and marks dead runs abandoned",
      async () => {
        await db.sql`
        insert into cron.job_run_details (jobid, runid, job_pid, database, username, command, status, return_message, start_time, end_time)
        values (1, 900001, 1, 'postgres', 'postgres', 'select 1', 'succeeded', '1 row', now() - interval '30 days', now() - interval '30 days'),
               (1, 900002, 1, 'postgres', 'postgres', 'select 1', 'succeeded', '1 row', now() - interval '1 hour', now() - interval '1 hour')`;
        const [stale] = await db.sql<{ id: string }[]>`
        insert into cafe24_private.refresh_runs (trigger, mode, started_at) values ('cron', 'async', now() - interval '2 hours')
        returning id`;
        const [old] = await db.sql<{ id: string }[]>`
        insert into cafe24_private.refresh_runs (trigger, mode, status, started_at) values ('cron', 'async', 'finished', now() - interval '40 days')
        returning id`;
        const [oldTick] = await db.sql<{ id: string }[]>`
        insert into cafe24_private.refresh_ticks (ticked_at, policy, due, requested, per_invocation_cap,
          max_parallel_invocations, outcome, lookahead)
        values (now() - interval '8 days', 'eager', 0, 0, 75, 15, 'nothing_due', '1 minute')
        returning id::text`;
        await db.sql`
        insert into cafe24_private.project_calls (request_id, function_name, project_url, sent_at)
        values (-1, 'cafe24-refresh', 'https://gone.example', now() - interval '2 days')`;
        await db.sql`
        insert into cafe24_private.cron_nonces (nonce, used_at)
        values ('old-nonce-0123456789', now() - interval '2 hours'),
               ('new-nonce-0123456789', now() - interval '20 minutes')`;
        const [{ ticks }] = await db.sql<[{ ticks: number }]>`
          select count(*)::int as ticks from cafe24_private.refresh_ticks`;
        await db.sql`select cafe24_private.trim_histories()`;
        const details = await db.sql<{ runid: number }[]>`
        select runid from cron.job_run_details where runid in (900001, 900002)`;
        assert.deepEqual(details.map((d) => Number(d.runid)), [900002]);
        const [abandoned] = await db.sql<{ status: string }[]>`
        select status from cafe24_private.refresh_runs where id = ${stale!.id}`;
        assert.equal(abandoned!.status, "abandoned");
        const gone = await db.sql`select 1 from cafe24_private.refresh_runs where id = ${old!.id}`;
        assert.equal(gone.length, 0);
        const [{ left }] = await db.sql<[{ left: number }]>`
          select count(*)::int as left from cafe24_private.refresh_ticks`;
        assert.equal(left, ticks - 1, `tick ${oldTick!.id} only`);
        const calls = await db
          .sql`select 1 from cafe24_private.project_calls where request_id = -1`;
        assert.equal(calls.length, 0);
        const nonces = await db.sql<{ nonce: string }[]>`
          select nonce from cafe24_private.cron_nonces where nonce like '%-nonce-0123456789'`;
        assert.deepEqual(nonces.map((n) => n.nonce), ["new-nonce-0123456789"]);
      },
    );
  } finally {
    await deliverer.stop();
    await gateway.close();
    await stack.stop();
  }
});

Deno.test("migrations keep an existing auth_settings table and its rows", async () => {
  const cluster = await startPostgresCluster();
  const sql = postgres(cluster.dbUrl, { prepare: false, max: 2, onnotice: () => {} });
  try {
    await applyStandIns(sql);
    // The table as the earlier Next.js app created it: no created_at, and expiries stored the
    // way Cafe24 sends them (Korea time without an offset).
    await sql.unsafe(`
      create table public.auth_settings (
        id uuid primary key default gen_random_uuid(),
        org_id uuid, user_id uuid,
        providers jsonb not null default '{}'::jsonb,
        updated_at timestamptz not null default now());
      insert into public.auth_settings (user_id, providers) values
        (gen_random_uuid(), '{"cafe24": {"mall_id": "legacyshop", "refresh_token": "legacy-rt", "expires_at": "2026-11-25T14:00:00.000", "shop_no": 1}}'),
        (gen_random_uuid(), '{"google": {"x": 1}}');
    `).simple();
    await applyMigrations(cluster.dbUrl);
    const rows = await sql<{ providers: Record<string, unknown>; created_at: Date }[]>`
      select providers, created_at from public.auth_settings order by providers::text`;
    assert.equal(rows.length, 2);
    // The row stays; its pair moved to the connection's private row.
    assert.deepEqual(rows[0]!.providers, { cafe24: { mall_id: "legacyshop", shop_no: 1 } });
    const [pair] = await sql<{ refresh_token: string; token_version: string }[]>`
      select refresh_token, token_version from cafe24_private.connections
      where mall_id = 'legacyshop'`;
    assert.deepEqual({ ...pair }, { refresh_token: "legacy-rt", token_version: "0" });
    assert.ok(rows.every((r) => r.created_at instanceof Date));
    const states = await sql<{ mall_id: string | null; row_state: string; due_now: boolean }[]>`
      select mall_id, row_state, due_at = '-infinity' as due_now from cafe24_private.connections order by row_state`;
    assert.deepEqual(states.map((s) => [s.mall_id, s.row_state]), [[null, "no_cafe24"], [
      "legacyshop",
      "ok",
    ]]);
    // An offset-less legacy expiry is not guessed at: the connection is due at once.
    assert.equal(states[1]!.due_now, true);
  } finally {
    await sql.end();
    await cluster.stop();
  }
});

Deno.test({
  name: "a schema net that pg_net does not own stops the migrations with what to do",
  // Only where the installation ships pg_net (PG_BINDIR): elsewhere the stand-in owns `net`.
  ignore: !(await installedSupabaseLibraries()).includes("pg_net"),
  fn: async () => {
    const cluster = await startPostgresCluster();
    const sql = postgres(cluster.dbUrl, { prepare: false, max: 2, onnotice: () => {} });
    try {
      await applyStandIns(sql);
      await sql.unsafe("drop extension pg_net cascade; create schema net;").simple();
      await assert.rejects(applyMigrations(cluster.dbUrl), (e: unknown) => {
        assert.match(String(e), /schema "net" exists but does not belong to pg_net/);
        assert.match(String(e), /drop schema net cascade/);
        return true;
      });
    } finally {
      await sql.end();
      await cluster.stop();
    }
  },
});
