import assert from "node:assert/strict";
import type { Cafe24App } from "../../../supabase/functions/_shared/cafe24/app.ts";
import {
  processTokenResponse,
  retryAfterFromHeaders,
  sendAuthorizationCodeRequest,
  sendRefreshTokenRequest,
  storedTokenFields,
  TokenRequestError,
  type TokenSet,
} from "../../../supabase/functions/_shared/cafe24/token.ts";

// Values that must never show up in an error message.
const ACCESS_TOKEN = "AT-secret-0123456789abcdefghij";
const REFRESH_TOKEN = "RT-secret-9876543210zyxwvutsrq";

/** Cafe24's documented 200 (cafe24.md §2): wall-clock Korea time without an offset. */
function officialBody(): Record<string, unknown> {
  return {
    access_token: ACCESS_TOKEN,
    expires_at: "2021-03-01T14:00:00.000",
    refresh_token: REFRESH_TOKEN,
    refresh_token_expires_at: "2021-03-15T12:00:00.000",
    client_id: "my_client_id",
    mall_id: "yourmall",
    user_id: "test",
    scopes: ["mall.read_order", "mall.read_product", "mall.read_store"],
    issued_at: "2021-03-01T12:00:00.000",
    shop_no: "1",
    token_type: "Bearer",
  };
}

/** When the answer arrived on a correct host clock: issued_at (12:00 KST) as an instant. */
const ISSUED_AT_MS = Date.parse("2021-03-01T03:00:00.000Z");
const HOUR_MS = 60 * 60 * 1000;

function jsonResponse(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

function textResponse(status: number, body: string, headers: HeadersInit = {}): Response {
  return new Response(body, { status, headers });
}

const HTML_PAGE = "<html><head><title>Error</title></head><body><h1>Bad Gateway</h1></body></html>";

/** Runs `promise` and returns the TokenRequestError it must reject with. */
async function tokenError(promise: Promise<unknown>): Promise<TokenRequestError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TokenRequestError, `expected a TokenRequestError, got ${error}`);
    return error;
  }
  assert.fail("expected a TokenRequestError");
}

function assertNoTokenValues(error: Error): void {
  for (const secret of [ACCESS_TOKEN, REFRESH_TOKEN]) {
    assert.ok(!error.message.includes(secret), `message leaks a token: ${error.message}`);
    assert.ok(!String(error.stack).includes(secret), "stack leaks a token");
  }
}

// ---------------------------------------------------------------------------------------------
// processTokenResponse: 200

Deno.test("processTokenResponse() turns Cafe24's 200 into a TokenSet of UTC instants", async () => {
  const tokens = await processTokenResponse(jsonResponse(200, officialBody()), ISSUED_AT_MS);
  assert.deepEqual(
    tokens,
    {
      accessToken: ACCESS_TOKEN,
      refreshToken: REFRESH_TOKEN,
      // 9 hours before the Korea wall-clock values, with an explicit Z.
      accessTokenExpiresAt: "2021-03-01T05:00:00.000Z",
      refreshTokenExpiresAt: "2021-03-15T03:00:00.000Z",
      scopes: ["mall.read_order", "mall.read_product", "mall.read_store"],
      shopNo: "1",
      mallId: "yourmall",
    } satisfies TokenSet,
  );
});

Deno.test("processTokenResponse() bounds the expiry by receivedAt + lifetime when the host clock is behind", async () => {
  // The host clock is 3 hours behind: Cafe24's instant would look valid 3 hours too long.
  const receivedAt = ISSUED_AT_MS - 3 * HOUR_MS;
  const tokens = await processTokenResponse(jsonResponse(200, officialBody()), receivedAt);
  assert.equal(tokens.accessTokenExpiresAt, new Date(receivedAt + 2 * HOUR_MS).toISOString());
  assert.equal(tokens.accessTokenExpiresAt, "2021-03-01T02:00:00.000Z");
  assert.equal(tokens.refreshTokenExpiresAt, "2021-03-15T00:00:00.000Z");
});

