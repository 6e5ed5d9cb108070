/**
 * The Cafe24 Admin API through the connector: cafe24Fetch in this process and cafe24-api over
 * HTTP (several functions processes where the shared bucket matters), real PostgreSQL with the
 * migrations and the Cafe24 sandbox's per-mall bucket, 401s, 429s and deleted app.
 */
import assert from "node:assert/strict";
import {
  type AdminApiDeps,
  cafe24Fetch,
  type Cafe24FetchInit,
} from "../../supabase/functions/_shared/api/admin_api.ts";
import {
  ADMIN_API_CONFIG_REQUIRED,
  adminApiSettings,
  FUNCTION_SETTINGS,
  loadConfig,
} from "../../supabase/functions/_shared/platform/config.ts";
import { closeDatabases, database } from "../../supabase/functions/_shared/platform/db.ts";
import { API_KEYS_ENV, insertConnection, SECRET_KEY, startRefreshStack } from "../support/stack.ts";
import type { FunctionsServer } from "../../local/functions/server.ts";

const HOUR_MS = 60 * 60_000;
const SCOPES = ["mall.read_store", "mall.read_product", "mall.write_product"];
const iso = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();

interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
}

async function read(response: Response): Promise<Answer> {
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Kept as text.
  }
  return { status: response.status, body, headers: response.headers };
}

