import assert from "node:assert/strict";
import {
  REQUEST_ERRORS,
  RequestError,
} from "../../../supabase/functions/_shared/platform/errors.ts";
import {
  bearerToken,
  configErrorResponse,
  corsHeaders,
  errorResponse,
  MAX_REQUEST_BODY_BYTES,
  openRequest,
  preflightResponse,
  rateLimitedResponse,
  readBodyText,
  requestErrorResponse,
  requestParameters,
} from "../../../supabase/functions/_shared/platform/http.ts";

const FUNCTION_URL = "https://functions.example/cafe24-refresh";

function fromOrigin(origin?: string): Request {
  const headers = new Headers();
  if (origin !== undefined) headers.set("Origin", origin);
  return new Request(FUNCTION_URL, { headers });
}

async function requestErrorOf(promise: Promise<unknown>): Promise<RequestError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RequestError, `expected a RequestError, got ${error}`);
    return error;
  }
  assert.fail("expected a RequestError");
}

function post(body: string, query = ""): Request {
  return new Request(FUNCTION_URL + query, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
  });
}

// ---------------------------------------------------------------------------------------------
// corsHeaders

Deno.test("corsHeaders() allows any origin with *", () => {
  const headers = corsHeaders(fromOrigin("https://app.example"), "*");
  assert.equal(headers["Access-Control-Allow-Origin"], "*");
  assert.equal(headers["Vary"], undefined);
  assert.equal(headers["Access-Control-Allow-Methods"], "GET, POST, OPTIONS");
  const allowed = (headers["Access-Control-Allow-Headers"] ?? "").split(",").map((h) => h.trim());
  for (const name of ["authorization", "apikey", "content-type", "x-cron-secret", "prefer"]) {
    assert.ok(allowed.includes(name), name);
  }
});

Deno.test("corsHeaders() answers * without an Origin header", () => {
  assert.equal(corsHeaders(fromOrigin(), "*")["Access-Control-Allow-Origin"], "*");
});

Deno.test("corsHeaders() echoes an Origin that is in the list, with Vary: Origin", () => {
  const allowed = "https://admin.example, https://app.example";
  const headers = corsHeaders(fromOrigin("https://app.example"), allowed);
  assert.equal(headers["Access-Control-Allow-Origin"], "https://app.example");
  assert.equal(headers["Vary"], "Origin");
});

Deno.test("corsHeaders() allows no origin that is not in the list", () => {
  const allowed = "https://admin.example,https://app.example";
  for (const origin of ["https://evil.example", "https://app.example.evil", "http://app.example"]) {
    const headers = corsHeaders(fromOrigin(origin), allowed);
    assert.ok(!("Access-Control-Allow-Origin" in headers), origin);
    assert.equal(headers["Vary"], "Origin");
  }
  const none = corsHeaders(fromOrigin(), allowed);
  assert.ok(!("Access-Control-Allow-Origin" in none));
});

Deno.test("corsHeaders() treats * within a list as any origin", () => {
  const headers = corsHeaders(fromOrigin("https://evil.example"), "https://app.example, *");
  assert.equal(headers["Access-Control-Allow-Origin"], "*");
});

Deno.test("preflightResponse() answers 204 with the CORS headers", async () => {
  const response = preflightResponse(fromOrigin("https://app.example"), "https://app.example");
  assert.equal(response.status, 204);
  assert.equal(response.headers.get("access-control-allow-origin"), "https://app.example");
  assert.equal(await response.text(), "");
});

// ---------------------------------------------------------------------------------------------
// requestParameters

Deno.test("requestParameters() reads query parameters of a GET", async () => {
  const params = await requestParameters(new Request(FUNCTION_URL + "?mall_id=shop1&force=true"));
  assert.deepEqual(params, { mall_id: "shop1", force: "true" });
});

Deno.test("requestParameters() reads a JSON object body of a POST", async () => {
  const params = await requestParameters(post('{"mall_id":"shop1","force":true}'));
  assert.deepEqual(params, { mall_id: "shop1", force: true });
});

Deno.test("requestParameters() merges body and query, the query winning", async () => {
  const params = await requestParameters(
    post('{"mall_id":"bodymall","force":true,"trigger":"cron"}', "?mall_id=querymall&force=0"),
  );
  assert.deepEqual(params, { mall_id: "querymall", force: "0", trigger: "cron" });
});

Deno.test("requestParameters() accepts an empty or blank POST body", async () => {
  assert.deepEqual(await requestParameters(post("")), {});
  assert.deepEqual(await requestParameters(post("  \n", "?force=1")), { force: "1" });
});

Deno.test("requestParameters() rejects a body that is not JSON as INVALID_REQUEST", async () => {
  for (const body of ["mall_id=shop1", "{mall_id: 'shop1'}", "{"]) {
    const error = await requestErrorOf(requestParameters(post(body)));
    assert.equal(error.code, "INVALID_REQUEST", body);
    assert.deepEqual(error.details, { detail: "body is not JSON" });
  }
});