Deno.test("processTokenResponse() keeps Cafe24's instant when the host clock is ahead", async () => {
  const receivedAt = ISSUED_AT_MS + HOUR_MS;
  const tokens = await processTokenResponse(jsonResponse(200, officialBody()), receivedAt);
  assert.equal(tokens.accessTokenExpiresAt, "2021-03-01T05:00:00.000Z");
  assert.equal(tokens.refreshTokenExpiresAt, "2021-03-15T03:00:00.000Z");
});

Deno.test("processTokenResponse() never lets a 9-hour zone error extend the lifetime", async () => {
  // Had the wall-clock values been read as UTC, the expiry would be 14:00Z; the answer arrived at
  // 03:00Z, so anything after 05:00Z would be a token Cafe24 never granted.
  const tokens = await processTokenResponse(jsonResponse(200, officialBody()), ISSUED_AT_MS);
  assert.ok(Date.parse(tokens.accessTokenExpiresAt) <= ISSUED_AT_MS + 2 * HOUR_MS);
  assert.match(tokens.accessTokenExpiresAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
});

Deno.test("processTokenResponse() uses expires_at as is when issued_at is absent", async () => {
  const body = officialBody();
  delete body.issued_at;
  const tokens = await processTokenResponse(jsonResponse(200, body), ISSUED_AT_MS - 3 * HOUR_MS);
  assert.equal(tokens.accessTokenExpiresAt, "2021-03-01T05:00:00.000Z");
});

Deno.test("processTokenResponse() accepts shop_no as a number or a string", async () => {
  const asNumber = await processTokenResponse(
    jsonResponse(200, { ...officialBody(), shop_no: 2 }),
    ISSUED_AT_MS,
  );
  assert.equal(asNumber.shopNo, "2");
  const asString = await processTokenResponse(
    jsonResponse(200, { ...officialBody(), shop_no: "3" }),
    ISSUED_AT_MS,
  );
  assert.equal(asString.shopNo, "3");
  const absent = officialBody();
  delete absent.shop_no;
  assert.equal((await processTokenResponse(jsonResponse(200, absent), ISSUED_AT_MS)).shopNo, null);
});

Deno.test("processTokenResponse() reports missing scopes and refresh expiry as null", async () => {
  const body = officialBody();
  delete body.scopes;
  delete body.refresh_token_expires_at;
  delete body.token_type;
  const tokens = await processTokenResponse(jsonResponse(200, body), ISSUED_AT_MS);
  assert.equal(tokens.scopes, null);
  assert.equal(tokens.refreshTokenExpiresAt, null);
  assert.equal(tokens.accessTokenExpiresAt, "2021-03-01T05:00:00.000Z");
});

Deno.test("processTokenResponse() keeps an empty scopes array as granted", async () => {
  const tokens = await processTokenResponse(
    jsonResponse(200, { ...officialBody(), scopes: [] }),
    ISSUED_AT_MS,
  );
  assert.deepEqual(tokens.scopes, []);
});

const MALFORMED_200S: Array<[string, () => string]> = [
  ["an HTML page", () => HTML_PAGE],
  ["text that is not JSON", () => `access_token=${ACCESS_TOKEN}&refresh_token=${REFRESH_TOKEN}`],
  ["an empty body", () => ""],
  ["JSON null", () => "null"],
  ["a JSON array", () => JSON.stringify([officialBody()])],
  ["a truncated JSON body", () => JSON.stringify(officialBody()).slice(0, 80)],
  ["no refresh_token", () => JSON.stringify({ ...officialBody(), refresh_token: undefined })],
  ["an empty refresh_token", () => JSON.stringify({ ...officialBody(), refresh_token: "" })],
  ["no access_token", () => JSON.stringify({ ...officialBody(), access_token: undefined })],
  ["an empty access_token", () => JSON.stringify({ ...officialBody(), access_token: "" })],
  ["a numeric access_token", () => JSON.stringify({ ...officialBody(), access_token: 12345 })],
  ["no expires_at", () => JSON.stringify({ ...officialBody(), expires_at: undefined })],
  ["expires_at as a number", () => JSON.stringify({ ...officialBody(), expires_at: 1614574800 })],
  ["an unparseable expires_at", () => JSON.stringify({ ...officialBody(), expires_at: "soon" })],
  [
    "an impossible expires_at",
    () => JSON.stringify({ ...officialBody(), expires_at: "2021-02-30T14:00:00.000" }),
  ],
  [
    "an unparseable refresh_token_expires_at",
    () => JSON.stringify({ ...officialBody(), refresh_token_expires_at: "in 14 days" }),
  ],
  ["an unparseable issued_at", () => JSON.stringify({ ...officialBody(), issued_at: "now" })],
  [
    "scopes that are not an array",
    () => JSON.stringify({ ...officialBody(), scopes: "mall.read_order,mall.read_product" }),
  ],
  ["scopes that are not strings", () => JSON.stringify({ ...officialBody(), scopes: [1, 2] })],
  ["a boolean shop_no", () => JSON.stringify({ ...officialBody(), shop_no: true })],
];

for (const [label, body] of MALFORMED_200S) {
  Deno.test(`processTokenResponse() reports a 200 with ${label} as CAFE24_MALFORMED_RESPONSE`, async () => {
    const error = await tokenError(
      processTokenResponse(
        textResponse(200, body(), { "Content-Type": "application/json" }),
        ISSUED_AT_MS,
      ),
    );
    assert.equal(error.code, "CAFE24_MALFORMED_RESPONSE");
    // Cafe24 may have rotated the token although we cannot read the new one.
    assert.equal(error.outcomeUnknown, true);
    assert.equal(error.retryAfterMs, null);
    assert.equal(error.oauthError, null);
    assertNoTokenValues(error);
  });
}

// ---------------------------------------------------------------------------------------------
// processTokenResponse: errors

Deno.test("processTokenResponse() reads a 429 with Retry-After seconds as CAFE24_RATE_LIMITED", async () => {
  const error = await tokenError(processTokenResponse(
    jsonResponse(429, { error: { code: 429, message: "Too Many Requests" } }, {
      "Retry-After": "120",
    }),
    ISSUED_AT_MS,
  ));
  assert.equal(error.code, "CAFE24_RATE_LIMITED");
  assert.equal(error.retryAfterMs, 120_000);
  assert.equal(error.outcomeUnknown, false);
});

Deno.test("processTokenResponse() reads a 429 with a Retry-After HTTP date", async () => {
  const retryAt = new Date(ISSUED_AT_MS + 90_000).toUTCString();
  const error = await tokenError(
    processTokenResponse(textResponse(429, "", { "Retry-After": retryAt }), ISSUED_AT_MS),
  );
  assert.equal(error.code, "CAFE24_RATE_LIMITED");
  assert.equal(error.retryAfterMs, 90_000);
});

Deno.test("processTokenResponse() reads a 429 with X-Cafe24-Call-Remain", async () => {
  const error = await tokenError(processTokenResponse(
    jsonResponse(429, { error: { code: 429, message: "Too Many Requests" } }, {
      "X-Api-Call-Limit": "40/40",
      "X-Cafe24-Call-Usage": "100",
      "X-Cafe24-Call-Remain": "3",
    }),
    ISSUED_AT_MS,
  ));
  assert.equal(error.code, "CAFE24_RATE_LIMITED");
  assert.equal(error.retryAfterMs, 3_000);
});

Deno.test("processTokenResponse() reads a 429 without a wait hint as retryAfterMs null", async () => {
  const error = await tokenError(processTokenResponse(textResponse(429, ""), ISSUED_AT_MS));
  assert.equal(error.code, "CAFE24_RATE_LIMITED");
  assert.equal(error.retryAfterMs, null);
});

const SERVER_ERRORS: Array<[string, () => Response]> = [
  ["500 JSON", () => jsonResponse(500, { error: { code: 500, message: "Internal" } })],
  ["502 HTML", () => textResponse(502, HTML_PAGE, { "Content-Type": "text/html" })],
  ["503 empty", () => textResponse(503, "")],
  ["504 HTML", () => textResponse(504, HTML_PAGE, { "Content-Type": "text/html" })],
  ["500 OAuth-shaped", () => jsonResponse(500, { error: "invalid_grant" })],
];

for (const [label, response] of SERVER_ERRORS) {
  Deno.test(`processTokenResponse() reports a ${label} as CAFE24_SERVER_ERROR with outcome unknown`, async () => {
    const error = await tokenError(processTokenResponse(response(), ISSUED_AT_MS));
    assert.equal(error.code, "CAFE24_SERVER_ERROR");
    assert.equal(error.outcomeUnknown, true);
    assert.equal(error.retryAfterMs, null);
  });
}

Deno.test("processTokenResponse() passes a 503's Retry-After on", async () => {
  const error = await tokenError(
    processTokenResponse(textResponse(503, "", { "Retry-After": "30" }), ISSUED_AT_MS),
  );
  assert.equal(error.code, "CAFE24_SERVER_ERROR");
  assert.equal(error.retryAfterMs, 30_000);
});

for (const status of [400, 401]) {
  Deno.test(`processTokenResponse() reports ${status} invalid_grant for the refresh token as CAFE24_INVALID_GRANT`, async () => {
    const error = await tokenError(processTokenResponse(
      jsonResponse(status, { error: "invalid_grant", error_description: "Invalid refresh_token" }),
      ISSUED_AT_MS,
    ));
    assert.equal(error.code, "CAFE24_INVALID_GRANT");
    assert.equal(error.oauthError, "invalid_grant");
    assert.equal(error.outcomeUnknown, false);
  });

  Deno.test(`processTokenResponse() reports ${status} invalid_grant for the client secret as CAFE24_CLIENT_AUTH_FAILED`, async () => {
    // A wrong app secret must not disconnect every mall (cafe24.md §4).
    const error = await tokenError(processTokenResponse(
      jsonResponse(status, { error: "invalid_grant", error_description: "Invalid client_secret" }),
      ISSUED_AT_MS,
    ));
    assert.equal(error.code, "CAFE24_CLIENT_AUTH_FAILED");
    assert.equal(error.oauthError, "invalid_grant");
  });
}

Deno.test("processTokenResponse() reports invalid_grant without a description as CAFE24_INVALID_GRANT", async () => {
  const error = await tokenError(
    processTokenResponse(jsonResponse(400, { error: "invalid_grant" }), ISSUED_AT_MS),
  );
  assert.equal(error.code, "CAFE24_INVALID_GRANT");
});

Deno.test("processTokenResponse() reports invalid_client and unauthorized_client as CAFE24_CLIENT_AUTH_FAILED", async () => {
  for (const oauthError of ["invalid_client", "unauthorized_client"]) {
    const error = await tokenError(processTokenResponse(
      jsonResponse(401, { error: oauthError, error_description: "Client authentication failed" }),
      ISSUED_AT_MS,
    ));
    assert.equal(error.code, "CAFE24_CLIENT_AUTH_FAILED", oauthError);
    assert.equal(error.oauthError, oauthError);
  }
});

Deno.test("processTokenResponse() reports invalid_request as CAFE24_REJECTED", async () => {
  const error = await tokenError(processTokenResponse(
    jsonResponse(400, { error: "invalid_request", error_description: "grant_type is missing" }),
    ISSUED_AT_MS,
  ));
  assert.equal(error.code, "CAFE24_REJECTED");
  assert.equal(error.oauthError, "invalid_request");
  assert.equal(error.outcomeUnknown, false);
});

Deno.test("processTokenResponse() reports a 403 HTML page as CAFE24_UNEXPECTED_STATUS", async () => {
  const error = await tokenError(processTokenResponse(
    textResponse(403, "<html><body>Forbidden</body></html>", { "Content-Type": "text/html" }),
    ISSUED_AT_MS,
  ));
  assert.equal(error.code, "CAFE24_UNEXPECTED_STATUS");
  assert.equal(error.oauthError, null);
  assert.equal(error.outcomeUnknown, false);
});

Deno.test("processTokenResponse() reports Admin-API-shaped and redirect answers as CAFE24_UNEXPECTED_STATUS", async () => {
  const adminShape = await tokenError(processTokenResponse(
    jsonResponse(403, { error: { code: 403, message: "Forbidden", more_info: {} } }),
    ISSUED_AT_MS,
  ));
  assert.equal(adminShape.code, "CAFE24_UNEXPECTED_STATUS");
  const redirect = await tokenError(processTokenResponse(
    new Response(null, { status: 302, headers: { Location: "https://evil.example/" } }),
    ISSUED_AT_MS,
  ));
  assert.equal(redirect.code, "CAFE24_UNEXPECTED_STATUS");
});

Deno.test("processTokenResponse() keeps upstream bodies out of its error messages", async () => {
  const error = await tokenError(processTokenResponse(
    jsonResponse(400, {
      error: "invalid_request",
      error_description: `refresh_token ${REFRESH_TOKEN} is not valid`,
    }),
    ISSUED_AT_MS,
  ));
  assertNoTokenValues(error);
});

function failingBody(reason: unknown): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"access_token":"'));
      controller.error(reason);
    },
  });
}

