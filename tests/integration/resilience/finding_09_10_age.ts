/**
 * Findings 9 and 10: a pair's age comes from when it was issued, never from its due time.
 *
 * 9: the first-due jitter moves a new connection's due time up to first_due_spread earlier, so a
 * "refresh now" that read age from the due time rotated a pair seconds old. A user's refresh
 * leaves pairs younger than USER_FORCE_MIN_TOKEN_AGE_MS alone (counted as not_due); an admin's
 * force still takes them.
 * 10: pairs stored the original app's way (tokens in public.auth_settings only, no history in
 * cafe24_private: an imported fleet) are dated by what Cafe24 guarantees, their access token's
 * expiry less ACCESS_TOKEN_LIFETIME_MS, so they get the first-due jitter and early refreshes
 * like any other pair.
 */
import assert from "node:assert/strict";
import { startTestAuth } from "../../support/auth.ts";
import { browser } from "../../support/connect.ts";
import { connectStackOptions, insertConnection, startRefreshStack } from "../../support/stack.ts";
import { startTestDatabase } from "../../../local/postgres/database.ts";
import {
  ACCESS_TOKEN_LIFETIME_MS,
  USER_FORCE_MIN_TOKEN_AGE_MS,
} from "../../../supabase/functions/_shared/refresh/scope.ts";

const MINUTE_MS = 60_000;

export async function finding09(t: Deno.TestContext): Promise<void> {
  const auth = await startTestAuth();
  const stack = await startRefreshStack(connectStackOptions(auth));
  const { db, sandbox } = stack;
  try {
    const user = crypto.randomUUID();
    const jwt = await auth.mint({ sub: user });
    sandbox.addMall("shopyoung");
    const connected = await browser(stack).connect(jwt, "shopyoung");
    assert.equal(connected.status, 200, JSON.stringify(connected.body));
    // The jitter at its maximum: the draw that pulls the first due time a whole spread earlier.
    await db.sql`
      update cafe24_private.connections
      set due_at = access_expires_at - (
        select first_due_spread from cafe24_private.refresh_schedule_settings)
      where mall_id = 'shopyoung'`;
    const pair = async () =>
      (await db.sql<{ expires: Date; token: string }[]>`
        select c.access_expires_at as expires, c.refresh_token as token
        from cafe24_private.connections c where c.mall_id = 'shopyoung'`)[0]!;
    const before = await pair();
    const refreshNow = async () => {
      await db.sql`delete from cafe24_private.user_refresh_starts where user_id = ${user}`;
      const response = await stack.refresh({ force: "true" }, {
        headers: { authorization: `Bearer ${jwt}` },
      });
      assert.equal(response.status, 200);
      return await response.json();
    };

    await t.step(
      "refresh now seconds after connecting: nothing rotated, counted not_due",
      async () => {
        const summary = await refreshNow();
        assert.equal(summary.refreshed, 0, JSON.stringify(summary));
        assert.equal(summary.skipped_reasons.not_due, 1, JSON.stringify(summary));
        assert.deepEqual(await pair(), before);
        assert.equal(sandbox.counters().byMall.shopyoung!.refreshRequests, 0);
      },
    );

    await t.step("nor does an early refresh of a tick", async () => {
      const [row] = await db.sql<{ early: string }[]>`
        select cafe24_private.count_claimable_in(cafe24_private.tick_scope(
          now(), interval '1 minute', s.early_window, s.early_min_token_age)) as early
        from cafe24_private.refresh_schedule_settings s`;
      assert.equal(Number(row!.early), 0);
    });

    await t.step("once the pair is 5 minutes old, refresh now rotates it", async () => {
      // Issued 6 minutes ago: Cafe24's expiry and the connect flow's connected_at both say so.
      const issued = new Date(Date.now() - USER_FORCE_MIN_TOKEN_AGE_MS - MINUTE_MS);
      await db.sql`
        update public.auth_settings
        set providers = jsonb_set(jsonb_set(providers, '{cafe24,expires_at}',
            to_jsonb(${new Date(issued.getTime() + ACCESS_TOKEN_LIFETIME_MS).toISOString()}::text)),
          '{cafe24,connected_at}', to_jsonb(${issued.toISOString()}::text))
        where user_id = ${user}`;
      const summary = await refreshNow();
      assert.equal(summary.refreshed, 1, JSON.stringify(summary));
      assert.notEqual((await pair()).token, before.token);
    });

    await t.step("an admin's force takes even a pair seconds old", async () => {
      const fresh = await pair();
      const response = await stack.refresh({ mall_id: "shopyoung", force: "true" });
      assert.equal((await response.json()).refreshed, 1);
      assert.notEqual((await pair()).token, fresh.token);
    });
  } finally {
    await stack.stop();
    await auth.close();
  }
}