Deno.test("requestParameters() rejects a JSON body that is not an object as INVALID_REQUEST", async () => {
  for (const body of ['[{"mall_id":"shop1"}]', "[]", "null", "42", '"shop1"', "true"]) {
    const error = await requestErrorOf(requestParameters(post(body)));
    assert.equal(error.code, "INVALID_REQUEST", body);
    assert.deepEqual(error.details, { detail: "body must be a JSON object" });
  }
});

// ---------------------------------------------------------------------------------------------
// errorResponse

Deno.test("errorResponse() answers the code's status with {error: CODE} as JSON", async () => {
  const response = errorResponse("INVALID_MALL_ID");
  assert.equal(response.status, 400);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(await response.json(), { error: "INVALID_MALL_ID" });
});

Deno.test("errorResponse() uses the status of every request error code", async () => {
  for (const [code, { status }] of Object.entries(REQUEST_ERRORS)) {
    const response = errorResponse(code as keyof typeof REQUEST_ERRORS);
    assert.equal(response.status, status, code);
    assert.deepEqual(await response.json(), { error: code });
  }
  assert.equal(REQUEST_ERRORS.UNAUTHORIZED.status, 401);
  assert.equal(REQUEST_ERRORS.METHOD_NOT_ALLOWED.status, 405);
});

Deno.test("errorResponse() adds safe details and extra headers", async () => {
  const response = errorResponse("INVALID_REQUEST", { detail: "body is not JSON" }, {
    "Access-Control-Allow-Origin": "*",
  });
  assert.equal(response.status, 400);
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  assert.deepEqual(await response.json(), { error: "INVALID_REQUEST", detail: "body is not JSON" });
});

Deno.test("requestErrorResponse() turns a RequestError into its error response", async () => {
  const response = requestErrorResponse(
    new RequestError("INVALID_REQUEST", { detail: "force must be true or false" }),
  );
  assert.equal(response.status, 400);
  assert.deepEqual(await response.json(), {
    error: "INVALID_REQUEST",
    detail: "force must be true or false",
  });
  const bare = requestErrorResponse(new RequestError("UNAUTHORIZED"));
  assert.equal(bare.status, 401);
  assert.deepEqual(await bare.json(), { error: "UNAUTHORIZED" });
});

// ---------------------------------------------------------------------------------------------
// The body limit

/** A body that hands out `total` bytes in `chunkSize` pieces and records what was taken. */
function meteredBody(total: number, chunkSize: number) {
  const meter = { pulledBytes: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const size = Math.min(chunkSize, total - meter.pulledBytes);
      if (size <= 0) {
        controller.close();
        return;
      }
      meter.pulledBytes += size;
      controller.enqueue(new Uint8Array(size).fill(0x20));
    },
    cancel() {
      meter.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, meter };
}

function streamed(stream: ReadableStream<Uint8Array>, headers: Record<string, string> = {}) {
  return new Request(FUNCTION_URL, { method: "POST", body: stream, headers });
}

Deno.test("the request body limit is 16 KiB", () => {
  assert.equal(MAX_REQUEST_BODY_BYTES, 16 * 1024);
  assert.equal(REQUEST_ERRORS.BODY_TOO_LARGE.status, 413);
});

Deno.test("openRequest() refuses a Content-Length above 16 KiB with 413, reading nothing", async () => {
  const { stream, meter } = meteredBody(1 << 20, 1024);
  const request = streamed(stream, {
    "content-length": String(MAX_REQUEST_BODY_BYTES + 1),
    origin: "https://app.example",
  });
  const { early, cors } = openRequest(request, {}, ["POST"]);
  assert.ok(early !== null);
  assert.equal(early.status, 413);
  assert.deepEqual(await early.json(), { error: "BODY_TOO_LARGE" });
  assert.equal(early.headers.get("access-control-allow-origin"), "*", "CORS headers included");
  assert.equal(cors["Access-Control-Allow-Origin"], "*");
  assert.equal(meter.pulledBytes, 0, "not a byte was read");
  await stream.cancel();
});

Deno.test("openRequest() lets a Content-Length of exactly 16 KiB through", () => {
  const request = new Request(FUNCTION_URL, {
    method: "POST",
    body: " ".repeat(MAX_REQUEST_BODY_BYTES),
  });
  const announced = new Request(FUNCTION_URL, {
    method: "POST",
    headers: { "content-length": String(MAX_REQUEST_BODY_BYTES) },
  });
  assert.equal(openRequest(announced, {}, ["POST"]).early, null);
  assert.equal(openRequest(request, {}, ["POST"]).early, null);
});

Deno.test("readBodyText() stops a chunked body at 16 KiB + 1 byte and cancels it", async () => {
  const { stream, meter } = meteredBody(300 * 1024, 1);
  const error = await requestErrorOf(readBodyText(streamed(stream)));
  assert.equal(error.code, "BODY_TOO_LARGE");
  assert.equal(meter.pulledBytes, MAX_REQUEST_BODY_BYTES + 1, "read exactly one byte too many");
  assert.ok(meter.cancelled, "the rest of the body is cancelled, not read");
});

