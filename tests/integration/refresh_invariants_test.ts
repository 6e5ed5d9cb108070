/**
 * The invariants that keep malls connected, each provoked on purpose against real parts:
 * overlapping runs, a reconnect during a refresh, malformed answers, host time zones, a lost
 * answer, large batches, broken rows and a worker told it is about to be stopped. The sandbox's
 * counters prove what Cafe24 saw.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  cafe24Entry,
  connectionState,
  connectMall,
  forgetExpiries,
  startRefreshStack,
  storedRefreshTokens,
} from "../support/stack.ts";
import type { MalformedVariant } from "../../local/cafe24_sandbox.ts";
import { waitFor } from "../support/wait.ts";
import {
  loadConfig,
  REFRESH_CONFIG_REQUIRED,
  refreshSettings,
} from "../../supabase/functions/_shared/platform/config.ts";
import { beginRefreshRun } from "../../supabase/functions/_shared/refresh/run.ts";
import {
  createRefreshStore,
  type RefreshStore,
} from "../../supabase/functions/_shared/refresh/store.ts";

const HOUR_MS = 60 * 60 * 1000;

Deno.test("refresh invariants", async (t) => {
  // Runs as long as their work: the steps below count on one run reaching every due connection.
  const stack = await startRefreshStack({
    env: {
      CAFE24_REFRESH_CONCURRENCY: "16",
      CAFE24_MAX_CONNECTIONS_PER_RUN: "5000",
      CAFE24_RUN_CPU_BUDGET_MS: "600000",
    },
    sandbox: { commitOnClientAbort: true },
  });
  const { db, sandbox } = stack;
  // A refresh the sandbox has received and holds for its latency: what the owner's reconnect,
  // or a kill, must land in the middle of. The sandbox counts a request when it arrives.
  const reachedCafe24 = (mall: string) =>
    waitFor(
      `the refresh of ${mall} to reach the sandbox`,
      () => (sandbox.counters().byMall[mall]?.refreshRequests ?? 0) > 0,
    );
  const due = () => forgetExpiries(db);
  try {
    await t.step(
      "overlapping runs in several processes refresh each mall exactly once",
      async () => {
        const malls = Array.from({ length: 40 }, (_, i) => `shopconc${String(i).padStart(2, "0")}`);
        for (const mall of malls) await connectMall(stack, mall);
        sandbox.setFaults("*", { latencyMs: 150, jitterMs: 100 });
        sandbox.resetCounters();
        const second = await stack.startFunctions();
        const callSecond = () =>
          fetch(`${second.url}/cafe24-refresh`, {
            method: "POST",
            headers: { "x-cron-secret": stack.env.CRON_SECRET! },
          });
        const responses = await Promise.all([
          stack.refresh(),
          stack.refresh(),
          callSecond(),
          callSecond(),
          stack.refresh(),
        ]);
        const summaries = await Promise.all(responses.map((r) => r.json()));
        sandbox.clearFaults();
        const counters = sandbox.counters();
        assert.equal(counters.concurrentRefreshViolations, 0);
        assert.equal(counters.deadTokenReuses, 0);
        for (const mall of malls) assert.equal(counters.byMall[mall]!.refreshSuccesses, 1, mall);
        assert.equal(summaries.reduce((n, s) => n + s.refreshed, 0), malls.length);
        for (const s of summaries) assert.equal(s.scanned, s.refreshed + s.failed + s.skipped);
        const rows = await storedRefreshTokens(db, "shopconc%");
        for (const row of rows) assert.equal(row.token, sandbox.liveRefreshToken(row.mall));
      },
    );

    await t.step(
      "a reconnect during a refresh keeps the reconnect's newer tokens (CAS)",
      async () => {
        const { id } = await connectMall(stack, "shopcas");
        // Long enough for the reconnect below to be written while Cafe24 still holds the request.
        sandbox.setFaults("shopcas", { latencyMs: 1_500 });
        const running = stack.refresh({ mall_id: "shopcas" });
        await reachedCafe24("shopcas");
        await db.sql`
        update auth_settings
        set providers = jsonb_set(providers, '{cafe24,refresh_token}', '"owner-reconnected"')
        where id = ${id}`;
        const summary = await (await running).json();
        sandbox.clearFaults();
        assert.equal(summary.refreshed, 0);
        assert.equal(summary.skipped_reasons.superseded, 1);
        assert.equal((await cafe24Entry(db, id)).refresh_token, "owner-reconnected");
        assert.equal((await connectionState(db, id)).lease_id, null);
        // The pair Cafe24 issued to the superseded refresh was revoked, not left alive.
        assert.deepEqual(sandbox.livePairs("shopcas"), []);
      },
    );

    await t.step("a rejection after another party rotated the token is not a failure", async () => {
      const { id } = await connectMall(stack, "shoprace");
      sandbox.setFaults("shoprace", { latencyMs: 1_500 });
      const running = stack.refresh({ mall_id: "shoprace" });
      await reachedCafe24("shoprace");
      // The owner reconnects: Cafe24 issues a new pair, the in-flight token dies.
      const fresh = sandbox.issueTokens("shoprace");
      await db.sql`
        update auth_settings
        set providers = jsonb_set(providers, '{cafe24,refresh_token}', ${
        db.sql.json(fresh.refreshToken)
      })
        where id = ${id}`;
      const summary = await (await running).json();
      sandbox.clearFaults();
      assert.equal(summary.failed, 0);
      assert.equal(summary.skipped_reasons.already_rotated, 1);
      const state = await connectionState(db, id);
      assert.equal(state.status, "active");
      assert.equal((await cafe24Entry(db, id)).refresh_token, fresh.refreshToken);
    });

    await t.step("every malformed 200 is a failure that changes no token", async () => {
      const variants: MalformedVariant[] = [
        "html",
        "text",
        "missing_refresh_token",
        "wrong_types",
        "empty",
      ];
      for (const variant of variants) {
        const mall = `shopbad${variant.replaceAll("_", "").slice(0, 8)}`;
        const { id, refreshToken } = await connectMall(stack, mall);
        const before = await cafe24Entry(db, id);
        sandbox.queueFaults(mall, [{ kind: "malformed_200", variant }]);
        const summary = await (await stack.refresh({ mall_id: mall })).json();
        assert.equal(summary.failed, 1, variant);
        assert.match(summary.failures[0].reason, /^CAFE24_MALFORMED_RESPONSE: /, variant);
        assert.deepEqual(await cafe24Entry(db, id), before, variant);
        assert.equal(refreshToken, sandbox.liveRefreshToken(mall));
        assert.notEqual((await connectionState(db, id)).answer_possibly_lost_at, null);
      }
    });

    for (const tz of ["UTC", "America/New_York", "Asia/Seoul"]) {
      await t.step(`expires_at is the right instant with the host in TZ=${tz}`, async () => {
        const functions = await stack.startFunctions({ TZ: tz });
        const mall = `shoptz${tz.replace(/[^a-z]/gi, "").toLowerCase().slice(0, 8)}`;
        const { id } = await connectMall(stack, mall);
        const response = await fetch(`${functions.url}/cafe24-refresh?mall_id=${mall}`, {
          headers: { "x-cron-secret": stack.env.CRON_SECRET! },
        });
        assert.equal((await response.json()).refreshed, 1);
        const entry = await cafe24Entry(db, id);
        const expected = sandbox.clock.now() + 2 * HOUR_MS;
        assert.ok(
          Math.abs(Date.parse(String(entry.expires_at)) - expected) < 60_000,
          String(entry.expires_at),
        );
        const refreshExpected = sandbox.clock.now() + 14 * 24 * HOUR_MS;
        assert.ok(
          Math.abs(Date.parse(String(entry.refresh_token_expires_at)) - refreshExpected) < 60_000,
        );
        await functions.stop();
      });
    }

    await t.step(
      "an answer lost to a killed worker ends as CAFE24_ANSWER_LOST, never stuck",
      async () => {
        const { id } = await connectMall(stack, "shopkilled");
        const victim = await stack.startFunctions();
        sandbox.setFaults("shopkilled", { latencyMs: 1_500 });
        const call = fetch(`${victim.url}/cafe24-refresh?mall_id=shopkilled`, {
          headers: { "x-cron-secret": stack.env.CRON_SECRET! },
        }).catch(() => null);
        await reachedCafe24("shopkilled");
        await victim.kill();
        await call;
        // The sandbox commits the rotation although the worker is gone: the answer is lost.
        await waitFor(
          "the sandbox to commit the rotation nobody received",
          () => sandbox.refreshLog().some((e) => e.mallId === "shopkilled" && e.outcome === "lost"),
        );
        sandbox.clearFaults();
        assert.equal(sandbox.counters().lostResponses >= 1, true);
        const leased = await connectionState(db, id);
        assert.notEqual(leased.in_flight_since, null);
        // Its lease would run out after timeout + 60 s; end it now rather than wait.
        await db
          .sql`update cafe24_private.connections set lease_expires_at = now() - interval '1 second' where auth_settings_id = ${id}`;
        const summary = await (await stack.refresh({ mall_id: "shopkilled" })).json();
        assert.equal(summary.failed, 1);
        assert.match(summary.failures[0].reason, /^CAFE24_ANSWER_LOST: /);
        assert.equal((await connectionState(db, id)).status, "reconnect_required");
      },
    );

    await t.step("1,600 due connections are all refreshed in one run (no row cap)", async () => {
      sandbox.resetCounters();
      const malls = Array.from(
        { length: 1_600 },
        (_, i) => `shopbulk${String(i).padStart(4, "0")}`,
      );
      const values = malls.map((mall) => {
        const tokens = sandbox.issueTokens(mall);
        return {
          user_id: crypto.randomUUID(),
          providers: { cafe24: { mall_id: mall, refresh_token: tokens.refreshToken } },
        };
      });
      await db.sql`insert into auth_settings ${db.sql(values as never)}`;
      const summary = await (await stack.refresh()).json();
      assert.equal(summary.remaining, 0);
      const [row] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from auth_settings a
        join cafe24_private.connections c on c.auth_settings_id = a.id
        where c.mall_id like 'shopbulk%' and c.last_refreshed_at is not null`;
      assert.equal(row!.n, 1_600);
      assert.ok(summary.refreshed >= 1_600);
      const reused = Object.entries(sandbox.counters().byMall).filter(([, c]) =>
        c.deadTokenReuses > 0
      );
      assert.deepEqual(reused.map(([mall]) => mall), []);
    });

    await t.step("broken rows are counted and skipped, and never crash a run", async () => {
      const broken = [
        "[1, 2]",
        '"text"',
        "null",
        '{"cafe24": "not an object"}',
        '{"cafe24": []}',
        '{"cafe24": {"mall_id": 42, "refresh_token": "x"}}',
        '{"cafe24": {"mall_id": "shopok", "refresh_token": {"nested": true}}}',
        '{"cafe24": {"mall_id": "", "refresh_token": "x"}}',
        '{"cafe24": {"mall_id": "shopnort"}}',
        '{"cafe24": {"mall_id": "shopnort", "refresh_token": ""}}',
        '{"cafe24": null}',
        '{"other": {}}',
      ];
      for (const providers of broken) {
        await db
          .sql`insert into auth_settings (user_id, providers) values (${crypto.randomUUID()}, ${providers}::text::jsonb)`;
      }
      const response = await stack.refresh({ force: "true" });
      assert.equal(response.status, 200);
      const summary = await response.json();
      assert.ok(summary.skipped_reasons.malformed >= 7);
      assert.ok(summary.skipped_reasons.missing_keys >= 3);
      assert.ok(summary.skipped_reasons.no_cafe24 >= 2);
      assert.equal(summary.scanned, summary.refreshed + summary.failed + summary.skipped);
      const [row] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from auth_settings
        where providers in (select unnest(${broken}::text[])::jsonb)`;
      assert.equal(row!.n, broken.length, "broken rows are left exactly as they were");
    });

    await t.step(
      "a run stopped by its cap reports what remains and leaves no lease behind",
      async () => {
        await due();
        const capped = await stack.startFunctions({ CAFE24_MAX_CONNECTIONS_PER_RUN: "5" });
        const response = await fetch(`${capped.url}/cafe24-refresh`, {
          headers: { "x-cron-secret": stack.env.CRON_SECRET! },
        });
        const summary = await response.json();
        assert.equal(summary.refreshed + summary.failed, 5);
        assert.ok(summary.remaining > 0);
        assert.equal(summary.skipped_reasons.run_limit, summary.remaining);
        assert.equal(summary.scanned, summary.refreshed + summary.failed + summary.skipped);
        const [row] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from cafe24_private.connections where lease_expires_at > now()`;
        assert.equal(row!.n, 0);
        await capped.stop();
      },
    );

    // The hosted runtime sends beforeunload before it stops a worker; the local functions server
    // has no such notice to give. So this run works in the test process, against the same
    // PostgreSQL and the sandbox over HTTP, and the test sends the notice as the runtime would:
    // while the database's answer to a settle (which claimed the next connection) is on its way.
    await t.step(
      "told the worker will stop, a run sends nothing more and frees what it claimed since",
      async () => {
        const owner = crypto.randomUUID();
        const overdue = (hours: number) => new Date(Date.now() - hours * HOUR_MS).toISOString();
        // Claimed most overdue first: the slow and the fast one by the two workers, then the
        // third by the fast one's settle.
        const slow = await connectMall(stack, "shopunloadslow", {
          userId: owner,
          expiresAt: overdue(3),
        });
        const fast = await connectMall(stack, "shopunloadfast", {
          userId: owner,
          expiresAt: overdue(2),
        });
        const third = await connectMall(stack, "shopunloadnext", {
          userId: owner,
          expiresAt: overdue(1),
        });
        sandbox.setFaults("shopunloadslow", { latencyMs: 1_500 });
        const loaded = loadConfig(
          { ...stack.env, CAFE24_REFRESH_CONCURRENCY: "2" },
          REFRESH_CONFIG_REQUIRED,
        );
        assert.ok(loaded.ok);
        const sql = postgres(db.dbUrl, { prepare: false, max: 4, onnotice: () => {} });
        try {
          const real = createRefreshStore(sql, refreshSettings(loaded.config).tokenSeal);
          let slowAtNotice: Awaited<ReturnType<typeof connectionState>> | null = null;
          const store: RefreshStore = {
            ...real,
            async storeTokens(settle) {
              const settled = await real.storeTokens(settle);
              if (settle.connection.id === fast.id) {
                slowAtNotice = await connectionState(db, slow.id);
                globalThis.dispatchEvent(
                  new CustomEvent("beforeunload", { detail: { reason: "WallClockTime" } }),
                );
              }
              return settled;
            },
          };
          const run = await beginRefreshRun(
            { store, settings: refreshSettings(loaded.config) },
            { trigger: "cli", mode: "sync", force: false, mallId: null, userId: owner },
          );
          const summary = await run.execute();
          sandbox.clearFaults();

          // The request in flight at the notice kept its lease, and its answer was stored.
          assert.equal(slowAtNotice!.lease_id, run.runId);
          assert.notEqual(slowAtNotice!.in_flight_since, null);
          assert.equal(
            (await cafe24Entry(db, slow.id)).refresh_token,
            sandbox.liveRefreshToken("shopunloadslow"),
          );
          assert.equal(summary.refreshed, 2);
          // The connection claimed after the notice: never sent, let go, claimable again.
          assert.equal(sandbox.counters().byMall.shopunloadnext?.refreshRequests ?? 0, 0);
          const [freed] = await db.sql`
            select lease_id, lease_expires_at, in_flight_since, last_claimed_at
            from cafe24_private.connections where auth_settings_id = ${third.id}`;
          assert.deepEqual({ ...freed }, {
            lease_id: null,
            lease_expires_at: null,
            in_flight_since: null,
            last_claimed_at: null,
          });
          assert.equal(summary.remaining, 1);
          assert.equal(summary.skipped_reasons.out_of_time, 1);
          assert.equal(summary.scanned, summary.refreshed + summary.failed + summary.skipped);
          const [recorded] = await db.sql<{ status: string }[]>`
            select status from cafe24_private.refresh_runs where id = ${run.runId}`;
          assert.equal(recorded!.status, "finished");
        } finally {
          await sql.end({ timeout: 5 });
        }
      },
    );
  } finally {
    await stack.stop();
  }
});
