/**
 * Findings 1 and 4: the scheduled calls (pg_cron → call_project_function → pg_net → a function).
 *   1. Another database role can write pg_net's tables: a forged answer (a 302 with a Location)
 *      to the schedule's calls must not switch the schedule off.
 *   4. Another database role can read pg_net's queue: a captured call must be good for nothing.
 *      Its signature is taken once and only by the function it was made for, and a signed call
 *      is answered 202, never with a run's summary.
 * The jobs are deactivated; each step runs the job's command when it wants a tick.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  connectMall,
  CRON_SECRET,
  type RefreshStack,
  startRefreshStack,
} from "../../support/stack.ts";
import { type NetDeliverer, startNetDeliverer } from "../../../local/supabase/pg_net_deliverer.ts";
import { readRefreshTicks, type RefreshTick } from "../../../local/postgres/refresh_ticks.ts";
import type { FunctionsServer } from "../../../local/functions/server.ts";
import { waitFor } from "../../support/wait.ts";

const JOB_COMMAND = "select cafe24_private.invoke_cafe24_refresh()";

/** Runs the job's command on its own connection; returns the tick and the notices raised. */
async function tick(
  stack: RefreshStack,
  settings: string[] = [],
): Promise<{ tick: RefreshTick; notices: string[] }> {
  const notices: string[] = [];
  const client = postgres(stack.db.dbUrl, {
    prepare: false,
    max: 1,
    onnotice: (n) => notices.push(String(n.message)),
  });
  let id: string;
  try {
    for (const setting of settings) await client.unsafe(setting);
    const [row] = await client.unsafe(JOB_COMMAND);
    id = String(Object.values(row!)[0]);
  } finally {
    await client.end();
  }
  const [row] = await readRefreshTicks(stack.db.sql, stack.db.sql`where id = ${id}::bigint`);
  assert.ok(row, `tick ${id} is recorded`);
  return { tick: row, notices };
}

/** Waits until `count` runs of the tick have finished. */
function finishedRuns(stack: RefreshStack, tickId: string, count: number) {
  return waitFor(`${count} finished runs of tick ${tickId}`, async () => {
    const runs = await stack.db.sql<{ status: string; refreshed: number }[]>`
      select status, (summary ->> 'refreshed')::int as refreshed
      from cafe24_private.refresh_runs where tick_id = ${tickId}::bigint`;
    return runs.length === count && runs.every((r) => r.status === "finished") ? runs : null;
  });
}

/** The schedule pointed at the stack's functions, its jobs idle until a step ticks. */
async function scheduleStack(stack: RefreshStack, server: FunctionsServer): Promise<void> {
  await stack.db.sql`
    update cron.job set active = false where jobname in ('cafe24-refresh', 'cafe24-events')`;
  for (
    const [name, value] of [
      ["cafe24_project_url", new URL(server.url).origin],
      ["cafe24_cron_secret", CRON_SECRET],
    ]
  ) {
    const [updated] = await stack.db.sql`
      select vault.update_secret(id, ${value!}) from vault.secrets where name = ${name!}`;
    if (updated === undefined) await stack.db.sql`select vault.create_secret(${value!}, ${name!})`;
  }
}

