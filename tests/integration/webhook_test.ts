/**
 * cafe24-webhook: Cafe24's app-deleted notice is a hint, never proof. It costs at most one
 * verification request per mall per 10 minutes, answers the same to everyone, never refreshes a
 * mall, and only Cafe24's own answer to the verification changes a connection. A notice that is
 * not verified is only counted (unauthenticated_requests): such steps run in a functions process
 * of their own, whose first counted line is written at once. Real PostgreSQL, the functions over
 * HTTP and the Cafe24 sandbox.
 */
import assert from "node:assert/strict";
import { waitFor } from "../support/wait.ts";
import {
  cafe24Entry,
  CLIENT_ID,
  connectionState,
  connectMall,
  startRefreshStack,
} from "../support/stack.ts";
import { recordTokensSeen } from "../support/tokens_seen.ts";

interface NoticeLog {
  mall_id: string;
  outcome: "verified" | "deferred";
  after: "notice" | "refresh";
  access?: string | null;
  action?: string;
}

Deno.test("cafe24-webhook", async (t) => {
  const stack = await startRefreshStack();
  try {
    const { db, sandbox, functions } = stack;
    const tokensSeen = recordTokensSeen(stack);
    const notice = async (body: unknown, raw = false, url = functions.url) => {
      const response = await fetch(`${url}/cafe24-webhook`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: raw ? String(body) : JSON.stringify(body),
      });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { received: true });
    };
    const deleted = (mallId: string, extra: Record<string, unknown> = {}) => ({
      event_no: 90077,
      resource: {
        mall_id: mallId,
        client_id: CLIENT_ID,
        app_name: "connector",
        deleted_date: "2026-12-01T12:30:15+09:00",
        ...extra,
      },
    });
    const noticeLogs = (mallId: string, output = functions.output): NoticeLog[] =>
      output.flatMap((line) => {
        try {
          const entry = JSON.parse(line);
          return entry.event === "cafe24_app_notice" && entry.mall_id === mallId ? [entry] : [];
        } catch {
          return [];
        }
      });
    const waitForLogs = (mallId: string, count: number) =>
      waitFor(`${count} notice log lines for ${mallId}`, () => {
        const logs = noticeLogs(mallId);
        return logs.length >= count ? logs : null;
      });
    // The first counted line of a fresh functions process: what its not-verified notices came to.
    const countedNotVerified = (output: string[]) =>
      waitFor("a counted line of notices not verified", () => {
        for (const line of output) {
          try {
            const entry = JSON.parse(line);
            if (entry.event === "unauthenticated_requests" && entry.function === "cafe24-webhook") {
              return entry.reasons.notice_not_verified as number;
            }
          } catch {
            // Not a log line.
          }
        }
        return null;
      });
    const shopsRequests = (mallId: string) => sandbox.counters().byMall[mallId]?.shopsRequests ?? 0;
    const eventCount = async () => {
      const [row] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from cafe24_private.connection_events`;
      return row!.n;
    };

    await t.step(
      "a forged notice costs one verification request and changes nothing",
      async () => {
        const { id } = await connectMall(stack, "whhealthy");
        const entry = await cafe24Entry(db, id);
        const events = await eventCount();
        // Cafe24 answers slowly: the notice's answer must not wait for the verification.
        sandbox.setFaults("whhealthy", { latencyMs: 1_500 });
        await notice(deleted("whhealthy"));
        assert.deepEqual(noticeLogs("whhealthy"), [], "answered before the verification ended");
        const [log] = await waitForLogs("whhealthy", 1);
        sandbox.clearFaults();
        assert.equal(log!.outcome, "verified");
        assert.equal(log!.access, "installed");
        assert.equal(log!.action, "none");
        assert.equal(shopsRequests("whhealthy"), 1);
        assert.deepEqual(await cafe24Entry(db, id), entry);
        assert.equal((await connectionState(db, id)).status, "active");
        assert.equal(await eventCount(), events);

        const counting = await stack.startFunctions();
        await notice({ ...deleted("whhealthy"), event_no: 90078 }, false, counting.url);
        assert.equal(await countedNotVerified(counting.output), 1, "a second notice within 10 min");
        assert.equal(shopsRequests("whhealthy"), 1, "sends nothing");
        assert.deepEqual(
          noticeLogs("whhealthy", counting.output),
          [],
          "and logs no line of its own",
        );

        // Ten minutes later the mall may be verified again.
        await db.sql`
          update cafe24_private.mall_verifications
          set last_started_at = now() - interval '10 minutes 1 second'
          where mall_id = 'whhealthy'`;
        await notice(deleted("whhealthy"));
        assert.equal((await waitForLogs("whhealthy", 2))[1]!.outcome, "verified");
        assert.equal(shopsRequests("whhealthy"), 2);
      },
    );

    await t.step("notices racing for one mall verify it once", async () => {
      await connectMall(stack, "whrace");
      const counting = await stack.startFunctions();
      await Promise.all(
        Array.from({ length: 6 }, () => notice(deleted("whrace"), false, counting.url)),
      );
      const [verified] = await waitFor("the verification", () => {
        const logs = noticeLogs("whrace", counting.output);
        return logs.length > 0 ? logs : null;
      });
      assert.equal(verified!.outcome, "verified");
      // The first not-verified notice is counted at once; the rest join the next counted line.
      assert.ok(await countedNotVerified(counting.output) >= 1);
      assert.equal(noticeLogs("whrace", counting.output).length, 1, "one line for six notices");
      assert.equal(shopsRequests("whrace"), 1);
    });

    await t.step("anything else is answered the same and costs nothing", async () => {
      await connectMall(stack, "whother");
      const before = sandbox.counters().requests;
      const ignored: [unknown, boolean][] = [
        [deleted("whother", { client_id: "someone-elses-app" }), false],
        [{ ...deleted("whother"), event_no: 90079 }, false],
        [{ event_no: 90077, resource: { mall_id: "Not A Mall" } }, false],
        [{ event_no: 90077 }, false],
        [[deleted("whother")], false],
        ["not json at all", true],
      ];
      for (const [body, raw] of ignored) await notice(body, raw);
      // Like every function, it reads at most 16 KiB of a body.
      const oversized = await fetch(`${functions.url}/cafe24-webhook`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(deleted("whother", { padding: "x".repeat(17 * 1024) })),
      });
      assert.equal(oversized.status, 413);
      assert.deepEqual(await oversized.json(), { error: "BODY_TOO_LARGE" });
      assert.deepEqual(sandbox.counters().requests, before);
      assert.deepEqual(noticeLogs("whother"), []);

      // A mall with no connection here: no request, and no row for made-up mall ids either.
      const counting = await stack.startFunctions();
      await notice(deleted("whnowhere"), false, counting.url);
      assert.equal(await countedNotVerified(counting.output), 1);
      assert.deepEqual(noticeLogs("whnowhere", counting.output), []);
      assert.deepEqual(sandbox.counters().requests, before);
      const rows = await db.sql`
        select 1 from cafe24_private.mall_verifications where mall_id = 'whnowhere'`;
      assert.equal(rows.length, 0);
      // client_id is optional in a notice; without it, the mall is verified.
      await notice({ event_no: "90077", resource: { mall_id: "whother" } });
      assert.equal((await waitForLogs("whother", 1))[0]!.outcome, "verified");
    });

    await t.step("a missing-scope 403 proves nothing", async () => {
      sandbox.addMall("whscope", { scopes: ["mall.read_product"] });
      const { id } = await connectMall(stack, "whscope");
      await notice(deleted("whscope"));
      const [log] = await waitForLogs("whscope", 1);
      assert.equal(log!.access, "missing_scope");
      assert.equal(log!.action, "none");
      assert.equal((await connectionState(db, id)).status, "active");
    });

    await t.step(
      "Cafe24 confirming the deletion disconnects with APP_UNINSTALLED, without a revoke",
      async () => {
        const { id } = await connectMall(stack, "whgone");
        sandbox.addMall("whgone", { shopsStatus: 403 });
        const revokes = sandbox.counters().requests.revoke;
        await notice(deleted("whgone"));
        const [log] = await waitForLogs("whgone", 1);
        assert.equal(log!.access, "app_deleted");
        assert.equal(log!.action, "disconnected");
        const state = await connectionState(db, id);
        assert.equal(state.status, "disconnected");
        assert.equal(state.last_error_code, "APP_UNINSTALLED");
        const entry = await cafe24Entry(db, id);
        assert.equal(entry.refresh_token, undefined);
        assert.equal(entry.access_token, undefined);
        assert.equal(entry.mall_id, "whgone");
        assert.equal(sandbox.counters().requests.revoke, revokes, "the app is gone: no revoke");
        const [event] = await db.sql<{ type: string; code: string }[]>`
          select type, code from cafe24_private.connection_events
          where auth_settings_id = ${id} order by id desc limit 1`;
        assert.deepEqual({ ...event }, { type: "disconnected", code: "APP_UNINSTALLED" });
      },
    );

    await t.step(
      "a dead access token: no refresh for the notice, a look after the next refresh",
      async () => {
        const stale = async (mallId: string) => {
          const { id } = await connectMall(stack, mallId);
          await db.sql`
            update public.auth_settings
            set providers = jsonb_set(providers, '{cafe24,access_token}', '"no-longer-valid"')
            where id = ${id}`;
          return id;
        };

        const alive = await stale("whstale");
        const aliveToken = (await cafe24Entry(db, alive)).refresh_token;
        await notice(deleted("whstale"));
        const [log] = await waitForLogs("whstale", 1);
        assert.deepEqual(
          { outcome: log!.outcome, access: log!.access, action: log!.action },
          { outcome: "deferred", access: "unauthorized", action: "deferred" },
        );
        assert.equal(shopsRequests("whstale"), 1);
        assert.equal(sandbox.counters().byMall.whstale!.refreshRequests, 0, "no refresh");
        assert.equal((await cafe24Entry(db, alive)).refresh_token, aliveToken);
        const runs = await db.sql`
          select 1 from cafe24_private.refresh_runs where mall_id = 'whstale'`;
        assert.equal(runs.length, 0);

        const gone = await stale("whstalegone");
        sandbox.addMall("whstalegone", { shopsStatus: 403 });
        await notice(deleted("whstalegone"));
        assert.equal((await waitForLogs("whstalegone", 1))[0]!.outcome, "deferred");

        // The schedule's next run refreshes both; each is verified right after, once.
        const answer = await stack.refresh();
        assert.equal(answer.status, 200);
        await answer.body?.cancel();
        const [, after] = await waitForLogs("whstale", 2);
        assert.deepEqual(
          { after: after!.after, access: after!.access, action: after!.action },
          { after: "refresh", access: "installed", action: "none" },
        );
        assert.equal(shopsRequests("whstale"), 2);
        assert.equal(sandbox.counters().byMall.whstale!.refreshSuccesses, 1);
        const [, goneLog] = await waitForLogs("whstalegone", 2);
        assert.deepEqual(
          { after: goneLog!.after, access: goneLog!.access, action: goneLog!.action },
          { after: "refresh", access: "app_deleted", action: "disconnected" },
        );
        assert.equal((await connectionState(db, gone)).last_error_code, "APP_UNINSTALLED");
      },
    );

    await t.step("no token in a log line", () => {
      const tokens = tokensSeen();
      assert.ok(tokens.length >= 10, `tokens were captured (${tokens.length})`);
      const logs = functions.output.join("\n");
      for (const token of tokens) assert.ok(!logs.includes(token), "a token was logged");
    });

    await t.step("only POST", async () => {
      const answer = await fetch(`${functions.url}/cafe24-webhook`);
      assert.equal(answer.status, 405);
      await answer.body?.cancel();
    });
  } finally {
    await stack.stop();
  }
});