Deno.test("processTokenResponse() reports a body stream that errors as CAFE24_NETWORK_ERROR with outcome unknown", async () => {
  for (const status of [200, 400, 500]) {
    const error = await tokenError(processTokenResponse(
      new Response(failingBody(new TypeError("connection reset")), { status }),
      ISSUED_AT_MS,
    ));
    assert.equal(error.code, "CAFE24_NETWORK_ERROR", `status ${status}`);
    assert.equal(error.outcomeUnknown, true);
  }
});

Deno.test("processTokenResponse() reports a body that times out as CAFE24_TIMEOUT with outcome unknown", async () => {
  const error = await tokenError(processTokenResponse(
    new Response(failingBody(new DOMException("Signal timed out.", "TimeoutError")), {
      status: 200,
    }),
    ISSUED_AT_MS,
  ));
  assert.equal(error.code, "CAFE24_TIMEOUT");
  assert.equal(error.outcomeUnknown, true);
});

Deno.test("processTokenResponse() stops reading a body after 64 KiB", async () => {
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      if (pulled > 256) controller.close(); // 16 MiB, so a failing run still ends
      else controller.enqueue(chunk);
    },
  });
  const error = await tokenError(
    processTokenResponse(new Response(endless, { status: 200 }), ISSUED_AT_MS),
  );
  assert.equal(error.code, "CAFE24_MALFORMED_RESPONSE");
  // A response is untrusted input: at most the limit plus read-ahead may be buffered.
  assert.ok(pulled <= 4, `read ${pulled} chunks of 64 KiB`);
});