export async function finding10(t: Deno.TestContext): Promise<void> {
  const db = await startTestDatabase();
  try {
    const N = 40;
    const now = Date.now();
    const insertFleet = async (prefix: string, expiresAt: Date) => {
      for (let i = 0; i < N; i++) {
        await insertConnection(db, {
          mallId: `${prefix}${String(i).padStart(3, "0")}`,
          refreshToken: `rt-${prefix}-${i}`,
          accessToken: `at-${prefix}-${i}`,
          expiresAt: expiresAt.toISOString(),
        });
      }
    };
    const dueTimes = async (
      prefix: string,
    ) => (await db.sql<{ due_at: Date; access_expires_at: Date }[]>`
        select due_at, access_expires_at from cafe24_private.connections
        where mall_id like ${prefix + "%"}`);

    await t.step("a fleet imported with fresh tokens gets jittered first due times", async () => {
      // Issued just now, as far as Cafe24's 2-hour lifetime tells.
      await insertFleet("fresh", new Date(now + ACCESS_TOKEN_LIFETIME_MS));
      const rows = await dueTimes("fresh");
      assert.equal(rows.length, N);
      const [settings] = await db.sql<{ spread_ms: number }[]>`
        select extract(epoch from first_due_spread) * 1000 as spread_ms
        from cafe24_private.refresh_schedule_settings`;
      for (const row of rows) {
        const pulled = row.access_expires_at.getTime() - row.due_at.getTime();
        assert.ok(pulled >= 0 && pulled <= Number(settings!.spread_ms), `pulled ${pulled} ms`);
      }
      const distinct = new Set(rows.map((r) => r.due_at.getTime())).size;
      assert.ok(distinct >= N - 5, `spread, not bunched: ${distinct} due times for ${N} rows`);
    });

    await t.step("a fleet imported an hour into its tokens is refreshed early", async () => {
      // Issued an hour ago: due in an hour, inside the early window (45 minutes past the tick's
      // 30-minute horizon), and past early_min_token_age.
      await insertFleet("aged", new Date(now + ACCESS_TOKEN_LIFETIME_MS - 60 * MINUTE_MS));
      const [row] = await db.sql<{ due: string; early: string }[]>`
        select
          cafe24_private.count_claimable_in(
            cafe24_private.tick_scope(now(), interval '1 minute')) as due,
          cafe24_private.count_claimable_in(cafe24_private.tick_scope(
            now(), interval '1 minute', s.early_window, s.early_min_token_age)) as early
        from cafe24_private.refresh_schedule_settings s`;
      assert.equal(Number(row!.due), 0, "none due yet");
      // Only the aged fleet: the fresh one is under early_min_token_age.
      assert.equal(Number(row!.early), N, "every aged pair may be refreshed early");
    });

    await t.step("the SQL's access token lifetime is the TypeScript one", async () => {
      const [row] = await db.sql<{ ms: number }[]>`
        select extract(epoch from cafe24_private.access_token_lifetime()) * 1000 as ms`;
      assert.equal(Number(row!.ms), ACCESS_TOKEN_LIFETIME_MS);
    });
  } finally {
    await db.stop();
  }
}
