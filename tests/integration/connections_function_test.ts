/**
 * cafe24-connections answers what the Data API would: the caller's rows of
 * public.cafe24_connections, read as `authenticated` with the caller's claims, so that the view's
 * own filter decides. Real PostgreSQL with the migrations, the functions over HTTP, a local JWKS.
 */
import assert from "node:assert/strict";
import { startTestAuth } from "../support/auth.ts";
import { asUser } from "../support/roles.ts";
import { connectMall, connectStackOptions, startRefreshStack } from "../support/stack.ts";

Deno.test("cafe24-connections", async (t) => {
  const auth = await startTestAuth();
  const stack = await startRefreshStack(connectStackOptions(auth));
  try {
    const url = `${stack.functions.url}/cafe24-connections`;
    const [alice, bob] = [crypto.randomUUID(), crypto.randomUUID()];
    const aliceShop = await connectMall(stack, "aliceshop", {
      userId: alice,
      extra: { shop_no: 2 },
    });
    await connectMall(stack, "aliceother", { userId: alice });
    await connectMall(stack, "bobshop", { userId: bob });
    const get = async (init: RequestInit = {}) => {
      const response = await fetch(url, init);
      return { response, body: await response.json().catch(() => null) };
    };

    await t.step("the caller's rows, exactly as the view shows them to the caller", async () => {
      const { response, body } = await get({
        headers: {
          authorization: `Bearer ${await auth.mint({ sub: alice })}`,
          origin: "https://app.test",
        },
      });
      assert.equal(response.status, 200, JSON.stringify(body));
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
      assert.equal(response.headers.get("cache-control"), "no-store");
      const viaDataApi = await asUser(
        stack.db,
        alice,
        (sql) => sql`select * from public.cafe24_connections order by mall_id`,
      );
      assert.deepEqual(body.connections, JSON.parse(JSON.stringify(viaDataApi)));
      assert.deepEqual(body.connections.map((c: { mall_id: string }) => c.mall_id), [
        "aliceother",
        "aliceshop",
      ]);
      const mine = body.connections.find((c: { mall_id: string }) => c.mall_id === "aliceshop");
      assert.equal(mine.auth_settings_id, aliceShop.id);
      assert.equal(mine.shop_no, 2);
      assert.equal(mine.status, "active");
      assert.doesNotMatch(JSON.stringify(body), new RegExp(aliceShop.refreshToken));
      assert.doesNotMatch(JSON.stringify(body), /token"\s*:/, "no token field at all");
    });

    await t.step("a user with no connection gets none, never anyone else's", async () => {
      const { response, body } = await get({
        headers: { authorization: `Bearer ${await auth.mint({ sub: crypto.randomUUID() })}` },
      });
      assert.equal(response.status, 200);
      assert.deepEqual(body, { connections: [] });
    });

    await t.step("no session, a bad one or an expired one: 401 with CORS", async () => {
      const tokens = [
        null,
        "not-a-jwt",
        await auth.mint({ sub: alice, expiresInSeconds: -60 }),
        await auth.mintWithWrongKey({ sub: alice }),
        await auth.mintHs256({ sub: alice }),
      ];
      for (const token of tokens) {
        const { response, body } = await get({
          headers: {
            origin: "https://app.test",
            ...(token === null ? {} : { authorization: `Bearer ${token}` }),
          },
        });
        assert.equal(response.status, 401, String(token));
        assert.deepEqual(body, { error: "UNAUTHORIZED" });
        assert.equal(response.headers.get("access-control-allow-origin"), "*");
      }
    });

    await t.step("a browser's preflight, and GET only", async () => {
      const preflight = await fetch(url, {
        method: "OPTIONS",
        headers: {
          origin: "https://app.test",
          "access-control-request-method": "GET",
          "access-control-request-headers": "authorization, apikey",
        },
      });
      await preflight.body?.cancel();
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers.get("access-control-allow-headers")!, /authorization/);
      const { response, body } = await get({
        method: "POST",
        headers: { authorization: `Bearer ${await auth.mint({ sub: alice })}` },
      });
      assert.equal(response.status, 405);
      assert.deepEqual(body, { error: "METHOD_NOT_ALLOWED" });
    });
  } finally {
    await stack.stop();
    await auth.close();
  }
});
