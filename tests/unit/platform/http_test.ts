import assert from "node:assert/strict";
import {
  REQUEST_ERRORS,
  RequestError,
} from "../../../supabase/functions/_shared/platform/errors.ts";
import {
  corsHeaders,
  errorResponse,
  preflightResponse,
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