/** What another role does: as `authenticated`, with a user's claims, in its own transaction. */
function asAuthenticated<T>(
  stack: RefreshStack,
  work: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return stack.db.sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${
      JSON.stringify({ sub: crypto.randomUUID(), role: "authenticated" })
    }, true)`;
    return await work(tx);
  }) as Promise<T>;
}

export async function finding01(t: Deno.TestContext): Promise<void> {
  const stack = await startRefreshStack({ env: { CAFE24_RUN_CPU_BUDGET_MS: "600000" } });
  let deliverer: NetDeliverer | undefined;
  try {
    await scheduleStack(stack, stack.functions);
    deliverer = startNetDeliverer(stack.db.dbUrl);

    await t.step(
      "forged 302 answers for the next 500 calls leave the schedule running",
      async () => {
        // pg_net grants its tables and sequence to PUBLIC: any role reads where the ids are and
        // writes answers for the ids to come.
        const forged = await asAuthenticated(stack, async (tx) => {
          const rows = await tx`
          insert into net._http_response (id, status_code, headers, content, timed_out)
          select s.last_value + g, 302, '{"Location": "https://attacker.example/"}'::jsonb,
            null, false
          from net.http_request_queue_id_seq s, generate_series(0, 499) g
          returning id`;
          return rows.length;
        });
        assert.equal(forged, 500);

        await connectMall(stack, "shopforged1");
        const first = await tick(stack);
        assert.deepEqual([first.tick.outcome, first.tick.invocations], ["sent", 1]);
        await finishedRuns(stack, first.tick.id, 1);

        // The next tick reads the forged answer to the first call; it is sent all the same, and
        // the function is reached and refreshes the due mall.
        await connectMall(stack, "shopforged2");
        const next = await tick(stack);
        assert.equal(next.tick.outcome, "sent", `tick refused: ${next.tick.reason}`);
        assert.equal(next.tick.invocations, 1);
        const [run] = await finishedRuns(stack, next.tick.id, 1);
        assert.equal(run!.refreshed, 1);
        // What was seen stays visible to an operator, as a warning.
        assert.ok(next.notices.some((n) => n.includes("redirect")), next.notices.join("\n"));
      },
    );

    await t.step("a call pg_net cannot take fails the job's command, loudly", async () => {
      await connectMall(stack, "shoplocked");
      // Another role holds pg_net's queue (it may: PUBLIC has every privilege on it).
      const holder = postgres(stack.db.dbUrl, { prepare: false, max: 1, onnotice: () => {} });
      const locked = Promise.withResolvers<void>();
      const release = Promise.withResolvers<void>();
      const held = holder.begin(async (tx) => {
        await tx`set local role authenticated`;
        await tx`lock table net.http_request_queue in access exclusive mode`;
        locked.resolve();
        await release.promise;
      });
      try {
        await locked.promise;
        const before = await stack.db.sql<{ n: number }[]>`
          select count(*)::int as n from cafe24_private.refresh_ticks where outcome = 'refused'`;
        await assert.rejects(tick(stack, ["set lock_timeout = '300ms'"]), /lock timeout/);
        const after = await stack.db.sql<{ n: number }[]>`
          select count(*)::int as n from cafe24_private.refresh_ticks where outcome = 'refused'`;
        assert.equal(after[0]!.n, before[0]!.n, "an error, never a quiet refusal");
      } finally {
        release.resolve();
        await held;
        await holder.end();
      }
      const again = await tick(stack);
      await finishedRuns(stack, again.tick.id, 1);
    });
  } finally {
    await deliverer?.stop();
    await stack.stop();
  }
}

interface CapturedCall {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** Sends a captured call as it was queued, to `url` (by default where it was going). */
function resend(call: CapturedCall, changes: { url?: string; drop?: string[] } = {}) {
  const headers = Object.fromEntries(
    Object.entries(call.headers).filter(([name]) =>
      !(changes.drop ?? []).includes(name.toLowerCase())
    ),
  );
  return fetch(changes.url ?? call.url, { method: "POST", headers, body: call.body });
}

export async function finding04(t: Deno.TestContext): Promise<void> {
  const stack = await startRefreshStack({
    env: { CAFE24_RUN_CPU_BUDGET_MS: "600000", CAFE24_REFRESH_POOL_SIZE: "2" },
  });
  let deliverer: NetDeliverer | undefined;
  try {
    await scheduleStack(stack, stack.functions);
    await stack.db.sql`select * from cafe24_private.set_refresh_schedule(
      per_invocation_cap => 1, max_parallel_invocations => 3)`;
    for (const mall of ["shopnonce1", "shopnonce2", "shopnonce3"]) await connectMall(stack, mall);

    // The tick, and its calls read from pg_net's queue as another role can. Read before the
    // tick commits, so that no worker (the real pg_net's sends what is committed at once) has
    // taken them yet: what is read is what is queued.
    const { id: tickId, captured } = await stack.db.sql.begin(async (tx) => {
      const [row] = await tx.unsafe(JOB_COMMAND);
      const id = String(Object.values(row!)[0]);
      await tx`set local role authenticated`;
      const calls = await tx<CapturedCall[]>`
        select q.url, q.headers, convert_from(q.body, 'UTF8') as body
        from net.http_request_queue q
        where q.url like '%/cafe24-refresh' order by q.id`;
      return { id, captured: calls };
    });
    const [first] = await readRefreshTicks(
      stack.db.sql,
      stack.db.sql`where id = ${tickId}::bigint`,
    );
    assert.deepEqual([first!.due, first!.invocations], [3, 3]);
    assert.equal(captured.length, 3);
    deliverer = startNetDeliverer(stack.db.dbUrl);

    await t.step("a tick with K = 3 starts exactly 3 runs, replays or not", async () => {
      await deliverer!.drain();
      await finishedRuns(stack, first!.id, 3);
      const outputFrom = stack.functions.output.length;
      // Each captured call again, many times over, and without `Prefer` too.
      const replays = await Promise.all(
        Array.from({ length: 30 }, (_, i) => {
          const call = captured[i % 3]!;
          return resend(call, { drop: i % 2 === 0 ? ["prefer"] : [] }).then(async (r) => ({
            status: r.status,
            body: await r.json(),
          }));
        }),
      );
      assert.deepEqual(
        [...new Set(replays.map((r) => r.status))],
        [401],
        JSON.stringify(replays.slice(0, 3)),
      );
      assert.ok(replays.every((r) => r.body.error === "UNAUTHORIZED" && !("refreshed" in r.body)));
      const [counted] = await stack.db.sql<{ runs_started: number; runs: number }[]>`
        select t.runs_started,
          (select count(*)::int from cafe24_private.refresh_runs r where r.tick_id = t.id) as runs
        from cafe24_private.refresh_ticks t where t.id = ${first!.id}::bigint`;
      assert.deepEqual(counted, { runs_started: 3, runs: 3 });

      // Counted for the periodic line, never logged one by one.
      const line = await waitFor(
        "the unauthenticated_requests line",
        () =>
          stack.functions.output.slice(outputFrom).find((l) =>
            l.includes('"unauthenticated_requests"') && l.includes('"replayed_nonce"')
          ),
      );
      assert.equal(JSON.parse(line).function, "cafe24-refresh");
      const lines = stack.functions.output.slice(outputFrom)
        .filter((l) => !l.includes('"cafe24_refresh_run"'));
      assert.ok(lines.length < 5, `${lines.length} lines for 30 replays:\n${lines.join("\n")}`);
      assert.ok(!lines.join("\n").includes(captured[0]!.headers["x-cron-signature"]!));
    });

    // Calls made by the database and never sent (rolled back): fresh nonces.
    const unsent = (fn: string, body: string) =>
      stack.db.sql.begin(async (tx) => {
        const [{ ids }] = await tx<[{ ids: string[] }]>`
          select (cafe24_private.call_project_function(${fn}, ${body}::text::jsonb, 1)).request_ids
            as ids`;
        const [call] = await tx<CapturedCall[]>`
          select url, headers, convert_from(body, 'UTF8') as body from net.http_request_queue
          where id = ${ids[0]!}::bigint`;
        throw new Unsent(call!);
      }).catch((e) => {
        if (e instanceof Unsent) return e.call;
        throw e;
      });

    await t.step("a signature made for cafe24-events is refused by cafe24-refresh", async () => {
      const events = await unsent("cafe24-events", '{"trigger": "cron"}');
      const response = await resend(events, { url: `${stack.functions.url}/cafe24-refresh` });
      assert.equal(response.status, 401, await response.clone().text());
      assert.deepEqual(await response.json(), { error: "UNAUTHORIZED" });
    });

    await t.step("a signed call is answered 202, with or without Prefer", async () => {
      await connectMall(stack, "shopnonce4");
      const call = await unsent("cafe24-refresh", '{"trigger": "cron", "max_connections": 1}');
      const response = await resend(call, { drop: ["prefer"] });
      const body = await response.json();
      assert.equal(response.status, 202, JSON.stringify(body));
      assert.deepEqual(Object.keys(body), ["run_id"]);
      await waitFor("the signed call's run", async () => {
        const [run] = await stack.db.sql<{ status: string }[]>`
          select status from cafe24_private.refresh_runs where id = ${body.run_id}`;
        return run?.status === "finished";
      });
      const again = await resend(call, { drop: ["prefer"] });
      assert.equal(again.status, 401, "and only once");
      await again.body?.cancel();
    });
  } finally {
    await deliverer?.stop();
    await stack.stop();
  }
}

/** Carries a queued call out of a transaction that must not commit. */
class Unsent extends Error {
  constructor(readonly call: CapturedCall) {
    super("rolled back");
  }
}
