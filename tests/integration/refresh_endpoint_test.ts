/**
 * cafe24-refresh's HTTP contract: who may call it, what it answers when configuration is
 * missing, how it reads its parameters, and the asynchronous mode pg_cron uses.
 */
import assert from "node:assert/strict";
import { connectMall, CRON_SECRET, startRefreshStack } from "../support/stack.ts";

Deno.test("cafe24-refresh endpoint", async (t) => {
  const stack = await startRefreshStack();
  const { db } = stack;
  const url = (query = "") => `${stack.functions.url}/cafe24-refresh${query}`;
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
          for (
            const key of [
              "scanned",
              "eligible",
              "refreshed",
              "skipped",
              "failed",
              "failures",
              "skipped_reasons",
              "remaining",
              "duration_ms",
              "run_id",
            ]
          ) {
            assert.ok(key in summary, key);
          }
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
        });
        assert.ok(
          partial.output.some((line) => line.includes("CAFE24_CLIENT_ID")),
          "the log names it too",
        );
        await partial.stop();
      },
    );

    await t.step(
      "an invalid setting is 500 CONFIG_INVALID naming it, never its value",
      async () => {
        const broken = await stack.startFunctions({ CAFE24_REFRESH_CONCURRENCY: "lots" });
        const response = await fetch(`${broken.url}/cafe24-refresh`, {
          headers: { "x-cron-secret": CRON_SECRET },
        });
        assert.equal(response.status, 500);
        const body = await response.json();
        assert.deepEqual(body, {
          error: "CONFIG_INVALID",
          invalid: ["CAFE24_REFRESH_CONCURRENCY"],
        });
        await broken.stop();
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
        let run: { status: string; mode: string; summary: { refreshed: number } } | undefined;
        for (let i = 0; i < 100 && run?.status !== "finished"; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          [run] = await db.sql<NonNullable<typeof run>[]>`
          select status, mode, summary from cafe24_private.refresh_runs where id = ${runId}`;
        }
        assert.equal(run?.status, "finished");
        assert.equal(run?.mode, "async");
        assert.equal(run?.summary.refreshed, 1);
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
  }
});
