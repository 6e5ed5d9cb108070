import assert from "node:assert/strict";
import {
  processShopsResponse,
  sendShopsRequest,
  ShopsRequestError,
} from "../../../supabase/functions/_shared/cafe24/shops.ts";

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

Deno.test("processShopsResponse() keeps shop_no, name and the default flag of each shop", async () => {
  const shops = await processShopsResponse(json(200, {
    shops: [
      { shop_no: 1, default: "T", shop_name: "Main", language_code: "ko_KR", active: "T" },
      { shop_no: "2", default: "F", shop_name: "English" },
      { shop_no: "x", default: "T" },
      { default: "T" },
      "garbage",
    ],
  }));
  assert.deepEqual(shops, [
    { shop_no: 1, name: "Main", default: true },
    { shop_no: 2, name: "English", default: false },
  ]);
});

Deno.test("processShopsResponse() throws ShopsRequestError for errors and unusable bodies", async () => {
  const cases: [Response, number | null][] = [
    [json(403, { error: { code: 403, message: "forbidden" } }), 403],
    [json(200, { shops: [] }), 200],
    [json(200, { shop: [] }), 200],
    [new Response("<html>", { status: 200 }), 200],
  ];
  for (const [response, status] of cases) {
    await assert.rejects(processShopsResponse(response), (error: unknown) => {
      assert.ok(error instanceof ShopsRequestError);
      assert.equal(error.status, status);
      return true;
    });
  }
});

Deno.test("sendShopsRequest() sends the bearer token and the API version to the mall's host", async () => {
  let seen: Request | undefined;
  await sendShopsRequest({
    apiBaseUrl: "https://{mall_id}.cafe24api.com",
    clientId: "client",
    clientSecret: "secret",
    apiVersion: "2025-12-01",
    requestTimeoutMs: 1000,
    fetch: (input, init) => {
      seen = new Request(input, init);
      return Promise.resolve(json(200, { shops: [] }));
    },
  }, { mallId: "shopalpha", accessToken: "the-access-token" });
  assert.equal(seen?.url, "https://shopalpha.cafe24api.com/api/v2/admin/shops");
  assert.equal(seen?.headers.get("authorization"), "Bearer the-access-token");
  assert.equal(seen?.headers.get("x-cafe24-api-version"), "2025-12-01");
});