// ---------------------------------------------------------------------------------------------
// retryAfterFromHeaders

const NOW_MS = Date.parse("2021-03-01T03:00:00.000Z");

Deno.test("retryAfterFromHeaders() reads Retry-After seconds", () => {
  assert.equal(retryAfterFromHeaders(new Headers({ "Retry-After": "120" }), NOW_MS), 120_000);
  assert.equal(retryAfterFromHeaders(new Headers({ "Retry-After": "0" }), NOW_MS), 0);
  assert.equal(retryAfterFromHeaders(new Headers({ "Retry-After": " 7 " }), NOW_MS), 7_000);
});

Deno.test("retryAfterFromHeaders() reads a Retry-After HTTP date relative to now", () => {
  const future = new Date(NOW_MS + 45_000).toUTCString();
  assert.equal(retryAfterFromHeaders(new Headers({ "Retry-After": future }), NOW_MS), 45_000);
  const past = new Date(NOW_MS - 45_000).toUTCString();
  assert.equal(retryAfterFromHeaders(new Headers({ "Retry-After": past }), NOW_MS), 0);
});

Deno.test("retryAfterFromHeaders() falls back to X-Cafe24-Call-Remain seconds, rounding up", () => {
  const remain = (value: string) =>
    retryAfterFromHeaders(new Headers({ "X-Cafe24-Call-Remain": value }), NOW_MS);
  assert.equal(remain("3"), 3_000);
  assert.equal(remain("1.5"), 1_500);
  assert.equal(remain("0.0001"), 1);
  assert.equal(remain("soon"), null);
  assert.equal(remain("-1"), null);
});

