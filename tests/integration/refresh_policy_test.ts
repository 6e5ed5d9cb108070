/**
 * The keep_alive refresh policy end to end, with time compressed: the Cafe24 sandbox issues
 * refresh tokens that live 12 seconds (access tokens 1 second), and the keep-alive window is 6
 * seconds instead of a week. Runs follow one another as a fast schedule would, through the
 * function over HTTP, for more than two refresh-token lifetimes. keep_alive must let no refresh
 * token expire, keep a connection whose token the app asks for fresh, and refresh far less than
 * eager does.
 */
import assert from "node:assert/strict";
import { connectMall, openStored, startRefreshStack } from "../support/stack.ts";
import type { RunSummary } from "../../supabase/functions/_shared/refresh/run.ts";

const REFRESH_LIFETIME_MS = 12_000;
const KEEP_ALIVE_WINDOW_S = 6;
/** Connections that only need to stay alive, and one whose token the app asks for. */
const IDLE_MALLS = ["keepidle1", "keepidle2", "keepidle3", "keepidle4"];
const ASKED_MALL = "keepasked";

Deno.test("keep_alive keeps every refresh token alive and refreshes far less than eager", async () => {
  const stack = await startRefreshStack({
    env: {
      CAFE24_REFRESH_POLICY: "keep_alive",
      CAFE24_KEEP_ALIVE_WINDOW_S: String(KEEP_ALIVE_WINDOW_S),
    },
    // The asked-for mall is refreshed by every run, faster than Cafe24's bucket would allow:
    // this test is about the policy, not the rate limit.
    sandbox: {
      accessTokenLifetimeMs: 1_000,
      refreshTokenLifetimeMs: REFRESH_LIFETIME_MS,
      rateLimitTokenEndpoint: false,
    },
  });
  const { db, sandbox } = stack;
  const refreshesOf = (malls: string[]) =>
    malls.reduce((n, mall) => n + (sandbox.counters().byMall[mall]?.refreshSuccesses ?? 0), 0);
  const run = async (): Promise<RunSummary> => await (await stack.refresh()).json();
  try {
    for (const mall of IDLE_MALLS) await connectMall(stack, mall);
    const asked = await connectMall(stack, ASKED_MALL);
    await db.sql`select cafe24_private.note_token_request(${asked.id})`;

    // The first run refreshes everything: no expiry is known yet.
    const first = await run();
    assert.equal(first.refreshed, IDLE_MALLS.length + 1);
    sandbox.resetCounters();

    // Runs back to back, as a schedule would call them, for 2.5 refresh-token lifetimes.
    const startedMs = sandbox.clock.now();
    const summaries: RunSummary[] = [];
    while (sandbox.clock.now() - startedMs < 2.5 * REFRESH_LIFETIME_MS) {
      summaries.push(await run());
    }
    const runs = summaries.length;

    // Never a refresh token presented after its expiry, never a failure, every pair live.
    const log = sandbox.refreshLog();
    assert.deepEqual(log.filter((e) => e.presented !== "live").map((e) => e.presented), []);
    assert.deepEqual(log.filter((e) => e.outcome !== "issued").map((e) => e.outcome), []);
    assert.equal(summaries.reduce((n, s) => n + s.failed, 0), 0);
    for (const mall of [...IDLE_MALLS, ASKED_MALL]) {
      const [row] = await db.sql<
        { id: string; token: string; status: string; refresh_expires_at: Date }[]
      >`
        select c.auth_settings_id as id, c.refresh_token as token, c.status,
          c.refresh_expires_at
        from public.auth_settings s
        join cafe24_private.connections c on c.auth_settings_id = s.id
        where c.mall_id = ${mall}`;
      assert.equal(
        await openStored(db, row!.id, "refresh_token", row!.token),
        sandbox.liveRefreshToken(mall),
        mall,
      );
      assert.equal(row!.status, "active", mall);
      assert.ok(row!.refresh_expires_at.getTime() > Date.now(), `${mall}: refresh token expired`);
      // Between two refreshes of a mall, less than a refresh token's life went by.
      const times = log.filter((e) => e.mallId === mall).map((e) => e.receivedAtMs);
      assert.ok(times.length >= 2, `${mall} was refreshed ${times.length} times`);
      for (let i = 1; i < times.length; i++) {
        assert.ok(times[i]! - times[i - 1]! < REFRESH_LIFETIME_MS, mall);
      }
    }

    // The asked-for mall is kept fresh as eager would: refreshed by every run.
    assert.equal(refreshesOf([ASKED_MALL]), runs);
    const keepAliveIdle = refreshesOf(IDLE_MALLS);

    // eager, over the same connections: every run refreshes every one of them.
    const eager = await stack.startFunctions({ CAFE24_REFRESH_POLICY: "eager" });
    sandbox.resetCounters();
    const EAGER_RUNS = 5;
    for (let i = 0; i < EAGER_RUNS; i++) {
      const response = await fetch(`${eager.url}/cafe24-refresh`, {
        method: "POST",
        headers: { "x-cron-secret": stack.env.CRON_SECRET! },
      });
      const summary: RunSummary = await response.json();
      assert.equal(summary.refreshed, IDLE_MALLS.length + 1);
    }
    const eagerIdlePerRun = refreshesOf(IDLE_MALLS) / EAGER_RUNS;
    const eagerIdle = eagerIdlePerRun * runs;
    console.log(
      `  ${runs} keep_alive runs over ${Math.round((sandbox.clock.now() - startedMs) / 1000)} s: ` +
        `${keepAliveIdle} refreshes of ${IDLE_MALLS.length} idle connections; eager would have ` +
        `made ${eagerIdle} (${eagerIdlePerRun} per run)`,
    );
    assert.ok(
      keepAliveIdle * 3 <= eagerIdle,
      `keep_alive made ${keepAliveIdle} refreshes, eager ${eagerIdle}`,
    );
  } finally {
    await stack.stop();
  }
});
