/**
 * cafe24-token: the app's server code asks for a connection's access token with the project's
 * secret API key and gets one valid for as long as it asked, refreshed first when needed, one
 * refresh per connection however many callers race. Real PostgreSQL with the migrations, the
 * functions over HTTP (two processes where it matters), the Cafe24 sandbox, a local JWKS.
 */
import assert from "node:assert/strict";
import { startTestAuth } from "../support/auth.ts";
import { logLines } from "../support/logs.ts";
import {
  API_KEYS_ENV,
  connectionState,
  connectStackOptions,
  CRON_SECRET,
  insertConnection,
  OTHER_SECRET_KEY,
  type RefreshStack,
  SECRET_KEY,
  SERVICE_ROLE_KEY,
  startRefreshStack,
} from "../support/stack.ts";
import { recordTokensSeen } from "../support/tokens_seen.ts";
import { waitFor } from "../support/wait.ts";
import type { FunctionsServer } from "../../local/functions/server.ts";

const HOUR_MS = 60 * 60_000;

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

const iso = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();

Deno.test("cafe24-token", async (t) => {
  const auth = await startTestAuth();
  const options = connectStackOptions(auth);
  let stack: RefreshStack | undefined;
  try {
    stack = await startRefreshStack({
      ...options,
      env: {
        ...options.env,
        ...API_KEYS_ENV,
      },
    });
    const { db, sandbox } = stack;
    const tokensSeen = recordTokensSeen(stack);
    const servers: FunctionsServer[] = [stack.functions];
    const answers: string[] = [];

    const token = async (
      params: Record<string, string>,
      headers: Record<string, string> = { apikey: SECRET_KEY },
      server: FunctionsServer = stack!.functions,
    ): Promise<Answer> => {
      const url = new URL(`${server.url}/cafe24-token`);
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
      const response = await fetch(url, { headers });
      const text = await response.text();
      answers.push(text);
      return { status: response.status, body: JSON.parse(text), headers: response.headers };
    };
    /** A connection whose stored access token expires `expiresInMs` from now. */
    const seed = async (
      mallId: string,
      expiresInMs: number,
      extra: Record<string, unknown> = {},
    ) => {
      const issued = sandbox.issueTokens(mallId);
      const id = await insertConnection(db, {
        mallId,
        refreshToken: issued.refreshToken,
        accessToken: issued.accessToken,
        expiresAt: iso(expiresInMs),
        extra: {
          shop_no: 1,
          scopes: issued.scopes,
          refresh_token_expires_at: iso(13 * 24 * HOUR_MS),
          ...extra,
        },
      });
      return { id, accessToken: issued.accessToken };
    };
    const refreshRequests = (mallId: string) =>
      sandbox.counters().byMall[mallId]?.refreshRequests ?? 0;
    const liveAccessToken = (mallId: string) => sandbox.livePairs(mallId).at(-1)?.accessToken;

    await t.step("a token valid long enough is answered as stored, with no request", async () => {
      const { id, accessToken } = await seed("tkfresh", HOUR_MS);
      const answer = await token({ mall_id: "tkfresh" });
      assert.equal(answer.status, 200);
      const stored = await db.sql<{ access_expires_at: Date }[]>`
        select access_expires_at from cafe24_private.connections where auth_settings_id = ${id}`;
      assert.deepEqual(answer.body, {
        access_token: accessToken,
        expires_at: stored[0]!.access_expires_at.toISOString(),
        mall_id: "tkfresh",
        shop_no: 1,
        scopes: sandbox.livePairs("tkfresh")[0]!.scopes,
      });
      assert.equal(answer.headers.get("cache-control"), "no-store");
      assert.equal(refreshRequests("tkfresh"), 0);
      const [row] = await db.sql<{ token_requested_at: Date | null }[]>`
        select token_requested_at from cafe24_private.connections where auth_settings_id = ${id}`;
      assert.ok(row!.token_requested_at !== null, "the request is noted for keep_alive");

      const byId = await token({ auth_settings_id: id }, { authorization: `Bearer ${SECRET_KEY}` });
      assert.equal(byId.status, 200);
      assert.equal(byId.body.access_token, accessToken);
    });

    await t.step("min_valid_s beyond the remaining life forces exactly one refresh", async () => {
      const before = await seed("tklong", HOUR_MS);
      const answer = await token({ mall_id: "tklong", min_valid_s: "5400" });
      assert.equal(answer.status, 200);
      assert.equal(refreshRequests("tklong"), 1);
      assert.notEqual(answer.body.access_token, before.accessToken);
      assert.equal(answer.body.access_token, liveAccessToken("tklong"));
      const expiresAt = Date.parse(String(answer.body.expires_at));
      assert.ok(Math.abs(expiresAt - (sandbox.clock.now() + 2 * HOUR_MS)) < 60_000);
      const [run] = await db.sql<
        { trigger: string; status: string; mall_id: string; summary: Record<string, number> }[]
      >`
        select trigger, status, mall_id, summary from cafe24_private.refresh_runs
        where trigger = 'token' and mall_id = 'tklong'`;
      assert.equal(run!.status, "finished");
      assert.equal(run!.summary.refreshed, 1);

      const again = await token({ mall_id: "tklong", min_valid_s: "5400" });
      assert.equal(again.body.access_token, answer.body.access_token, "fresh now: no refresh");
      assert.equal(refreshRequests("tklong"), 1);
    });

    await t.step(
      "50 callers in two processes racing on one expiring mall: one token request, one answer",
      async () => {
        const second = await stack!.startFunctions();
        servers.push(second);
        // Both processes warm (modules loaded, database connected), so the callers really race.
        for (const server of [stack!.functions, second]) {
          assert.equal((await token({ mall_id: "tkfresh" }, undefined, server)).status, 200);
        }
        await seed("tkrace", 60_000);
        // Slow enough at "Cafe24" that the callers overlap the refresh in flight.
        sandbox.setFaults("tkrace", { latencyMs: 300 });
        const results = await Promise.all(
          Array.from(
            { length: 50 },
            (_, i) =>
              token({ mall_id: "tkrace" }, undefined, i % 2 === 0 ? stack!.functions : second),
          ),
        );
        sandbox.clearFaults();
        assert.deepEqual(results.map((r) => r.status), Array(50).fill(200));
        const tokens = new Set(results.map((r) => r.body.access_token));
        assert.equal(tokens.size, 1, "50 identical answers");
        assert.equal([...tokens][0], liveAccessToken("tkrace"));
        const counters = sandbox.counters();
        assert.equal(counters.byMall.tkrace!.refreshRequests, 1, "exactly one token request");
        assert.equal(counters.byMall.tkrace!.refreshSuccesses, 1);
        assert.equal(counters.concurrentRefreshViolations, 0);
        // Callers in one process share one refresh: at most one run per process, one refreshed;
        // the other process's run, if it started one, found the lease.
        const runs = await db.sql<{ refreshed: number; leased: number }[]>`
          select (summary ->> 'refreshed')::int as refreshed,
            (summary -> 'skipped_reasons' ->> 'leased')::int as leased
          from cafe24_private.refresh_runs where trigger = 'token' and mall_id = 'tkrace'
          order by refreshed desc`;
        assert.ok(runs.length <= 2, `${runs.length} runs`);
        assert.deepEqual(runs[0], { refreshed: 1, leased: 0 });
        if (runs.length === 2) assert.deepEqual(runs[1], { refreshed: 0, leased: 1 });
      },
    );

    await t.step(
      "a scheduled run holding the lease is waited for, and its new pair is the answer",
      async () => {
        const held = await seed("tkcron", 60_000);
        const [run] = await db.sql<{ id: string }[]>`
          select cafe24_private.start_refresh_run(p_trigger => 'cron', p_mode => 'async',
            p_refresh_margin => interval '30 minutes', p_lease_duration => interval '75 seconds',
            p_mall_id => 'tkcron') as id`;
        const [claimed] = await db.sql<{ token_version: string }[]>`
          select * from cafe24_private.claim_due_pairs(${run!.id}, 1)`;
        const pending = token({ mall_id: "tkcron" });
        // The caller has read the row (and noted the request): it now waits on the lease.
        await waitFor("the request to be noted", async () => {
          const [row] = await db.sql<{ token_requested_at: Date | null }[]>`
            select token_requested_at from cafe24_private.connections
            where auth_settings_id = ${held.id}`;
          return row!.token_requested_at !== null;
        });
        // The scheduled run's answer arrives: a new pair, stored by the run that holds the lease.
        const next = sandbox.issueTokens("tkcron");
        await db.sql`
          select * from cafe24_private.store_refreshed_tokens(${run!.id}, ${held.id},
            ${claimed!.token_version}::bigint, ${
          db.sql.json({
            access_token: next.accessToken,
            refresh_token: next.refreshToken,
            expires_at: iso(2 * HOUR_MS),
          })
        })`;
        const answer = await pending;
        assert.equal(answer.status, 200);
        assert.equal(answer.body.access_token, next.accessToken);
        assert.equal(refreshRequests("tkcron"), 0, "the caller sent nothing itself");
      },
    );

    await t.step("a lease whose holder died is waited out, then refreshed once", async () => {
      const held = await seed("tkdied", 60_000);
      // A claim whose worker died mid-request: its lease runs out in a second and a half.
      await db.sql`
        update cafe24_private.connections
        set lease_id = gen_random_uuid(), lease_expires_at = now() + interval '1.5 seconds',
          in_flight_since = now(), last_claimed_at = now()
        where auth_settings_id = ${held.id}`;
      const [lease] = await db.sql<{ lease_expires_at: Date }[]>`
        select lease_expires_at from cafe24_private.connections
        where auth_settings_id = ${held.id}`;
      const answer = await token({ mall_id: "tkdied" });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.access_token, liveAccessToken("tkdied"));
      assert.notEqual(answer.body.access_token, held.accessToken);
      assert.equal(refreshRequests("tkdied"), 1);
      const [log] = sandbox.refreshLog().filter((entry) => entry.mallId === "tkdied");
      assert.ok(log!.receivedAtMs >= lease!.lease_expires_at.getTime() - 50, "not before it ended");
    });

    await t.step("only the project's secret API key is accepted", async () => {
      await seed("tkkeys", HOUR_MS);
      const quiet = await stack!.startFunctions();
      servers.push(quiet);
      const user = await auth.mint({ sub: crypto.randomUUID() });
      const refused: Record<string, string>[] = [
        {},
        { apikey: "sb_secret_wrong_0123456789abcdefghij" },
        { authorization: "Bearer sb_secret_wrong_0123456789abcdefghij" },
        { "x-cron-secret": CRON_SECRET },
        { authorization: `Bearer ${CRON_SECRET}` },
        { apikey: CRON_SECRET },
        { apikey: auth.anonKey },
        { apikey: auth.anonKey, authorization: `Bearer ${user}` },
        { authorization: `Bearer ${user}` },
      ];
      for (const headers of refused) {
        const answer = await token({ mall_id: "tkkeys" }, headers, quiet);
        assert.deepEqual(
          { status: answer.status, body: answer.body },
          { status: 401, body: { error: "UNAUTHORIZED" } },
          JSON.stringify(Object.keys(headers)),
        );
      }
      for (
        const headers of [
          { apikey: SECRET_KEY },
          { authorization: `Bearer ${SECRET_KEY}` },
          { apikey: OTHER_SECRET_KEY },
          { apikey: SERVICE_ROLE_KEY, authorization: `Bearer ${SERVICE_ROLE_KEY}` },
        ]
      ) {
        assert.equal((await token({ mall_id: "tkkeys" }, headers, quiet)).status, 200);
      }

      // A marker after the refusals on the same stream: authorize's own first line.
      const marker = await fetch(`${quiet.url}/cafe24-authorize?mall_id=tkmark&mode=json`);
      assert.equal(marker.status, 401);
      await marker.body?.cancel();
      await waitFor(
        "authorize's unauthenticated_requests line",
        () =>
          logLines(quiet, "unauthenticated_requests").some((line) =>
            line.function === "cafe24-authorize"
          ),
      );
      const lines = logLines(quiet, "unauthenticated_requests")
        .filter((line) => line.function === "cafe24-token");
      assert.equal(lines.length, 1, "9 refusals, one line (the first, at once)");
      assert.deepEqual(lines[0]!.reasons, { no_credentials: 1 });

      const strict = await stack!.startFunctions({ CAFE24_ACCEPT_SERVICE_ROLE_KEY: "false" });
      servers.push(strict);
      assert.equal(
        (await token({ mall_id: "tkkeys" }, { apikey: SERVICE_ROLE_KEY }, strict)).status,
        401,
      );
      assert.equal(
        (await token({ mall_id: "tkkeys" }, { apikey: SECRET_KEY }, strict)).status,
        200,
      );
    });

    await t.step("a connection that needs its owner answers 409; an unknown one 404", async () => {
      await seed("tkdead", 60_000);
      sandbox.revokeRefreshToken("tkdead");
      const dead = await token({ mall_id: "tkdead" });
      assert.deepEqual(
        { status: dead.status, body: dead.body },
        { status: 409, body: { error: "RECONNECT_REQUIRED" } },
      );
      assert.equal(refreshRequests("tkdead"), 1, "Cafe24 refused the refresh token once");
      assert.equal((await token({ mall_id: "tkdead" })).status, 409);
      assert.equal(refreshRequests("tkdead"), 1, "and is not asked again");

      const gone = await seed("tkgone", HOUR_MS);
      const disconnected = await fetch(`${stack!.functions.url}/cafe24-disconnect`, {
        method: "POST",
        headers: { apikey: SECRET_KEY, "content-type": "application/json" },
        body: JSON.stringify({ mall_id: "tkgone" }),
      });
      assert.equal(disconnected.status, 200);
      await disconnected.body?.cancel();
      for (const params of [{ mall_id: "tkgone" }, { auth_settings_id: gone.id }]) {
        const answer = await token(params);
        assert.deepEqual(
          { status: answer.status, body: answer.body },
          { status: 409, body: { error: "RECONNECT_REQUIRED" } },
        );
      }

      const [other] = await db.sql<{ id: string }[]>`
        insert into public.auth_settings (user_id, providers)
        values (${crypto.randomUUID()}, '{"google": {"refresh_token": "g"}}') returning id`;
      for (
        const params of [
          { mall_id: "tknowhere" },
          { auth_settings_id: crypto.randomUUID() },
          { auth_settings_id: other!.id },
        ]
      ) {
        const answer = await token(params);
        assert.deepEqual(
          { status: answer.status, body: answer.body },
          { status: 404, body: { error: "NOT_FOUND" } },
          JSON.stringify(params),
        );
      }
    });

    await t.step("a mall held by several rows: the usable one, else ambiguous", async () => {
      // tkgone is disconnected on one row; another account connects the same mall.
      const second = await seed("tkgone", HOUR_MS);
      const answer = await token({ mall_id: "tkgone" });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.access_token, second.accessToken);

      const twin = await seed("tkgone", HOUR_MS);
      const ambiguous = await token({ mall_id: "tkgone" });
      assert.deepEqual(
        { status: ambiguous.status, body: ambiguous.body },
        { status: 409, body: { error: "MALL_ID_AMBIGUOUS" } },
      );
      const byId = await token({ auth_settings_id: twin.id });
      assert.equal(byId.body.access_token, twin.accessToken);
    });

    await t.step(
      "a transient failure: the still-valid token with refresh_failed, an expired one 503",
      async () => {
        const flaky = await seed("tkflaky", 60_000);
        sandbox.queueFaults("tkflaky", [{ kind: "server_error", status: 503 }]);
        const answer = await token({ mall_id: "tkflaky" });
        assert.equal(answer.status, 200);
        assert.equal(answer.body.access_token, flaky.accessToken);
        assert.equal(answer.body.refresh_failed, "CAFE24_SERVER_ERROR");
        assert.equal(refreshRequests("tkflaky"), 1);
        const state = await connectionState(db, flaky.id);
        assert.equal(state.last_error_code, "CAFE24_SERVER_ERROR");
        assert.ok(state.next_attempt_at !== null);
        // Backing off: the next caller gets the same answer without a request.
        const again = await token({ mall_id: "tkflaky" });
        assert.equal(again.body.refresh_failed, "CAFE24_SERVER_ERROR");
        assert.equal(refreshRequests("tkflaky"), 1);

        await seed("tkdown", -60_000);
        sandbox.queueFaults("tkdown", [{ kind: "server_error", status: 503 }]);
        const down = await token({ mall_id: "tkdown" });
        assert.equal(down.status, 503);
        assert.equal(down.body.error, "TOKEN_UNAVAILABLE");
        assert.equal(down.body.reason, "CAFE24_SERVER_ERROR");
        assert.ok(Number(down.body.retry_after_s) > 0);
        assert.equal(down.body.access_token, undefined);
        assert.equal(refreshRequests("tkdown"), 1);
      },
    );

    await t.step("bad requests answer 400 before anything is read", async () => {
      for (
        const [params, code] of [
          [{ mall_id: "tkfresh", min_valid_s: "abc" }, "INVALID_REQUEST"],
          [{ mall_id: "tkfresh", min_valid_s: "5401" }, "INVALID_REQUEST"],
          [{ mall_id: "tkfresh", min_valid_s: "-1" }, "INVALID_REQUEST"],
          [{ mall_id: "tkfresh", auth_settings_id: crypto.randomUUID() }, "INVALID_REQUEST"],
          [{}, "INVALID_REQUEST"],
          [{ mall_id: "Not-A-Mall" }, "INVALID_MALL_ID"],
        ] as const
      ) {
        const answer = await token(params);
        assert.equal(answer.status, 400, JSON.stringify(params));
        assert.equal(answer.body.error, code);
      }
      const posted = await fetch(`${stack!.functions.url}/cafe24-token`, {
        method: "POST",
        headers: { apikey: SECRET_KEY, "content-type": "application/json" },
        body: JSON.stringify({ mall_id: "tkfresh", min_valid_s: 60 }),
      });
      assert.equal(posted.status, 200);
      answers.push(await posted.text());
    });

    await t.step("claim_connection takes the same lease as claim_due_connections", async () => {
      const a = await seed("tkleasea", 60_000);
      const b = await seed("tkleaseb", 60_000);
      // An earlier attempt that died in flight on both: the claim remembers its answer may be lost.
      await db.sql`
        update cafe24_private.connections set in_flight_since = now() - interval '5 minutes'
        where auth_settings_id in (${a.id}, ${b.id})`;
      const start = (mallId: string) =>
        db.sql<{ id: string }[]>`
          select cafe24_private.start_refresh_run(p_trigger => 'token', p_mode => 'sync',
            p_refresh_margin => interval '5 minutes', p_lease_duration => interval '75 seconds',
            p_mall_id => ${mallId}) as id`.then(([row]) => row!.id);
      const runA = await start("tkleasea");
      const runB = await start("tkleaseb");
      const [claimedA] = await db.sql<{ verdict: string; auth_settings_id: string }[]>`
        select * from cafe24_private.claim_connection(${runA}, ${a.id})`;
      assert.equal(claimedA!.verdict, "due");
      const [claimedB] = await db.sql<{ auth_settings_id: string }[]>`
        select * from cafe24_private.claim_due_connections(${runB}, 1)`;
      assert.equal(claimedB!.auth_settings_id, b.id);
      const leases = await db.sql<Record<string, unknown>[]>`
        select auth_settings_id = ${a.id} as by_token, lease_id = case
            when auth_settings_id = ${a.id} then ${runA}::uuid else ${runB}::uuid end as own_lease,
          extract(epoch from lease_expires_at - in_flight_since)::int as lease_s,
          in_flight_since = last_claimed_at as claimed_now,
          extract(epoch from in_flight_since - answer_possibly_lost_at)::int / 60 as lost_min_ago
        from cafe24_private.connections where auth_settings_id in (${a.id}, ${b.id})
        order by 1`;
      const [due, token_] = leases.map(({ by_token: _, ...rest }) => rest);
      assert.deepEqual(token_, due);
      assert.deepEqual(due, { own_lease: true, lease_s: 75, claimed_now: true, lost_min_ago: 5 });

      const [again] = await db.sql<{ verdict: string; auth_settings_id: string | null }[]>`
        select * from cafe24_private.claim_connection(${runB}, ${a.id})`;
      assert.deepEqual({ ...again }, {
        verdict: "leased",
        auth_settings_id: null,
        mall_id: null,
        refresh_token: null,
        consecutive_failures: null,
        answer_possibly_lost: null,
      });
      assert.equal(
        (await db
          .sql`select * from cafe24_private.claim_connection(${runB}, ${crypto.randomUUID()})`)
          .length,
        0,
      );

      // A token run's margin is the validity its caller asked for: a token refreshed meanwhile
      // (here: valid for an hour) is not due, so a late caller never refreshes it again.
      const fresh = await seed("tkleasec", HOUR_MS);
      const runC = await start("tkleasec");
      const verdict = async (run: string, id: string) =>
        (await db.sql<{ verdict: string }[]>`
          select verdict from cafe24_private.claim_connection(${run}, ${id})`)[0]!.verdict;
      assert.equal(await verdict(runC, fresh.id), "not_due");
      await db.sql`
        update cafe24_private.connections
        set next_attempt_at = now() + interval '1 minute', due_at = '-infinity'
        where auth_settings_id = ${fresh.id}`;
      assert.equal(await verdict(await start("tkleasec"), fresh.id), "backing_off");
      const [untouched] = await db.sql<{ lease_id: string | null }[]>`
        select lease_id from cafe24_private.connections where auth_settings_id = ${fresh.id}`;
      assert.equal(untouched!.lease_id, null, "no lease unless due");
    });

    await t.step("no token ever appears in the functions' logs", () => {
      const seen = tokensSeen();
      assert.ok(seen.length > 10, `${seen.length} tokens seen`);
      const issued = answers.flatMap((text) => {
        const body = JSON.parse(text);
        return typeof body.access_token === "string" ? [body.access_token] : [];
      });
      assert.ok(issued.length > 50);
      assert.ok(logLines(stack!.functions, "cafe24_token_refresh").length > 0, "refreshes logged");
      for (const server of servers) {
        const output = server.output.join("\n");
        for (const value of [...seen, ...issued, SECRET_KEY, SERVICE_ROLE_KEY]) {
          assert.ok(!output.includes(value), "a token or key in the log");
        }
      }
    });
  } finally {
    await stack?.stop();
    await auth.close();
  }
});