Deno.test("retryAfterFromHeaders() prefers Retry-After over X-Cafe24-Call-Remain", () => {
  const headers = new Headers({ "Retry-After": "10", "X-Cafe24-Call-Remain": "3" });
  assert.equal(retryAfterFromHeaders(headers, NOW_MS), 10_000);
});

Deno.test("retryAfterFromHeaders() returns null without either header", () => {
  assert.equal(retryAfterFromHeaders(new Headers(), NOW_MS), null);
  assert.equal(retryAfterFromHeaders(new Headers({ "X-Api-Call-Limit": "40/40" }), NOW_MS), null);
});

Deno.test("retryAfterFromHeaders() ignores a Retry-After that is neither whole seconds nor an HTTP date", () => {
  // Date.parse is lenient: "1.5" reads as 5 January 2001, which would become a wait of 0 ms
  // and hide the X-Cafe24-Call-Remain hint.
  for (const value of ["1.5", "30 seconds", "soon"]) {
    const withRemain = new Headers({ "Retry-After": value, "X-Cafe24-Call-Remain": "4" });
    assert.equal(retryAfterFromHeaders(withRemain, NOW_MS), 4_000, value);
    assert.equal(retryAfterFromHeaders(new Headers({ "Retry-After": value }), NOW_MS), null, value);
  }
});

