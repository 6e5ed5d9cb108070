import assert from "node:assert/strict";
import {
  authorizeUrl,
  parseAuthorizeRequest,
  startAuthorization,
} from "../../../supabase/functions/_shared/connect/authorize.ts";
import type { ConnectStore } from "../../../supabase/functions/_shared/connect/store.ts";
import { type OAuthState, verifyState } from "../../../supabase/functions/_shared/connect/state.ts";
import { parseScopeList } from "../../../supabase/functions/_shared/cafe24/scopes.ts";
import { RequestError } from "../../../supabase/functions/_shared/platform/errors.ts";

/** CAFE24_SCOPES as an operator writes it: spaces after commas. */
const ALLOWED = "mall.read_store, mall.read_product, mall.write_product";
const ALLOWED_LIST = ["mall.read_store", "mall.read_product", "mall.write_product"];

function errorOf(fn: () => unknown): RequestError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RequestError, String(error));
    return error;
  }
  assert.fail("expected a RequestError");
}

const codeOf = (fn: () => unknown) => errorOf(fn).code;

Deno.test("parseScopeList() trims, keeps the order and drops duplicates", () => {
  assert.deepEqual(parseScopeList(" mall.read_product,mall.write_product , mall.read_product"), [
    "mall.read_product",
    "mall.write_product",
  ]);
  assert.deepEqual(parseScopeList("mall.read_salesreport"), ["mall.read_salesreport"]);
});

Deno.test("parseScopeList() refuses anything that is not a Cafe24 scope name", () => {
  for (
    const text of [
      "",
      "openid",
      "mall.read_store,,mall.read_product",
      "mall.read_store,",
      "mall.read_store mall.read_product",
      "mall.delete_store",
      "mall.read_store&x=1",
      "MALL.READ_STORE",
      Array(51).fill("mall.read_store").join(","),
    ]
  ) {
    assert.equal(parseScopeList(text), null, text.slice(0, 40));
  }
});

Deno.test("parseAuthorizeRequest() asks for the whole allow-list when no scope is given", () => {
  assert.deepEqual(parseAuthorizeRequest({ mall_id: "shopalpha" }, ALLOWED), {
    mallId: "shopalpha",
    scopes: ALLOWED_LIST,
    mode: "redirect",
  });
});

Deno.test("parseAuthorizeRequest() narrows to the asked-for scopes, in the order asked for", () => {
  const cases: [string, string[]][] = [
    ["mall.read_store", ["mall.read_store"]],
    ["mall.write_product,mall.read_store", ["mall.write_product", "mall.read_store"]],
    [" mall.read_product , mall.read_product ", ["mall.read_product"]],
    [ALLOWED, ALLOWED_LIST],
  ];
  for (const [scope, scopes] of cases) {
    const request = parseAuthorizeRequest({ mall_id: "shopalpha", mode: "json", scope }, ALLOWED);
    assert.deepEqual(request, { mallId: "shopalpha", scopes, mode: "json" }, scope);
  }
});

Deno.test("parseAuthorizeRequest() refuses a scope outside the allow-list: INVALID_SCOPE naming the list", () => {
  for (
    const scope of [
      "mall.read_order",
      "mall.read_store,mall.write_store",
      "mall.read_products",
      "mall.read_prod",
    ]
  ) {
    const error = errorOf(() => parseAuthorizeRequest({ mall_id: "shopalpha", scope }, ALLOWED));
    assert.equal(error.code, "INVALID_SCOPE", scope);
    assert.deepEqual(error.details, { allowed: ALLOWED_LIST }, scope);
  }
});

Deno.test("parseAuthorizeRequest() refuses a malformed or non-string scope: INVALID_SCOPE", () => {
  const scopes: unknown[] = [
    "",
    "openid",
    "mall.read_store,",
    "mall.read_store mall.read_product",
    "MALL.READ_STORE",
    ["mall.read_store"],
    42,
    null,
    { mall: "read_store" },
  ];
  for (const scope of scopes) {
    assert.equal(
      codeOf(() => parseAuthorizeRequest({ mall_id: "shopalpha", scope }, ALLOWED)),
      "INVALID_SCOPE",
      JSON.stringify(scope),
    );
  }
});

Deno.test("parseAuthorizeRequest() reports an allow-list that is not Cafe24 scope names as CONFIG_INVALID", () => {
  for (const allowed of ["", "openid", "mall.read_store,,mall.read_product"]) {
    const error = errorOf(() => parseAuthorizeRequest({ mall_id: "shopalpha" }, allowed));
    assert.equal(error.code, "CONFIG_INVALID", allowed);
    assert.deepEqual(error.details, { invalid: ["CAFE24_SCOPES"] }, allowed);
  }
});

Deno.test("parseAuthorizeRequest() reports a bad mall_id or mode before looking at scopes", () => {
  assert.equal(codeOf(() => parseAuthorizeRequest({}, ALLOWED)), "INVALID_MALL_ID");
  assert.equal(
    codeOf(() => parseAuthorizeRequest({ mall_id: "a.b/c#", scope: "openid" }, ALLOWED)),
    "INVALID_MALL_ID",
  );
  assert.equal(
    codeOf(() => parseAuthorizeRequest({ mall_id: "shopalpha", mode: "page" }, ALLOWED)),
    "INVALID_REQUEST",
  );
});

Deno.test("startAuthorization() records a state bound to the scopes and asks Cafe24 for exactly those", async () => {
  const recorded: OAuthState[] = [];
  const store = {
    recordState: (state: OAuthState) => {
      recorded.push(state);
      return Promise.resolve();
    },
  } as unknown as ConnectStore;
  const settings = {
    apiBaseUrl: "https://{mall_id}.cafe24api.com",
    clientId: "client",
    redirectUri: "https://ref.supabase.co/functions/v1/cafe24-callback",
    stateSecret: "unit-test-state-secret-0123456789",
  };
  const now = Date.UTC(2026, 10, 25, 12, 0, 0);
  const userId = "6f1c2a4e-8b1d-4c3a-9e2f-0a1b2c3d4e5f";
  const request = parseAuthorizeRequest(
    { mall_id: "shopalpha", scope: "mall.write_product,mall.read_store" },
    ALLOWED,
  );
  const url = await startAuthorization({ store, settings, now: () => now }, userId, request);

  assert.equal(url.searchParams.get("scope"), "mall.write_product,mall.read_store");
  const check = await verifyState(settings.stateSecret, url.searchParams.get("state"), now);
  assert.ok(check.ok);
  assert.deepEqual(check.state.scopes, ["mall.write_product", "mall.read_store"]);
  assert.equal(check.state.userId, userId);
  assert.equal(check.state.mallId, "shopalpha");
  assert.deepEqual(recorded, [check.state], "the nonce of the state sent is the one recorded");
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
