import assert from "node:assert/strict";
import {
  authorizeUrl,
  parseAuthorizeRequest,
  parseScopes,
} from "../../../supabase/functions/_shared/connect/authorize.ts";
import { RequestError } from "../../../supabase/functions/_shared/platform/errors.ts";

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RequestError, String(error));
    return error.code;
  }
  assert.fail("expected a RequestError");
}

Deno.test("parseScopes() trims, keeps the order and drops duplicates", () => {
  assert.deepEqual(parseScopes(" mall.read_product,mall.write_product , mall.read_product"), [
    "mall.read_product",
    "mall.write_product",
  ]);
  assert.deepEqual(parseScopes("mall.read_salesreport"), ["mall.read_salesreport"]);
});

Deno.test("parseScopes() refuses anything that is not a Cafe24 scope name", () => {
  for (
    const text of [
      "",
      "openid",
      "mall.read_store,,mall.read_product",
      "mall.read_store mall.read_product",
      "mall.delete_store",
      "mall.read_store&x=1",
      "MALL.READ_STORE",
    ]
  ) {
    assert.equal(codeOf(() => parseScopes(text)), "INVALID_SCOPE", text);
  }
});

Deno.test("parseAuthorizeRequest() takes CAFE24_SCOPES when no scope is given", () => {
  assert.deepEqual(parseAuthorizeRequest({ mall_id: "shopalpha" }, "mall.read_store"), {
    mallId: "shopalpha",
    scope: "mall.read_store",
    mode: "redirect",
  });
  assert.equal(
    parseAuthorizeRequest({ mall_id: "shopalpha", mode: "json", scope: "mall.read_order" }, null)
      .scope,
    "mall.read_order",
  );
});

Deno.test("parseAuthorizeRequest() reports bad input and a missing default scope", () => {
  assert.equal(codeOf(() => parseAuthorizeRequest({}, "mall.read_store")), "INVALID_MALL_ID");
  assert.equal(
    codeOf(() => parseAuthorizeRequest({ mall_id: "a.b/c#" }, "mall.read_store")),
    "INVALID_MALL_ID",
  );
  assert.equal(
    codeOf(() => parseAuthorizeRequest({ mall_id: "shopalpha", mode: "page" }, "mall.read_store")),
    "INVALID_REQUEST",
  );
  assert.equal(
    codeOf(() => parseAuthorizeRequest({ mall_id: "shopalpha" }, null)),
    "CONFIG_MISSING",
  );
});

Deno.test("authorizeUrl() builds Cafe24's documented URL on the mall's own host", () => {
  const url = authorizeUrl(
    {
      apiBaseUrl: "https://{mall_id}.cafe24api.com",
      clientId: "client",
      redirectUri: "https://ref.supabase.co/functions/v1/cafe24-callback",
    },
    "shopalpha",
    "the-state",
    "mall.read_store,mall.read_product",
  );
  assert.equal(url.origin, "https://shopalpha.cafe24api.com");
  assert.equal(url.pathname, "/api/v2/oauth/authorize");
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    response_type: "code",
    client_id: "client",
    state: "the-state",
    redirect_uri: "https://ref.supabase.co/functions/v1/cafe24-callback",
    scope: "mall.read_store,mall.read_product",
  });
  assert.throws(
    () =>
      authorizeUrl(
        { apiBaseUrl: "https://{mall_id}.cafe24api.com", clientId: "c", redirectUri: "r" },
        "evil.example/x#",
        "s",
        "mall.read_store",
      ),
    RangeError,
  );
});