// ---------------------------------------------------------------------------------------------
// storedTokenFields

Deno.test("storedTokenFields() stores the pair, expiries and scopes under Cafe24's names", () => {
  assert.deepEqual(
    storedTokenFields({
      accessToken: "at",
      refreshToken: "rt",
      accessTokenExpiresAt: "2021-03-01T05:00:00.000Z",
      refreshTokenExpiresAt: "2021-03-15T03:00:00.000Z",
      scopes: ["mall.read_store"],
      shopNo: "1",
      mallId: "yourmall",
    }),
    {
      access_token: "at",
      refresh_token: "rt",
      expires_at: "2021-03-01T05:00:00.000Z",
      refresh_token_expires_at: "2021-03-15T03:00:00.000Z",
      scopes: ["mall.read_store"],
    },
  );
});

Deno.test("storedTokenFields() omits an unknown refresh expiry and unknown scopes", () => {
  const fields = storedTokenFields({
    accessToken: "at",
    refreshToken: "rt",
    accessTokenExpiresAt: "2021-03-01T05:00:00.000Z",
    refreshTokenExpiresAt: null,
    scopes: null,
    shopNo: null,
    mallId: null,
  });
  assert.deepEqual(fields, {
    access_token: "at",
    refresh_token: "rt",
    expires_at: "2021-03-01T05:00:00.000Z",
  });
  // Omitted, not null: a JSON merge must keep the previously stored values.
  assert.ok(!("scopes" in fields));
  assert.ok(!("refresh_token_expires_at" in fields));
});

// ---------------------------------------------------------------------------------------------
// sendRefreshTokenRequest

const APP: Cafe24App = {
  apiBaseUrl: "https://{mall_id}.cafe24api.com",
  clientId: "my_client_id",
  clientSecret: "my_secret_key",
  requestTimeoutMs: 15_000,
  apiVersion: null,
};
// base64("my_client_id:my_secret_key"), computed independently of the module.
const EXPECTED_BASIC = "Basic bXlfY2xpZW50X2lkOm15X3NlY3JldF9rZXk=";

interface Recorder {
  fetch: typeof fetch;
  requests: Request[];
  signals: AbortSignal[];
}

function recordingFetch(answer: () => Response): Recorder {
  const requests: Request[] = [];
  const signals: AbortSignal[] = [];
  const fake: typeof fetch = (input, init) => {
    if (init?.signal) signals.push(init.signal);
    requests.push(new Request(input, init));
    return Promise.resolve(answer());
  };
  return { fetch: fake, requests, signals };
}

Deno.test("sendRefreshTokenRequest() POSTs a form with Basic client credentials to the mall's token URL", async () => {
  const recorder = recordingFetch(() => jsonResponse(200, officialBody()));
  const response = await sendRefreshTokenRequest(
    { ...APP, fetch: recorder.fetch },
    { mallId: "yourmall", refreshToken: "r+t/=&x y" },
  );
  assert.equal(response.status, 200);
  await response.body?.cancel();

  assert.equal(recorder.requests.length, 1);
  const request = recorder.requests[0];
  assert.ok(request !== undefined);
  assert.equal(request.method, "POST");
  assert.equal(request.url, "https://yourmall.cafe24api.com/api/v2/oauth/token");
  assert.equal(request.headers.get("authorization"), EXPECTED_BASIC);
  assert.equal(request.headers.get("content-type"), "application/x-www-form-urlencoded");
  assert.equal(await request.text(), "grant_type=refresh_token&refresh_token=r%2Bt%2F%3D%26x+y");
  assert.equal(request.redirect, "manual");
  assert.equal(recorder.signals.length, 1);
});

