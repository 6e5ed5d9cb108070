/**
 * Findings 3 and 5: cafe24-webhook's app notices.
 *
 * 3. A notice anyone can send must never rotate a grant. A notice for a mall whose access token is
 *    dead (expired, or refused with 401) sends no token request: the verification waits for the
 *    mall's next refresh (mall_verifications.pending_since) and runs right after it, so a real
 *    uninstall of an idle mall is still seen.
 * 5. With CAFE24_WEBHOOK_API_KEY set, a notice without that key is refused before any database
 *    work and only counted; one with it (sent by the sandbox's notice sender, the way Cafe24
 *    would) is still verified at Cafe24.
 */
import assert from "node:assert/strict";
import {
  cafe24Entry,
  CLIENT_ID,
  connectionState,
  connectMall,
  startRefreshStack,
} from "../../support/stack.ts";
import type { RefreshStack } from "../../support/stack.ts";
import { waitFor } from "../../support/wait.ts";

interface LogLine {
  event: string;
  [key: string]: unknown;
}

function logLines(stack: RefreshStack, event: string): LogLine[] {
  return stack.functions.output.flatMap((line) => {
    try {
      const entry = JSON.parse(line) as LogLine;
      return entry.event === event ? [entry] : [];
    } catch {
      return [];
    }
  });
}

const noticeLogs = (stack: RefreshStack, mallId: string) =>
  logLines(stack, "cafe24_app_notice").filter((line) => line.mall_id === mallId);

const waitForNoticeLogs = (stack: RefreshStack, mallId: string, count: number) =>
  waitFor(`${count} notice log lines for ${mallId}`, () => {
    const logs = noticeLogs(stack, mallId);
    return logs.length >= count ? logs : null;
  });

function appDeletedNotice(mallId: string) {
  return {
    event_no: 90077,
    resource: { mall_id: mallId, client_id: CLIENT_ID, deleted_date: new Date().toISOString() },
  };
}

async function postNotice(
  stack: RefreshStack,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<number> {
  const response = await fetch(`${stack.functions.url}/cafe24-webhook`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  await response.body?.cancel();
  return response.status;
}

async function pendingSince(stack: RefreshStack, mallId: string): Promise<Date | null> {
  const [row] = await stack.db.sql<{ pending_since: Date | null }[]>`
    select pending_since from cafe24_private.mall_verifications where mall_id = ${mallId}`;
  return row?.pending_since ?? null;
}

const SECRET_KEY = "sb_secret_test_0123456789abcdefghijklmn";

export async function finding03(t: Deno.TestContext): Promise<void> {
  const stack = await startRefreshStack({
    env: { SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }) },
  });
  try {
    const { db, sandbox } = stack;
    const expired = new Date(Date.now() - 60_000).toISOString();
    // Within the refresh margin but not expired: the stored token is still used, and refused.
    const soon = new Date(Date.now() + 10 * 60_000).toISOString();
    // Every stored access token is dead at Cafe24 too (as an expired one would be).
    const dead = "no-longer-valid";
    const gone = await connectMall(stack, "f3gone", { expiresAt: expired, accessToken: dead });
    const alive = await connectMall(stack, "f3alive", { expiresAt: expired, accessToken: dead });
    const stale = await connectMall(stack, "f3stale", { expiresAt: soon, accessToken: dead });
    // f3gone's app is deleted, yet Cafe24 still issues tokens for it: only the verification
    // after a refresh can tell.
    sandbox.configure({ appDeletedRefresh: "issued" });
    sandbox.addMall("f3gone", { appDeleted: true });
    const malls = ["f3gone", "f3alive", "f3stale"];
    const refreshTokens = async () =>
      await Promise.all(
        [gone, alive, stale].map(async (c) => (await cafe24Entry(db, c.id)).refresh_token),
      );
    const tokensBefore = await refreshTokens();
    const tokenRequestsBefore = sandbox.counters().requests.token_refresh;

    await t.step(
      "a notice for a mall with a dead access token sends no token request",
      async () => {
        for (const mall of malls) {
          assert.equal(await postNotice(stack, appDeletedNotice(mall)), 200);
        }
        const logs = await Promise.all(malls.map((mall) => waitForNoticeLogs(stack, mall, 1)));
        assert.equal(sandbox.counters().requests.token_refresh, tokenRequestsBefore);
        for (const mall of malls) {
          assert.equal(sandbox.counters().byMall[mall]?.refreshRequests ?? 0, 0, mall);
        }
        assert.deepEqual(await refreshTokens(), tokensBefore, "no refresh token changed");
        for (const [log] of logs) {
          assert.equal(log!.outcome, "deferred", JSON.stringify(log));
          assert.equal(log!.action, "deferred");
        }
        assert.equal(sandbox.counters().byMall.f3gone?.shopsRequests ?? 0, 0, "expired: not asked");
        assert.equal(sandbox.counters().byMall.f3stale?.shopsRequests, 1, "asked once, refused");
        for (const mall of malls) {
          assert.notEqual(await pendingSince(stack, mall), null, mall);
        }
        assert.equal((await connectionState(db, gone.id)).status, "active");
      },
    );

    await t.step("more notices meanwhile change nothing either", async () => {
      for (let i = 0; i < 5; i++) {
        assert.equal(await postNotice(stack, appDeletedNotice("f3gone")), 200);
      }
      await waitFor(
        "the extra notices to be counted",
        () =>
          logLines(stack, "unauthenticated_requests").some((line) =>
            line.function === "cafe24-webhook"
          ) || null,
      );
      assert.equal(sandbox.counters().requests.token_refresh, tokenRequestsBefore);
      assert.deepEqual(await refreshTokens(), tokensBefore);
    });

    await t.step("the next scheduled refresh runs the verification", async () => {
      const answer = await stack.refresh();
      assert.equal(answer.status, 200, await answer.clone().text());
      const summary = await answer.json();
      assert.equal(summary.refreshed, 3, JSON.stringify(summary));
      for (const mall of malls) {
        const logs = await waitForNoticeLogs(stack, mall, 2);
        const after = logs.find((line) => line.after === "refresh");
        assert.ok(after !== undefined, `${mall}: ${JSON.stringify(logs)}`);
      }
      const [goneLog] = noticeLogs(stack, "f3gone").filter((l) => l.after === "refresh");
      assert.deepEqual(
        { access: goneLog!.access, action: goneLog!.action },
        { access: "app_deleted", action: "disconnected" },
      );
      const state = await connectionState(db, gone.id);
      assert.equal(state.status, "disconnected");
      assert.equal(state.last_error_code, "APP_UNINSTALLED");
      for (const c of [alive, stale]) {
        assert.equal((await connectionState(db, c.id)).status, "active");
      }
      for (const mall of malls) assert.equal(await pendingSince(stack, mall), null, mall);
      // One refresh per mall, by the schedule: none for the notices.
      for (const mall of malls) assert.equal(sandbox.counters().byMall[mall]!.refreshRequests, 1);
    });

    await t.step("a refresh by cafe24-token runs a waiting verification too", async () => {
      const token = await connectMall(stack, "f3token", { expiresAt: expired, accessToken: dead });
      sandbox.addMall("f3token", { appDeleted: true });
      assert.equal(await postNotice(stack, appDeletedNotice("f3token")), 200);
      assert.equal((await waitForNoticeLogs(stack, "f3token", 1))[0]!.outcome, "deferred");
      assert.equal(sandbox.counters().byMall.f3token?.refreshRequests ?? 0, 0);

      const answer = await fetch(`${stack.functions.url}/cafe24-token?mall_id=f3token`, {
        headers: { apikey: SECRET_KEY },
      });
      assert.equal(answer.status, 200, await answer.clone().text());
      await answer.body?.cancel();
      const [, after] = await waitForNoticeLogs(stack, "f3token", 2);
      assert.deepEqual(
        { after: after!.after, access: after!.access, action: after!.action },
        { after: "refresh", access: "app_deleted", action: "disconnected" },
      );
      assert.equal((await connectionState(db, token.id)).last_error_code, "APP_UNINSTALLED");
      assert.equal(sandbox.counters().byMall.f3token!.refreshRequests, 1);
    });
  } finally {
    await stack.stop();
  }
}