Deno.test("readBodyText() stops large chunks at the first one past the limit", async () => {
  const { stream, meter } = meteredBody(300 * 1024, 4096);
  const error = await requestErrorOf(readBodyText(streamed(stream)));
  assert.equal(error.code, "BODY_TOO_LARGE");
  assert.equal(meter.pulledBytes, MAX_REQUEST_BODY_BYTES + 4096);
  assert.ok(meter.cancelled);
});

Deno.test("readBodyText() reads a chunked body of exactly 16 KiB", async () => {
  const { stream, meter } = meteredBody(MAX_REQUEST_BODY_BYTES, 1000);
  const text = await readBodyText(streamed(stream));
  assert.equal(text.length, MAX_REQUEST_BODY_BYTES);
  assert.equal(meter.cancelled, false);
});

Deno.test("requestParameters() answers BODY_TOO_LARGE for a POST body over 16 KiB", async () => {
  const padded = `{"force":true${" ".repeat(MAX_REQUEST_BODY_BYTES)}}`;
  assert.equal((await requestErrorOf(requestParameters(post(padded)))).code, "BODY_TOO_LARGE");
  const fits = `{"force":true${" ".repeat(MAX_REQUEST_BODY_BYTES - 14)}}`;
  assert.equal(new TextEncoder().encode(fits).byteLength, MAX_REQUEST_BODY_BYTES);
  assert.deepEqual(await requestParameters(post(fits)), { force: true });
});

Deno.test("requestParameters() refuses an announced Content-Length over 16 KiB before reading", async () => {
  const { stream, meter } = meteredBody(1 << 20, 1024);
  const request = streamed(stream, { "content-length": "300000" });
  assert.equal((await requestErrorOf(requestParameters(request))).code, "BODY_TOO_LARGE");
  assert.equal(meter.pulledBytes, 0);
  await stream.cancel();
});

// ---------------------------------------------------------------------------------------------
// configErrorResponse, rateLimitedResponse

Deno.test("configErrorResponse() names each variable and its rule, never a value", async () => {
  const response = configErrorResponse("cafe24-authorize", "CONFIG_INVALID", [
    "CAFE24_OAUTH_STATE_SECRET",
  ]);
  assert.equal(response.status, 500);
  assert.deepEqual(await response.json(), {
    error: "CONFIG_INVALID",
    invalid: ["CAFE24_OAUTH_STATE_SECRET"],
    rules: [
      "CAFE24_OAUTH_STATE_SECRET must be a secret of at least 32 characters (openssl rand -base64 32)",
    ],
  });
  const missing = configErrorResponse("cafe24-refresh", "CONFIG_MISSING", ["CAFE24_CLIENT_ID"]);
  assert.deepEqual(await missing.json(), {
    error: "CONFIG_MISSING",
    missing: ["CAFE24_CLIENT_ID"],
    rules: ["CAFE24_CLIENT_ID must be set to the app's client ID from Cafe24 Developers"],
  });
});

Deno.test("rateLimitedResponse() is 429 with Retry-After in whole seconds, exposed to CORS", async () => {
  const response = rateLimitedResponse(12.2, { "Access-Control-Allow-Origin": "*" });
  assert.equal(response.status, 429);
  assert.equal(response.headers.get("retry-after"), "13");
  assert.equal(response.headers.get("access-control-expose-headers"), "Retry-After");
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  assert.deepEqual(await response.json(), { error: "RATE_LIMITED" });
  const soon = rateLimitedResponse(0, {});
  assert.equal(soon.headers.get("retry-after"), "1", "never 0: that would invite a retry at once");
  await soon.body?.cancel();
});

function withAuthorization(value?: string): Request {
  const headers = new Headers();
  if (value !== undefined) headers.set("Authorization", value);
  return new Request(FUNCTION_URL, { headers });
}

Deno.test("bearerToken() returns the token of a Bearer header", () => {
  assert.equal(bearerToken(withAuthorization("Bearer abc.def-ghi_jkl")), "abc.def-ghi_jkl");
});

Deno.test("bearerToken() reads the scheme case-insensitively", () => {
  for (const scheme of ["bearer", "BEARER", "BeArEr"]) {
    assert.equal(bearerToken(withAuthorization(`${scheme} tok3n`)), "tok3n", scheme);
  }
});

Deno.test("bearerToken() allows extra whitespace around the token", () => {
  assert.equal(bearerToken(withAuthorization("Bearer    tok3n")), "tok3n");
  assert.equal(bearerToken(withAuthorization("Bearer\ttok3n")), "tok3n");
  assert.equal(bearerToken(withAuthorization("  Bearer tok3n  ")), "tok3n");
});

Deno.test("bearerToken() returns null without an Authorization header", () => {
  assert.equal(bearerToken(withAuthorization()), null);
});

Deno.test("bearerToken() returns null for malformed or foreign headers", () => {
  const malformed = [
    "",
    "Bearer",
    "Bearer ",
    "Bearertok3n",
    "Bearer tok3n extra",
    "Basic bXlfY2xpZW50X2lkOm15X3NlY3JldF9rZXk=",
    "Token tok3n",
    "tok3n",
    "Bearer: tok3n",
  ];
  for (const value of malformed) {
    assert.equal(bearerToken(withAuthorization(value)), null, JSON.stringify(value));
  }
});