Deno.test("sendRefreshTokenRequest() sends the token request under the sandbox's path prefix", async () => {
  const recorder = recordingFetch(() => textResponse(200, "{}"));
  const response = await sendRefreshTokenRequest(
    { ...APP, apiBaseUrl: "http://127.0.0.1:54329/{mall_id}", fetch: recorder.fetch },
    { mallId: "shop1", refreshToken: "rt" },
  );
  await response.text();
  assert.equal(recorder.requests[0]?.url, "http://127.0.0.1:54329/shop1/api/v2/oauth/token");
  await recorder.requests[0]?.body?.cancel();
});

Deno.test("sendRefreshTokenRequest() reports a timeout as CAFE24_TIMEOUT with outcome unknown", async () => {
  let calls = 0;
  const hanging: typeof fetch = (_input, init) => {
    calls++;
    return new Promise<Response>((_resolve, reject) => {
      const signal = init?.signal;
      assert.ok(signal, "the request must carry an abort signal");
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  };
  const started = Date.now();
  const error = await tokenError(sendRefreshTokenRequest(
    { ...APP, requestTimeoutMs: 50, fetch: hanging },
    { mallId: "yourmall", refreshToken: REFRESH_TOKEN },
  ));
  assert.equal(calls, 1);
  assert.equal(error.code, "CAFE24_TIMEOUT");
  assert.equal(error.outcomeUnknown, true);
  assert.ok(Date.now() - started >= 40, "aborted before the timeout");
  assertNoTokenValues(error);
});

Deno.test("sendRefreshTokenRequest() reports a thrown TypeError as CAFE24_NETWORK_ERROR with outcome unknown", async () => {
  const failing: typeof fetch = () =>
    Promise.reject(new TypeError(`error sending request: ${REFRESH_TOKEN}`));
  const error = await tokenError(sendRefreshTokenRequest(
    { ...APP, fetch: failing },
    { mallId: "yourmall", refreshToken: REFRESH_TOKEN },
  ));
  assert.equal(error.code, "CAFE24_NETWORK_ERROR");
  assert.equal(error.outcomeUnknown, true);
  assertNoTokenValues(error);
  assert.ok(!error.message.includes(APP.clientSecret));
});

Deno.test("sendRefreshTokenRequest() throws RangeError for an invalid mall id and never calls fetch", async () => {
  for (const mallId of ["evil.example/x#", "a@b", "shop.evil", "Shop1", "abc", ""]) {
    let calls = 0;
    const spy: typeof fetch = () => {
      calls++;
      return Promise.resolve(new Response(null, { status: 204 }));
    };
    await assert.rejects(
      sendRefreshTokenRequest(
        { ...APP, fetch: spy },
        { mallId, refreshToken: "rt" },
      ),
      RangeError,
      mallId,
    );
    assert.equal(calls, 0, mallId);
  }
});

Deno.test("sendAuthorizationCodeRequest() POSTs the code and redirect_uri as a form", async () => {
  const recorder = recordingFetch(() => textResponse(200, "{}"));
  const response = await sendAuthorizationCodeRequest(
    { ...APP, fetch: recorder.fetch },
    { mallId: "yourmall", code: "c0de", redirectUri: "https://app.example/callback?x=1" },
  );
  await response.text();
  const request = recorder.requests[0];
  assert.ok(request !== undefined);
  assert.equal(request.url, "https://yourmall.cafe24api.com/api/v2/oauth/token");
  assert.equal(request.headers.get("authorization"), EXPECTED_BASIC);
  assert.equal(
    await request.text(),
    "grant_type=authorization_code&code=c0de&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback%3Fx%3D1",
  );
});