const WEBHOOK_KEY = "test-webhook-api-key-0123456789abcdef";

export async function finding05(t: Deno.TestContext): Promise<void> {
  const stack = await startRefreshStack({ env: { CAFE24_WEBHOOK_API_KEY: WEBHOOK_KEY } });
  try {
    const { db, sandbox } = stack;
    const { id } = await connectMall(stack, "f5mall");
    const rows = async () => {
      const [row] = await db.sql<{ n: number }[]>`
        select (select count(*) from cafe24_private.mall_verifications)::int
          + (select count(*) from cafe24_private.connection_events)::int as n`;
      return row!.n;
    };
    const rowsBefore = await rows();

    await t.step(
      "500 notices without the key: 401, no rows, a couple of counted lines",
      async () => {
        const statuses: number[] = [];
        for (let batch = 0; batch < 25; batch++) {
          statuses.push(
            ...await Promise.all(Array.from({ length: 20 }, (_, i) =>
              postNotice(
                stack,
                appDeletedNotice("f5mall"),
                (batch * 20 + i) % 2 === 0 ? {} : { "x-api-key": "not-the-key" },
              ))),
          );
        }
        assert.equal(statuses.length, 500);
        assert.ok(statuses.every((s) => s === 401), JSON.stringify([...new Set(statuses)]));
        const counted = await waitFor("a counted line", () => {
          const lines = logLines(stack, "unauthenticated_requests")
            .filter((line) => line.function === "cafe24-webhook");
          return lines.length > 0 ? lines : null;
        });
        assert.ok(counted.length <= 2, `${counted.length} lines`);
        assert.deepEqual(noticeLogs(stack, "f5mall"), []);
        assert.equal(await rows(), rowsBefore);
        assert.equal(sandbox.counters().byMall.f5mall?.shopsRequests ?? 0, 0);
        assert.equal((await connectionState(db, id)).status, "active");
      },
    );

    await t.step("a notice with the key, from the sandbox's sender, is verified", async () => {
      const sent = await fetch(`${sandbox.url}/__sandbox/notices`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${sandbox.controlToken}`,
        },
        body: JSON.stringify({
          mall_id: "f5mall",
          event_no: 90077,
          url: `${stack.functions.url}/cafe24-webhook`,
          api_key: WEBHOOK_KEY,
          client_id: CLIENT_ID,
        }),
      });
      assert.deepEqual(await sent.json(), { status: 200 });
      const [log] = await waitForNoticeLogs(stack, "f5mall", 1);
      assert.deepEqual(
        { outcome: log!.outcome, access: log!.access, action: log!.action },
        { outcome: "verified", access: "installed", action: "none" },
      );
      assert.equal(sandbox.counters().byMall.f5mall!.shopsRequests, 1);
    });
  } finally {
    await stack.stop();
  }
}