Deno.test("the Admin API through the connector", async (t) => {
  const stack = await startRefreshStack({ env: { ...API_KEYS_ENV } });
  try {
    const { db, sandbox } = stack;
    const settings = FUNCTION_SETTINGS["cafe24-api"];
    const loaded = loadConfig(stack.env, ADMIN_API_CONFIG_REQUIRED, settings.uses);
    assert.ok(loaded.ok);
    const deps: AdminApiDeps = {
      sql: database(stack.env.SUPABASE_DB_URL!),
      settings: adminApiSettings(loaded.config),
    };

    const seed = async (mallId: string, options: { appDeleted?: boolean } = {}) => {
      sandbox.addMall(mallId, { scopes: SCOPES, ...options });
      const issued = sandbox.issueTokens(mallId);
      const id = await insertConnection(db, {
        mallId,
        refreshToken: issued.refreshToken,
        accessToken: issued.accessToken,
        expiresAt: iso(HOUR_MS),
        extra: { shop_no: 1, scopes: SCOPES, refresh_token_expires_at: iso(13 * 24 * HOUR_MS) },
      });
      return { id, accessToken: issued.accessToken };
    };
    type Params = { mall_id: string; path: string } & Record<string, unknown>;
    const viaFunction = async (params: Params, server: FunctionsServer = stack.functions) =>
      await read(
        await fetch(`${server.url}/cafe24-api`, {
          method: "POST",
          headers: { apikey: SECRET_KEY, "content-type": "application/json" },
          body: JSON.stringify(params),
        }),
      );
    const inProcess = async (params: Params) => {
      const init: Cafe24FetchInit = {};
      if (params.method !== undefined) {
        init.method = params.method as NonNullable<Cafe24FetchInit["method"]>;
      }
      if (params.query !== undefined) {
        init.query = params.query as NonNullable<Cafe24FetchInit["query"]>;
      }
      if (params.body !== undefined) init.body = params.body;
      if (params.deadline_ms !== undefined) init.deadlineMs = params.deadline_ms as number;
      return await read(await cafe24Fetch(params.mall_id, params.path, init, deps));
    };
    const mallRequests = (mallId: string) =>
      sandbox.requestLog().filter((entry) => entry.mallId === mallId);
    const refreshRequests = (mallId: string) =>
      sandbox.counters().byMall[mallId]?.refreshRequests ?? 0;

    await t.step("both forms give the same status and body", async () => {
      await seed("apiok");
      await seed("apikill");
      const reconnect = await seed("apigone");
      await db.sql`update cafe24_private.connections set status = 'reconnect_required'
        where auth_settings_id = ${reconnect.id}`;
      await seed("apilimit");
      await db.sql`insert into cafe24_private.api_buckets (mall_id, capacity, drain_per_s,
        blocked_until) values ('apilimit', 40, 2, now() + interval '1 hour')`;
      // Each form's 403 starts a verification that disconnects its mall: one mall per form.
      await seed("apidel", { appDeleted: true });
      await seed("apideltwo", { appDeleted: true });
      const cases: {
        name: string;
        params: Params;
        remote?: Params;
        before?: () => void;
        status: number;
        outcome: string;
      }[] = [
        {
          name: "a success",
          params: { mall_id: "apiok", path: "/api/v2/admin/products/11" },
          status: 200,
          outcome: "answered",
        },
        {
          name: "a retried 401",
          params: { mall_id: "apikill", path: "/api/v2/admin/products/12" },
          before: () => void sandbox.killAccessTokens("apikill"),
          status: 200,
          outcome: "retried_after_401",
        },
        {
          name: "RECONNECT_REQUIRED",
          params: { mall_id: "apigone", path: "/api/v2/admin/products" },
          status: 409,
          outcome: "reconnect_required",
        },
        {
          name: "RATE_LIMITED",
          params: { mall_id: "apilimit", path: "/api/v2/admin/products", deadline_ms: 0 },
          status: 429,
          outcome: "rate_limited",
        },
        {
          name: "an app-deleted 403",
          params: { mall_id: "apidel", path: "/api/v2/admin/products" },
          remote: { mall_id: "apideltwo", path: "/api/v2/admin/products" },
          status: 403,
          outcome: "app_deleted",
        },
        {
          name: "INVALID_PATH",
          params: { mall_id: "apiok", path: "/api/v2/admin/../oauth/token" },
          status: 400,
          outcome: "invalid_path",
        },
      ];
      for (const { name, params, remote: remoteParams, before, status, outcome } of cases) {
        before?.();
        const local = await inProcess(params);
        // A refreshed pair is younger than 5 minutes: the second 401 is the function's own.
        if (name === "a retried 401") {
          await db.sql`update cafe24_private.connections set last_refreshed_at = null,
            token_rejected_at = null where mall_id = 'apikill'`;
        }
        before?.();
        const remote = await viaFunction(remoteParams ?? params);
        assert.equal(local.status, status, `${name}: in-process status`);
        assert.equal(remote.status, status, `${name}: function status`);
        assert.deepEqual(remote.body, local.body, `${name}: the same body`);
        assert.equal(local.headers.get("x-cafe24-connector"), outcome, name);
        assert.equal(remote.headers.get("x-cafe24-connector"), outcome, name);
        assert.ok(remote.headers.has("x-cafe24-connector-waited-ms"), name);
        for (const answer of [local, remote]) {
          assert.equal(answer.headers.get("set-cookie"), null);
          assert.equal(answer.headers.get("authorization"), null);
        }
      }
      const [limited] = await Promise.all([
        inProcess({ mall_id: "apilimit", path: "/api/v2/admin/products", deadline_ms: 0 }),
      ]);
      assert.ok(Number(limited.headers.get("retry-after")) >= 1);
      assert.equal(mallRequests("apilimit").length, 0, "RATE_LIMITED never calls Cafe24");
      assert.equal(mallRequests("apigone").length, 0);
      const [noted] = await db.sql<{ token_requested_at: Date | null }[]>`
        select token_requested_at from cafe24_private.connections where mall_id = 'apiok'`;
      assert.ok(noted!.token_requested_at !== null, "each call counts as a token request");
    });

    await t.step("a path outside /api/v2/admin/ or with a trick is refused", async () => {
      const before = sandbox.requestLog().length;
      for (
        const path of [
          "/api/v2/oauth/token",
          "api/v2/admin/products",
          "/api/v2/admin/",
          "/api/v2/admin/../oauth/token",
          "/api/v2/admin/%2e%2e/oauth/token",
          "/api/v2/admin/products%2F..%2F..%2Foauth",
          "/api/v2/admin/products\\..\\..",
          "/api/v2/admin//evil.example/x",
          "/api/v2/admin/products@evil.example",
          "/api/v2/admin/products#x",
          "/api/v2/admin/products?limit=1",
          "https://evil.example/api/v2/admin/products",
          "/api/v2/admin/./products",
        ]
      ) {
        for (
          const answer of [
            await inProcess({ mall_id: "apiok", path }),
            await viaFunction({ mall_id: "apiok", path }),
          ]
        ) {
          assert.equal(answer.status, 400, path);
          assert.equal((answer.body as { error: string }).error, "INVALID_PATH", path);
        }
      }
      assert.equal(sandbox.requestLog().length, before, "no refused path reached Cafe24");
    });

    await t.step("100 calls that all meet a 401 cause at most one token request", async () => {
      await seed("apimany");
      sandbox.killAccessTokens("apimany");
      const answers = await Promise.all(
        Array.from(
          { length: 100 },
          (_, i) =>
            i % 2 === 0
              ? inProcess({
                mall_id: "apimany",
                path: "/api/v2/admin/products",
                deadline_ms: 60_000,
              })
              : viaFunction({
                mall_id: "apimany",
                path: "/api/v2/admin/products",
                deadline_ms: 60_000,
              }),
        ),
      );
      assert.ok(refreshRequests("apimany") <= 1, `${refreshRequests("apimany")} token requests`);
      // Each call that met the 401 spends a second slot on its retry: 100 calls need up to 200 of
      // the mall's slots (80 s at 2 per second), more than the longest deadline. A call that could
      // not get its slot in time ends with the connector's own RATE_LIMITED, never Cafe24's 401 or
      // 429; how many finish first depends on the machine, so only the kinds of answer are fixed.
      const statuses = answers.map((a) => a.status);
      assert.ok(statuses.every((status) => status === 200 || status === 429), String(statuses));
      for (const answer of answers.filter((a) => a.status === 429)) {
        assert.equal((answer.body as { error?: string }).error, "RATE_LIMITED");
      }
      assert.ok(
        statuses.filter((status) => status === 200).length >= 50,
        `${statuses.filter((status) => status === 200).length} of 100 answered 200`,
      );
    });

    await t.step("a timed-out PUT is not repeated", async () => {
      await seed("apihang");
      sandbox.setFaults("apihang", { hangMs: 20_000 });
      sandbox.queueAdminFaults("apihang", ["hang"]);
      const answer = await inProcess({
        mall_id: "apihang",
        method: "PUT",
        path: "/api/v2/admin/products/11",
        body: { request: { price: "1.00" } },
      });
      assert.equal(answer.status, 502);
      assert.equal(answer.headers.get("x-cafe24-connector"), "outcome_unknown");
      const calls = Object.values(sandbox.callsPerSecond("apihang")).reduce((a, b) => a + b, 0);
      assert.equal(calls, 1, "sent once");
    });

    await t.step("another client's calls are counted and a 429 is retried once", async () => {
      const { accessToken } = await seed("apishare");
      for (let i = 0; i < 20; i++) {
        const response = await fetch(`${sandbox.url}/apishare/api/v2/admin/products`, {
          headers: { authorization: `Bearer ${accessToken}` },
        });
        await response.body?.cancel();
      }
      const first = await inProcess({ mall_id: "apishare", path: "/api/v2/admin/products" });
      assert.equal(first.status, 200);
      const [bucket] = await db.sql<{ level: number }[]>`
        select level from cafe24_private.api_buckets where mall_id = 'apishare'`;
      assert.ok(bucket!.level >= 20, `the level follows X-Api-Call-Limit (${bucket!.level})`);

      sandbox.setFaults("apishare", { retryAfterSeconds: 1 });
      sandbox.queueAdminFaults("apishare", ["rate_limited_retry_after"]);
      const limitedBefore = sandbox.counters().rateLimited;
      const retried = await viaFunction({ mall_id: "apishare", path: "/api/v2/admin/products" });
      assert.equal(retried.status, 200);
      assert.equal(retried.headers.get("x-cafe24-connector"), "retried_after_429");
      assert.ok(Number(retried.headers.get("x-cafe24-connector-waited-ms")) >= 1000);
      assert.equal(sandbox.counters().rateLimited, limitedBefore, "no second 429");
    });

    await t.step(
      "a burst from 4 processes stays inside the bucket and 5 calls a second",
      async () => {
        await seed("apiburst");
        const servers = [
          stack.functions,
          ...(await Promise.all([1, 2, 3].map(() => stack.startFunctions()))),
        ];
        const limitedBefore = sandbox.counters().rateLimited;
        const started = Date.now();
        let lastMs = 0;
        const answers = await Promise.all(
          servers.flatMap((server) =>
            Array.from({ length: 25 }, async () => {
              const answer = await viaFunction(
                { mall_id: "apiburst", path: "/api/v2/admin/products", deadline_ms: 60_000 },
                server,
              );
              lastMs = Math.max(lastMs, Date.now() - started);
              return answer;
            })
          ),
        );
        assert.deepEqual(answers.map((a) => a.status), answers.map(() => 200));
        assert.equal(sandbox.counters().rateLimited, limitedBefore, "no 429 from the sandbox");
        assert.ok(lastMs <= 33_000, `the last answer after ${lastMs} ms`);
        const busiest = Math.max(...Object.values(sandbox.callsPerSecond("apiburst")));
        assert.ok(busiest <= 5, `${busiest} calls in one second`);
      },
    );
  } finally {
    await closeDatabases();
    await stack.stop();
  }
});
