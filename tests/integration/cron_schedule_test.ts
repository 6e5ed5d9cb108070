/**
 * The schedule: the pg_cron job's own command, Vault secrets, pg_net (its stand-in worker
 * delivers the request), the function answering 202 and finishing the run afterwards. Also the
 * migrations' idempotence, an existing auth_settings table, and the history cleanup.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { cafe24Entry, connectMall, CRON_SECRET, startRefreshStack } from "../support/stack.ts";
import { startNetDeliverer } from "../../local/supabase/pg_net_deliverer.ts";
import { startPostgresCluster } from "../../local/postgres/cluster.ts";
import { applyMigrations, applyStandIns } from "../../local/postgres/database.ts";

const MIGRATIONS = new URL("../../supabase/migrations/", import.meta.url);

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== null) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test("pg_cron schedule", async (t) => {
  const stack = await startRefreshStack();
  const { db, sandbox } = stack;
  const deliverer = startNetDeliverer(db.dbUrl);
  try {
    const jobCommand = async () => {
      const [job] = await db.sql<{ command: string; schedule: string }[]>`
        select command, schedule from cron.job where jobname = 'cafe24-refresh'`;
      assert.ok(job, "the migration registers the cafe24-refresh job");
      return job.command;
    };

    await t.step("the job is registered once, every 5 minutes, with its cleanup jobs", async () => {
      const jobs = await db.sql<{ jobname: string; schedule: string }[]>`
        select jobname, schedule from cron.job order by jobname`;
      assert.deepEqual(jobs.map((j) => [j.jobname, j.schedule]), [
        ["cafe24-events", "* * * * *"],
        ["cafe24-oauth-states-cleanup", "41 * * * *"],
        ["cafe24-refresh", "*/5 * * * *"],
        ["cafe24-trim-histories", "17 3 * * *"],
      ]);
    });

    await t.step("without Vault secrets the job sends nothing and says why", async () => {
      const notices: string[] = [];
      const client = postgres(db.dbUrl, {
        prepare: false,
        max: 1,
        onnotice: (n) => notices.push(String(n.message)),
      });
      try {
        const [row] = await client.unsafe(await jobCommand());
        assert.equal(Object.values(row!)[0], null);
      } finally {
        await client.end();
      }
      assert.ok(notices.some((n) => n.includes("cafe24_project_url")), notices.join("\n"));
      const [queued] = await db.sql<
        { n: number }[]
      >`select count(*)::int as n from net.http_request_queue`;
      assert.equal(queued!.n, 0);
    });

    await t.step(
      "the job's own command reaches the function, which answers 202 and finishes the run",
      async () => {
        const { id } = await connectMall(stack, "shopcron");
        const projectUrl = stack.functions.url.replace(/\/functions\/v1$/, "");
        await db.sql`select vault.create_secret(${projectUrl}, 'cafe24_project_url')`;
        await db.sql`select vault.create_secret(${CRON_SECRET}, 'cafe24_cron_secret')`;

        const [row] = await db.sql.unsafe(await jobCommand());
        const requestId = Number(Object.values(row!)[0]);
        assert.ok(requestId > 0);
        await deliverer.drain();
        const [response] = await db.sql<{ status_code: number; content: string }[]>`
        select status_code, content from net._http_response where id = ${requestId}`;
        assert.equal(response!.status_code, 202);
        const runId = JSON.parse(response!.content).run_id;
        const run = await waitFor("the cron run to finish", async () => {
          const [r] = await db.sql<
            { status: string; trigger: string; mode: string; summary: { refreshed: number } }[]
          >`
          select status, trigger, mode, summary from cafe24_private.refresh_runs where id = ${runId}`;
          return r?.status === "finished" ? r : null;
        });
        assert.equal(run.trigger, "cron");
        assert.equal(run.mode, "async");
        assert.equal(run.summary.refreshed, 1);
        assert.equal(
          (await cafe24Entry(db, id)).refresh_token,
          sandbox.liveRefreshToken("shopcron"),
        );
      },
    );

    await t.step(
      "a wrong secret in Vault is refused by the function (401) and changes nothing",
      async () => {
        await db.sql`
        select vault.update_secret(id, 'not-the-secret') from vault.secrets where name = 'cafe24_cron_secret'`;
        const [row] = await db.sql.unsafe(await jobCommand());
        const requestId = Number(Object.values(row!)[0]);
        await deliverer.drain();
        const [response] = await db.sql<{ status_code: number; content: string }[]>`
        select status_code, content from net._http_response where id = ${requestId}`;
        assert.equal(response!.status_code, 401);
        assert.deepEqual(JSON.parse(response!.content), { error: "UNAUTHORIZED" });
      },
    );

    await t.step("re-applying every migration is harmless and never duplicates a job", async () => {
      for await (const entry of Deno.readDir(MIGRATIONS)) {
        if (entry.name.endsWith(".sql")) {
          await db.sql.unsafe(await Deno.readTextFile(new URL(entry.name, MIGRATIONS))).simple();
        }
      }
      const jobs = await db.sql<{ n: number }[]>`
        select count(*)::int as n from cron.job group by jobname`;
      assert.ok(jobs.every((j) => j.n === 1));
    });

    await t.step(
      "the cleanup trims old cron details and runs, and marks dead runs abandoned",
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
        await db.sql`select cafe24_private.trim_histories()`;
        const details = await db.sql<{ runid: number }[]>`
        select runid from cron.job_run_details where runid in (900001, 900002)`;
        assert.deepEqual(details.map((d) => Number(d.runid)), [900002]);
        const [abandoned] = await db.sql<{ status: string }[]>`
        select status from cafe24_private.refresh_runs where id = ${stale!.id}`;
        assert.equal(abandoned!.status, "abandoned");
        const gone = await db.sql`select 1 from cafe24_private.refresh_runs where id = ${old!.id}`;
        assert.equal(gone.length, 0);
      },
    );
  } finally {
    await deliverer.stop();
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
    assert.deepEqual(rows[0]!.providers, {
      cafe24: {
        mall_id: "legacyshop",
        refresh_token: "legacy-rt",
        expires_at: "2026-11-25T14:00:00.000",
        shop_no: 1,
      },
    });
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
