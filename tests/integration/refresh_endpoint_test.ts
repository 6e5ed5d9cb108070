/**
 * cafe24-refresh's HTTP contract: who may call it, what it answers when configuration is
 * missing or weak, how it reads its parameters, the asynchronous mode pg_cron uses, and the
 * limits: the request body size every function shares, "refresh now" from users at most once per
 * interval (held in the database, across function processes), and unauthenticated requests
 * counted into one log line instead of one line each.
 */
import assert from "node:assert/strict";
import { startTestAuth } from "../support/auth.ts";
import { logLines } from "../support/logs.ts";
import {
  connectMall,
  connectStackOptions,
  CRON_SECRET,
  type RefreshStack,
  startRefreshStack,
} from "../support/stack.ts";
import {
  RUN_SUMMARY_KEYS,
  type RunSummary,
} from "../../supabase/functions/_shared/refresh/summary.ts";
import { waitFor } from "../support/wait.ts";

const runCount = async (stack: RefreshStack) =>
  (await stack.db.sql<{ n: number }[]>`
    select count(*)::int as n from cafe24_private.refresh_runs`)[0]!.n;

Deno.test("cafe24-refresh endpoint", async (t) => {
  const auth = await startTestAuth();
  const stack = await startRefreshStack(connectStackOptions(auth));
  const { db } = stack;
  const url = (query = "") => `${stack.functions.url}/cafe24-refresh${query}`;
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  /** A signed-in user with a token for them. */
  const newUser = async () => {
    const id = crypto.randomUUID();
    return { id, jwt: await auth.mint({ sub: id }) };
  };
  try {
    await t.step(
      "no credentials, a wrong secret or a wrong bearer are 401 UNAUTHORIZED",
      async () => {
        for (
          const headers of [
            {},
            { "x-cron-secret": "wrong" },
            { "x-cron-secret": `${CRON_SECRET}x` },
            { authorization: "Bearer wrong" },
            { authorization: `Basic ${btoa(CRON_SECRET)}` },
          ]
        ) {
          const response = await fetch(url(), { method: "POST", headers });
          assert.equal(response.status, 401, JSON.stringify(Object.keys(headers)));
          assert.deepEqual(await response.json(), { error: "UNAUTHORIZED" });
        }
      },
    );

    await t.step(
      "the secret works as x-cron-secret and as a bearer token, with GET and POST",
      async () => {
        for (
          const init of [
            { method: "GET", headers: { "x-cron-secret": CRON_SECRET } },
            { method: "POST", headers: { authorization: `Bearer ${CRON_SECRET}` } },
          ]
        ) {
          const response = await fetch(url(), init);
          assert.equal(response.status, 200);
          const summary = await response.json();
          for (const key of RUN_SUMMARY_KEYS) assert.ok(key in summary, key);
          assert.deepEqual(summary.warnings, [], "a strong CRON_SECRET: nothing to warn about");
        }
      },
    );

    await t.step("CRON_SECRET unset is 500 CRON_SECRET_NOT_CONFIGURED", async () => {
      const bare = await stack.startFunctions({ CRON_SECRET: "" });
      const response = await fetch(`${bare.url}/cafe24-refresh`, {
        headers: { "x-cron-secret": "" },
      });
      assert.equal(response.status, 500);
      assert.deepEqual(await response.json(), { error: "CRON_SECRET_NOT_CONFIGURED" });
      await bare.stop();
    });

    await t.step(
      "missing configuration names every missing variable, after authentication",
      async () => {
        const partial = await stack.startFunctions({
          CAFE24_CLIENT_ID: "",
          CAFE24_CLIENT_SECRET_KEY: "",
        });
        const anonymous = await fetch(`${partial.url}/cafe24-refresh`);
        assert.equal(anonymous.status, 401);
        await anonymous.body?.cancel();
        const response = await fetch(`${partial.url}/cafe24-refresh`, {
          headers: { "x-cron-secret": CRON_SECRET },
        });
        assert.equal(response.status, 500);
        assert.deepEqual(await response.json(), {
          error: "CONFIG_MISSING",
          missing: ["CAFE24_CLIENT_ID", "CAFE24_CLIENT_SECRET_KEY"],
          rules: [
            "CAFE24_CLIENT_ID must be set to the app's client ID from Cafe24 Developers",
            "CAFE24_CLIENT_SECRET_KEY must be set to the app's client secret key from Cafe24 Developers",
          ],
        });
        assert.ok(
          partial.output.some((line) => line.includes("CAFE24_CLIENT_ID")),
          "the log names it too",
        );
        await partial.stop();
      },
    );

    await t.step(
      "an invalid tuning value runs with its default and a warning naming it and its rule, never its value",
      async () => {
        const broken = await stack.startFunctions({ CAFE24_REFRESH_CONCURRENCY: "lots" });
        const response = await fetch(`${broken.url}/cafe24-refresh`, {
          headers: { "x-cron-secret": CRON_SECRET },
        });
        assert.equal(response.status, 200);
        const body = await response.json();
        assert.equal(typeof body.run_id, "string", "the run went ahead");
        assert.deepEqual(body.warnings, ["CONFIG_VALUE_IGNORED"]);
        assert.ok(
          broken.output.some((line) =>
            line.includes("CAFE24_REFRESH_CONCURRENCY must be an integer from 1 to 64")
          ),
          "the log states the rule too",
        );
        assert.ok(!broken.output.join("\n").includes("lots"), "the value is never logged");
        await broken.stop();
      },
    );

    await t.step(
      "a state secret under 32 characters: authorize is 500 CONFIG_INVALID with the rule, the callback ends with CONFIG_INVALID",
      async () => {
        const shortSecret = "s".repeat(31);
        const weak = await stack.startFunctions({ CAFE24_OAUTH_STATE_SECRET: shortSecret });
        const { jwt } = await newUser();
        const authorize = await fetch(
          `${weak.url}/cafe24-authorize?mall_id=shopsecret&mode=json`,
          { headers: bearer(jwt) },
        );
        assert.equal(authorize.status, 500);
        const body = await authorize.text();
        assert.deepEqual(JSON.parse(body), {
          error: "CONFIG_INVALID",
          invalid: ["CAFE24_OAUTH_STATE_SECRET"],
          rules: [
            "CAFE24_OAUTH_STATE_SECRET must be a secret of at least 32 characters (openssl rand -base64 32)",
          ],
        });
        const callback = await fetch(`${weak.url}/cafe24-callback?code=c&state=s`, {
          redirect: "manual",
        });
        await callback.body?.cancel();
        assert.equal(callback.status, 302);
        const location = new URL(callback.headers.get("location") ?? "about:blank");
        assert.equal(location.searchParams.get("reason"), "CONFIG_INVALID");
        await weak.stop();
        const output = weak.output.join("\n");
        assert.ok(
          output.includes("CAFE24_OAUTH_STATE_SECRET must be a secret of at least 32 characters"),
          "both functions log the rule",
        );
        assert.ok(!body.includes(shortSecret) && !output.includes(shortSecret), "never the value");
      },
    );

    await t.step("bad parameters are 400 with a stable code and start no run", async () => {
      const [before] = await db.sql<
        { n: number }[]
      >`select count(*)::int as n from cafe24_private.refresh_runs`;
      const cases: [string, RequestInit, string][] = [
        ["?mall_id=evil.example%2Fx%23", {}, "INVALID_MALL_ID"],
        ["?mall_id=AB", {}, "INVALID_MALL_ID"],
        ["?force=yes", {}, "INVALID_REQUEST"],
        ["", { method: "POST", body: "{not json" }, "INVALID_REQUEST"],
        ["", { method: "POST", body: "[1]" }, "INVALID_REQUEST"],
        ["", { method: "POST", body: '{"trigger":"user"}' }, "INVALID_REQUEST"],
      ];
      for (const [query, init, code] of cases) {
        const response = await fetch(url(query), {
          method: "GET",
          ...init,
          headers: { "x-cron-secret": CRON_SECRET },
        });
        assert.equal(response.status, 400, query);
        assert.equal((await response.json()).error, code, query);
      }
      const [after] = await db.sql<
        { n: number }[]
      >`select count(*)::int as n from cafe24_private.refresh_runs`;
      assert.equal(after!.n, before!.n);
    });

    await t.step("other methods are 405 and OPTIONS answers the CORS preflight", async () => {
      const put = await fetch(url(), { method: "PUT", headers: { "x-cron-secret": CRON_SECRET } });
      assert.equal(put.status, 405);
      await put.body?.cancel();
      const preflight = await fetch(url(), {
        method: "OPTIONS",
        headers: { origin: "https://app.example", "access-control-request-method": "POST" },
      });
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/);
      assert.ok(preflight.headers.get("access-control-allow-origin"));
      await preflight.body?.cancel();
    });

    await t.step("a 300 KB body is 413 BODY_TOO_LARGE and starts no run", async () => {
      const before = await runCount(stack);
      const big = JSON.stringify({ force: true, pad: "x".repeat(300 * 1024) });
      const { jwt } = await newUser();
      for (
        const [name, target, headers] of [
          ["cron secret", url(), { "x-cron-secret": CRON_SECRET }],
          ["user token", url(), bearer(jwt)],
          ["authorize", `${stack.functions.url}/cafe24-authorize`, bearer(jwt)],
        ] as const
      ) {
        const response = await fetch(target, {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body: big,
        });
        assert.equal(response.status, 413, name);
        assert.deepEqual(await response.json(), { error: "BODY_TOO_LARGE" }, name);
        assert.ok(response.headers.get("access-control-allow-origin"), `${name}: CORS headers`);
      }

      // Without a Content-Length (chunked), the function reads 16 KiB + 1 byte and stops.
      let sent = 0;
      const chunk = new TextEncoder().encode(" ".repeat(1024));
      const chunked = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 300 * 1024) return controller.close();
          sent += chunk.byteLength;
          controller.enqueue(chunk);
        },
      });
      const response = await fetch(url(), {
        method: "POST",
        headers: { "x-cron-secret": CRON_SECRET, "content-type": "application/json" },
        body: chunked,
      });
      assert.equal(response.status, 413);
      assert.deepEqual(await response.json(), { error: "BODY_TOO_LARGE" });
      assert.equal(await runCount(stack), before, "no run was started");
    });

    await t.step(
      "a user's second refresh within the interval is 429 RATE_LIMITED with Retry-After",
      async () => {
        const user = await newUser();
        await connectMall(stack, "shopthrottle", { userId: user.id });
        const before = await runCount(stack);
        const first = await stack.refresh({}, { headers: bearer(user.jwt) });
        assert.equal(first.status, 200);
        assert.equal((await first.json()).refreshed, 1);

        const second = await stack.refresh({ force: "true" }, { headers: bearer(user.jwt) });
        assert.equal(second.status, 429);
        assert.deepEqual(await second.json(), { error: "RATE_LIMITED" });
        const retryAfter = Number(second.headers.get("retry-after"));
        assert.ok(
          Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 30,
          `${retryAfter}`,
        );
        assert.equal(second.headers.get("access-control-expose-headers"), "Retry-After");
        assert.equal(await runCount(stack), before + 1, "the refused refresh started no run");

        // The scheduler and admins are never throttled, also for this user's mall.
        for (let i = 0; i < 2; i++) {
          const cron = await stack.refresh({ mall_id: "shopthrottle", force: "true" });
          assert.equal(cron.status, 200);
          assert.equal((await cron.json()).refreshed, 1);
        }
      },
    );

    await t.step(
      "the throttle lives in the database: two function processes share it",
      async () => {
        const other = await stack.startFunctions();
        const user = await newUser();
        await connectMall(stack, "shopshared", { userId: user.id });
        const onFirst = await stack.refresh({}, { headers: bearer(user.jwt) });
        assert.equal(onFirst.status, 200);
        await onFirst.body?.cancel();
        const [row] = await db.sql<{ last_started_at: Date }[]>`
          select last_started_at from cafe24_private.user_refresh_starts
          where user_id = ${user.id}`;
        assert.ok(row, "the start is recorded in cafe24_private.user_refresh_starts");
        assert.ok(Math.abs(row.last_started_at.getTime() - Date.now()) < 60_000);
        // Only the functions' role may call it; the Data API's roles reach neither it nor the table.
        const [grants] = await db.sql<Record<string, boolean>[]>`
          select
            has_function_privilege('service_role',
              'cafe24_private.start_user_refresh(uuid, interval)', 'execute') as service_role,
            has_function_privilege('anon',
              'cafe24_private.start_user_refresh(uuid, interval)', 'execute') as anon,
            has_function_privilege('authenticated',
              'cafe24_private.start_user_refresh(uuid, interval)', 'execute') as authenticated,
            has_table_privilege('authenticated',
              'cafe24_private.user_refresh_starts', 'select,insert,update,delete') as table_access`;
        assert.deepEqual(grants, {
          service_role: true,
          anon: false,
          authenticated: false,
          table_access: false,
        });

        const onSecond = await fetch(`${other.url}/cafe24-refresh`, {
          method: "POST",
          headers: bearer(user.jwt),
        });
        assert.equal(onSecond.status, 429, "the other process sees the same start");
        assert.ok(Number(onSecond.headers.get("retry-after")) >= 1);
        await onSecond.body?.cancel();

        // Two clicks at the same moment on two processes: exactly one refresh starts.
        const racer = await newUser();
        await connectMall(stack, "shoprace", { userId: racer.id });
        const statuses = await Promise.all(
          [stack.functions, other].map(async (server) => {
            const response = await fetch(`${server.url}/cafe24-refresh`, {
              method: "POST",
              headers: bearer(racer.jwt),
            });
            await response.body?.cancel();
            return response.status;
          }),
        );
        assert.deepEqual(statuses.sort(), [200, 429]);
        await other.stop();
      },
    );

    await t.step("a user's force refreshes only tokens at least 5 minutes old", async () => {
      const expiresIn = (ms: number) => new Date(Date.now() + ms).toISOString();
      const young = await newUser();
      // Issued a minute ago: a 2-hour token with 1 h 59 min left.
      await connectMall(stack, "shopyoung", {
        userId: young.id,
        expiresAt: expiresIn(119 * 60_000),
      });
      const skipped: RunSummary = await (await stack.refresh({ force: "true" }, {
        headers: bearer(young.jwt),
      })).json();
      assert.equal(skipped.scanned, 1);
      assert.equal(skipped.refreshed, 0);
      assert.equal(skipped.skipped_reasons.not_due, 1);

      const old = await newUser();
      // Issued an hour ago.
      await connectMall(stack, "shopold", { userId: old.id, expiresAt: expiresIn(60 * 60_000) });
      const refreshed: RunSummary = await (await stack.refresh({ force: "true" }, {
        headers: bearer(old.jwt),
      })).json();
      assert.equal(refreshed.refreshed, 1);

      // The scheduler's and admins' force is not limited.
      const cron: RunSummary = await (await stack.refresh({ mall_id: "shopyoung", force: "true" }))
        .json();
      assert.equal(cron.refreshed, 1);
    });

    await t.step(
      "a user with nothing in scope gets 200 with zeros and leaves no run row",
      async () => {
        const before = await runCount(stack);
        const nobody = await newUser();
        const response = await stack.refresh({ force: "true" }, { headers: bearer(nobody.jwt) });
        assert.equal(response.status, 200);
        const summary: RunSummary = await response.json();
        assert.equal(summary.run_id, null);
        for (const key of ["scanned", "eligible", "refreshed", "skipped", "failed", "remaining"]) {
          assert.equal(summary[key as keyof RunSummary], 0, key);
        }
        assert.ok(Object.values(summary.skipped_reasons).every((n) => n === 0));
        assert.deepEqual(summary.warnings, []);

        // Naming somebody else's mall is nothing in scope too.
        const stranger = await newUser();
        const foreign: RunSummary = await (await stack.refresh({ mall_id: "shopthrottle" }, {
          headers: bearer(stranger.jwt),
        })).json();
        assert.equal(foreign.scanned, 0);
        assert.equal(await runCount(stack), before, "no run was recorded");
      },
    );

    await t.step(
      "a CRON_SECRET under 32 characters still refreshes; every summary carries CRON_SECRET_WEAK",
      async () => {
        const weakSecret = "short-cron-secret";
        const weak = await stack.startFunctions({ CRON_SECRET: weakSecret });
        await connectMall(stack, "shopweak");
        const response = await fetch(`${weak.url}/cafe24-refresh?mall_id=shopweak`, {
          method: "POST",
          headers: { "x-cron-secret": weakSecret },
        });
        assert.equal(response.status, 200);
        const summary: RunSummary = await response.json();
        assert.equal(summary.refreshed, 1, "the refresh works");
        assert.deepEqual(summary.warnings, ["CRON_SECRET_WEAK"]);
        assert.deepEqual(Object.keys(summary).at(-1), "warnings");

        // The way pg_cron calls it: 202, and the recorded summary carries the warning too.
        const accepted = await fetch(`${weak.url}/cafe24-refresh?mall_id=shopweak&force=true`, {
          method: "POST",
          headers: { "x-cron-secret": weakSecret, prefer: "respond-async" },
        });
        assert.equal(accepted.status, 202);
        const { run_id: runId } = await accepted.json();
        const stored = await waitFor("the async run to finish", async () => {
          const [run] = await db.sql<{ summary: RunSummary | null }[]>`
            select summary from cafe24_private.refresh_runs
            where id = ${runId} and status = 'finished'`;
          return run?.summary ?? null;
        });
        assert.deepEqual(stored.warnings, ["CRON_SECRET_WEAK"]);
        assert.equal(stored.refreshed, 1);

        // Logged once per run, saying what to do, without the secret.
        const lines = await waitFor("the warning of both runs in the log", () => {
          const found = logLines(weak, "cafe24_refresh_config_warning");
          return found.length >= 2 ? found : null;
        });
        assert.deepEqual(lines.map((line) => line.run_id).sort(), [summary.run_id, runId].sort());
        assert.match(String((lines[0]!.messages as string[])[0]), /shorter than 32 characters/);
        await weak.stop();
        assert.ok(!weak.output.join("\n").includes(weakSecret), "the secret is never logged");
      },
    );

    await t.step(
      "unauthenticated requests are counted into one log line, not logged one by one",
      async () => {
        const quiet = await stack.startFunctions();
        const refreshUrl = `${quiet.url}/cafe24-refresh?force=true`;
        const wrong: Record<string, string>[] = [
          {},
          { "x-cron-secret": "wrong-secret-value-1" },
          { authorization: "Bearer wrong-secret-value-2" },
          bearer(await auth.mintWithWrongKey({ sub: crypto.randomUUID() })),
        ];
        for (let i = 0; i < 40; i++) {
          const response = await fetch(refreshUrl, { method: "POST", headers: wrong[i % 4]! });
          assert.equal(response.status, 401);
          await response.body?.cancel();
        }
        for (let i = 0; i < 10; i++) {
          const forged = await fetch(
            `${quiet.url}/cafe24-callback?code=c&state=forged-state-${i}`,
            { redirect: "manual" },
          );
          assert.equal(forged.status, 302);
          await forged.body?.cancel();
        }
        // A marker on the same stream, after everything above: authorize's own first line.
        const marker = await fetch(`${quiet.url}/cafe24-authorize?mall_id=shopmark&mode=json`);
        assert.equal(marker.status, 401);
        await marker.body?.cancel();
        await waitFor(
          "authorize's unauthenticated_requests line",
          () =>
            logLines(quiet, "unauthenticated_requests").some((line) =>
                line.function === "cafe24-authorize"
              )
              ? true
              : null,
        );

        const lines = logLines(quiet, "unauthenticated_requests");
        const of = (fn: string) => lines.filter((line) => line.function === fn);
        assert.equal(of("cafe24-refresh").length, 1, "40 failures, one line (the first, at once)");
        assert.equal(of("cafe24-refresh")[0]!.count, 1);
        assert.equal(of("cafe24-refresh")[0]!.level, "warn");
        assert.equal(of("cafe24-callback").length, 1, "10 forged states, one line");
        assert.deepEqual(of("cafe24-callback")[0]!.reasons, { STATE_INVALID: 1 });
        assert.equal(logLines(quiet, "cafe24_connect_failed").length, 0, "no line per state");
        const output = quiet.output.join("\n");
        assert.ok(!output.includes("wrong-secret-value"), "nothing the callers sent is logged");
        assert.ok(!output.includes("forged-state"));
        await quiet.stop();
      },
    );

    await t.step(
      "Prefer: respond-async answers 202 with the run id and the run completes",
      async () => {
        await connectMall(stack, "shopasync");
        const response = await fetch(url("?mall_id=shopasync"), {
          method: "POST",
          headers: { "x-cron-secret": CRON_SECRET, prefer: "respond-async" },
        });
        assert.equal(response.status, 202);
        const { run_id: runId } = await response.json();
        assert.match(runId, /^[0-9a-f-]{36}$/);
        const run = await waitFor("the async run to finish", async () => {
          const [row] = await db.sql<
            { status: string; mode: string; summary: { refreshed: number } }[]
          >`
          select status, mode, summary from cafe24_private.refresh_runs where id = ${runId}`;
          return row?.status === "finished" ? row : null;
        });
        assert.equal(run.mode, "async");
        assert.equal(run.summary.refreshed, 1);
      },
    );

    await t.step(
      "a database that cannot be reached is 500 REFRESH_RUN_FAILED, no details leaked",
      async () => {
        const offline = await stack.startFunctions({
          SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:1/postgres",
        });
        const response = await fetch(`${offline.url}/cafe24-refresh`, {
          headers: { "x-cron-secret": CRON_SECRET },
        });
        assert.equal(response.status, 500);
        assert.deepEqual(await response.json(), { error: "REFRESH_RUN_FAILED" });
        await offline.stop();
      },
    );
  } finally {
    await stack.stop();
    await auth.close();
  }
});
