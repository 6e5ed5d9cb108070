/**
 * cafe24-refresh end to end: the function over HTTP, the Cafe24 sandbox over HTTP, real
 * PostgreSQL with the migrations. The sandbox's counters say what happened at "Cafe24".
 */
import { recordTokensSeen } from "../support/tokens_seen.ts";
import assert from "node:assert/strict";
import {
  cafe24Entry,
  CLIENT_SECRET,
  connectionState,
  connectMall,
  CRON_SECRET,
  insertConnection,
  providersEntry,
  startRefreshStack,
} from "../support/stack.ts";
import { formatKst } from "../../local/cafe24_sandbox.ts";

const HOUR_MS = 60 * 60 * 1000;

Deno.test("cafe24-refresh", async (t) => {
  const stack = await startRefreshStack();
  const { db, sandbox } = stack;
  try {
    await t.step(
      "rotates a due mall's pair, keeps every other key, stores instants with offsets",
      async () => {
        const { id } = await connectMall(stack, "shopalpha", {
          extra: { scope: "mall.read_store", shop_no: 2, board_no: 7 },
          otherProviders: { google: { refresh_token: "google-keep-me" } },
        });
        const response = await stack.refresh();
        const summary = await response.json();
        assert.equal(response.status, 200);
        assert.equal(summary.refreshed, 1);
        assert.equal(summary.failed, 0);
        assert.equal(summary.scanned, summary.refreshed + summary.failed + summary.skipped);

        const entry = await cafe24Entry(db, id);
        assert.equal(entry.refresh_token, sandbox.liveRefreshToken("shopalpha"));
        assert.equal(entry.scope, "mall.read_store");
        assert.equal(entry.shop_no, 2);
        assert.equal(entry.board_no, 7);
        assert.match(String(entry.expires_at), /(Z|[+-]\d{2}:\d{2})$/);
        // The sandbox issued the pair "now" on its clock with a 2 h life, as Korea wall time.
        const expiresAt = Date.parse(String(entry.expires_at));
        assert.ok(Math.abs(expiresAt - (sandbox.clock.now() + 2 * HOUR_MS)) < 60_000);
        assert.ok(Array.isArray(entry.scopes));
        const [row] = await db
          .sql`select providers -> 'google' as google from auth_settings where id = ${id}`;
        assert.deepEqual(row!.google, { refresh_token: "google-keep-me" });
      },
    );

    await t.step(
      "a second run right after refreshes nothing: the mall is no longer due",
      async () => {
        const before = sandbox.counters().requests.token_refresh;
        const summary = await (await stack.refresh()).json();
        assert.equal(summary.refreshed, 0);
        assert.equal(summary.skipped_reasons.not_due, 1);
        assert.equal(sandbox.counters().requests.token_refresh, before);
      },
    );

    await t.step("force=true refreshes a mall that is not due", async () => {
      const summary = await (await stack.refresh({ force: "true", mall_id: "shopalpha" })).json();
      assert.equal(summary.refreshed, 1);
      assert.equal(summary.scanned, 1);
    });

    await t.step(
      "providers.cafe24.scopes follows the grant; a refresh with the same grant leaves providers alone",
      async () => {
        const read = async () => {
          const [row] = await db.sql<{ granted: unknown; mirrored: unknown; written: Date }[]>`
            select s.providers -> 'cafe24' -> 'scopes' as granted, c.scopes as mirrored,
              s.updated_at as written
            from auth_settings s join cafe24_private.connections c on c.auth_settings_id = s.id
            where c.mall_id = 'shopalpha'`;
          return row!;
        };
        const refreshOnce = async () => {
          const summary = await (await stack.refresh({ force: "true", mall_id: "shopalpha" }))
            .json();
          assert.equal(summary.refreshed, 1);
        };
        const granted = (await read()).granted;
        assert.ok(Array.isArray(granted) && granted.length > 0);
        assert.deepEqual((await read()).mirrored, granted);

        // The same grant again: the providers document is not rewritten.
        const before = await read();
        await refreshOnce();
        assert.deepEqual(await read(), before);

        // Someone edits the scopes in providers: the mirror follows, and the next refresh puts
        // back what Cafe24 granted.
        await db.sql`
          update auth_settings s
          set providers = jsonb_set(providers, '{cafe24,scopes}', '["edited.by_hand"]')
          where s.id = (select auth_settings_id from cafe24_private.connections
            where mall_id = 'shopalpha')`;
        assert.deepEqual((await read()).mirrored, ["edited.by_hand"]);
        await refreshOnce();
        const after = await read();
        assert.deepEqual([after.granted, after.mirrored], [granted, granted]);

        // A row whose mirror is still empty (as every row before the mirror existed) reads
        // providers once and fills it, without rewriting providers.
        await db.sql`
          update cafe24_private.connections set scopes = null where mall_id = 'shopalpha'`;
        const unmirrored = await read();
        await refreshOnce();
        assert.deepEqual(await read(), { ...unmirrored, mirrored: granted });
      },
    );

    await t.step(
      "invalid_grant marks the mall reconnect_required and later runs leave it alone",
      async () => {
        const { id } = await connectMall(stack, "shopdead");
        sandbox.revokeRefreshToken("shopdead");
        const tokenBefore = (await cafe24Entry(db, id)).refresh_token;
        const summary = await (await stack.refresh({ mall_id: "shopdead" })).json();
        assert.equal(summary.failed, 1);
        assert.match(summary.failures[0].reason, /^CAFE24_INVALID_GRANT: /);
        const state = await connectionState(db, id);
        assert.equal(state.status, "reconnect_required");
        assert.equal((await cafe24Entry(db, id)).refresh_token, tokenBefore);

        const requests = sandbox.counters().byMall.shopdead!.refreshRequests;
        const again = await (await stack.refresh({ mall_id: "shopdead", force: "true" })).json();
        assert.equal(again.skipped_reasons.reconnect_required, 1);
        assert.equal(sandbox.counters().byMall.shopdead!.refreshRequests, requests);
      },
    );

    await t.step(
      "a transient 503 schedules a retry with backoff and changes no token",
      async () => {
        const { id, refreshToken } = await connectMall(stack, "shopflaky");
        sandbox.queueFaults("shopflaky", ["server_error"]);
        const summary = await (await stack.refresh({ mall_id: "shopflaky" })).json();
        assert.equal(summary.failed, 1);
        const state = await connectionState(db, id);
        assert.equal(state.status, "active");
        assert.ok(
          state.next_attempt_at !== null && state.next_attempt_at.getTime() > Date.now() + 25_000,
        );
        assert.equal((await cafe24Entry(db, id)).refresh_token, refreshToken);
        const again = await (await stack.refresh({ mall_id: "shopflaky" })).json();
        assert.equal(again.skipped_reasons.backing_off, 1);
        assert.equal(sandbox.counters().byMall.shopflaky!.refreshRequests, 1);
      },
    );

    await t.step("a Retry-After on 429 is honoured as the earliest retry", async () => {
      const { id } = await connectMall(stack, "shopbusy");
      sandbox.setFaults("shopbusy", { retryAfterSeconds: 600 });
      sandbox.queueFaults("shopbusy", ["rate_limited_retry_after"]);
      await (await stack.refresh({ mall_id: "shopbusy" })).json();
      sandbox.clearFaults();
      const state = await connectionState(db, id);
      assert.equal(state.last_error_code, "CAFE24_RATE_LIMITED");
      assert.ok(state.next_attempt_at!.getTime() >= Date.now() + 590_000);
    });

    await t.step("an unsafe mall_id fails INVALID_MALL_ID and no request leaves", async () => {
      const before = sandbox.counters().requests;
      const id = await insertConnection(db, {
        mallId: "evil.example/x#",
        refreshToken: "rt-unsafe",
      });
      const summary = await (await stack.refresh({ force: "true" })).json();
      const failure = summary.failures.find((f: { id: string }) => f.id === id);
      assert.match(failure.reason, /^INVALID_MALL_ID: /);
      const after = sandbox.counters().requests;
      assert.equal(after.other, before.other);
      assert.equal((await cafe24Entry(db, id)).refresh_token, "rt-unsafe");
    });

    await t.step("no token or secret appears in any response or log line", async () => {
      const output = stack.functions.output.join("\n");
      // Every token the sandbox issued (the database holds them sealed).
      const tokens = recordTokensSeen(stack)();
      assert.ok(tokens.length > 0);
      for (const secret of [...tokens, CRON_SECRET, CLIENT_SECRET]) {
        assert.ok(!output.includes(secret), "a secret appeared in the function's output");
      }
      const [summaryRow] = await db.sql<{ summaries: string }[]>`
        select coalesce(string_agg(summary::text, ' '), '') as summaries from cafe24_private.refresh_runs`;
      const summaries = summaryRow!.summaries;
      for (const secret of [...tokens, CRON_SECRET, CLIENT_SECRET]) {
        assert.ok(!summaries.includes(secret), "a secret appeared in a run summary");
      }
    });

    await t.step("every run is in the history with consistent counts", async () => {
      const runs = await db.sql<{ status: string; summary: Record<string, number> }[]>`
        select status, summary from cafe24_private.refresh_runs order by started_at`;
      assert.ok(runs.length >= 7);
      for (const run of runs) {
        assert.equal(run.status, "finished");
        const s = run.summary;
        assert.equal(s.scanned, s.refreshed! + s.failed! + s.skipped!);
      }
    });

    await t.step(
      "CAFE24_PLAINTEXT_TOKEN_COPY copies the access token into providers, never the refresh token",
      async () => {
        const { id } = await connectMall(stack, "shopcopy", { extra: { shop_no: 3 } });
        const copying = await stack.startFunctions({ CAFE24_PLAINTEXT_TOKEN_COPY: "true" });
        const response = await fetch(`${copying.url}/cafe24-refresh?mall_id=shopcopy`, {
          method: "POST",
          headers: { "x-cron-secret": CRON_SECRET },
        });
        const summary = await response.json();
        assert.equal(summary.refreshed, 1);
        assert.deepEqual(summary.warnings, ["PLAINTEXT_TOKEN_COPY"]);
        const stored = await cafe24Entry(db, id);
        const shown = await providersEntry(db, id);
        assert.equal(shown.access_token, stored.access_token);
        assert.equal(Date.parse(String(shown.expires_at)), Date.parse(String(stored.expires_at)));
        assert.equal(shown.refresh_token, undefined);
        assert.equal(shown.shop_no, 3);

        // The app writes back what it read: the copy stays a copy, the pair is untouched.
        const [before] = await db.sql<{ token_version: string }[]>`
          select token_version from cafe24_private.connections where auth_settings_id = ${id}`;
        await db.sql`
          update auth_settings set providers = jsonb_set(providers, '{cafe24,board_no}', '9')
          where id = ${id}`;
        assert.deepEqual(await providersEntry(db, id), { ...shown, board_no: 9 });
        const [after] = await db.sql<{ token_version: string }[]>`
          select token_version from cafe24_private.connections where auth_settings_id = ${id}`;
        assert.equal(after!.token_version, before!.token_version);
        assert.equal((await cafe24Entry(db, id)).refresh_token, stored.refresh_token);
      },
    );

    await t.step("KST: sandbox timestamps carry no offset", () => {
      assert.match(formatKst(Date.UTC(2021, 2, 1, 5)), /^2021-03-01T14:00:00\.000$/);
    });
  } finally {
    await stack.stop();
  }
});
