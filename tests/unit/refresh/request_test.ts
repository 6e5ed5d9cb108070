import assert from "node:assert/strict";
import { RequestError } from "../../../supabase/functions/_shared/platform/errors.ts";
import { parseRefreshRequest } from "../../../supabase/functions/_shared/refresh/request.ts";

function request(prefer?: string): Request {
  const headers = new Headers();
  if (prefer !== undefined) headers.set("Prefer", prefer);
  return new Request("https://functions.example/cafe24-refresh", { method: "POST", headers });
}

function requestErrorOf(action: () => unknown): RequestError {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof RequestError, `expected a RequestError, got ${error}`);
    return error;
  }
  assert.fail("expected a RequestError");
}

Deno.test("parseRefreshRequest() defaults to every mall, not forced, manual, synchronous", () => {
  assert.deepEqual(parseRefreshRequest(request(), {}, "secret"), {
    mallId: null,
    force: false,
    trigger: "manual",
    respondAsync: false,
    maxConnections: null,
    tickId: null,
  });
});

Deno.test("parseRefreshRequest() takes the schedule's max_connections and tick as integers", () => {
  const parsed = parseRefreshRequest(
    request("respond-async"),
    { trigger: "cron", tick: 42, max_connections: 75 },
    "secret",
  );
  assert.equal(parsed.maxConnections, 75);
  assert.equal(parsed.tickId, 42);
  // From a query string they arrive as digits.
  const fromQuery = parseRefreshRequest(request(), { max_connections: "3", tick: "9" }, "secret");
  assert.deepEqual([fromQuery.maxConnections, fromQuery.tickId], [3, 9]);
});

Deno.test("parseRefreshRequest() refuses max_connections and tick that are not positive integers", () => {
  for (const value of [0, -1, 1.5, "", "7x", "0x10", true, null, [], 2_000_000]) {
    const error = requestErrorOf(() =>
      parseRefreshRequest(request(), { max_connections: value }, "secret")
    );
    assert.equal(error.code, "INVALID_REQUEST", JSON.stringify(value));
    assert.deepEqual(error.details, {
      detail: "max_connections must be an integer from 1 to 1000000",
    });
  }
  const error = requestErrorOf(() => parseRefreshRequest(request(), { tick: "-3" }, "secret"));
  assert.match(String(error.details?.detail), /^tick must be an integer from 1 to/);
});

Deno.test("parseRefreshRequest() refuses max_connections and tick from a signed-in user", () => {
  for (const name of ["max_connections", "tick"]) {
    const error = requestErrorOf(() => parseRefreshRequest(request(), { [name]: 5 }, "user"));
    assert.equal(error.code, "INVALID_REQUEST");
    assert.deepEqual(error.details, { detail: `${name} is for the scheduler only` });
  }
});

Deno.test("parseRefreshRequest() accepts a valid mall_id", () => {
  assert.equal(
    parseRefreshRequest(request(), { mall_id: "yourmall" }, "secret").mallId,
    "yourmall",
  );
  assert.equal(parseRefreshRequest(request(), { mall_id: "shop1" }, "user").mallId, "shop1");
});

Deno.test("parseRefreshRequest() rejects an invalid mall_id as INVALID_MALL_ID", () => {
  for (const mallId of ["Shop1", "1shop", "abc", "", "evil.example/x#", "a@b", null, 1234, []]) {
    for (const caller of ["secret", "user"] as const) {
      const error = requestErrorOf(() =>
        parseRefreshRequest(request(), { mall_id: mallId }, caller)
      );
      assert.equal(error.code, "INVALID_MALL_ID", `${JSON.stringify(mallId)} from ${caller}`);
    }
  }
});

Deno.test('parseRefreshRequest() reads force true, "true" and "1" as true', () => {
  for (const force of [true, "true", "1"]) {
    assert.equal(parseRefreshRequest(request(), { force }, "secret").force, true, String(force));
  }
});

Deno.test('parseRefreshRequest() reads force false, "false", "0" and absent as false', () => {
  for (const force of [false, "false", "0", undefined]) {
    assert.equal(parseRefreshRequest(request(), { force }, "secret").force, false, String(force));
  }
  assert.equal(parseRefreshRequest(request(), {}, "user").force, false);
});

Deno.test("parseRefreshRequest() rejects any other force as INVALID_REQUEST", () => {
  for (const force of ["yes", "TRUE ", 1, null]) {
    const error = requestErrorOf(() => parseRefreshRequest(request(), { force }, "secret"));
    assert.equal(error.code, "INVALID_REQUEST", String(force));
    assert.deepEqual(error.details, { detail: "force must be true or false" });
  }
});

Deno.test("parseRefreshRequest() records the trigger a secret caller names", () => {
  for (const trigger of ["cron", "manual", "cli"]) {
    assert.equal(parseRefreshRequest(request(), { trigger }, "secret").trigger, trigger);
  }
});

Deno.test("parseRefreshRequest() rejects an unknown trigger from a secret caller", () => {
  for (const trigger of ["user", "bogus", "", 1]) {
    const error = requestErrorOf(() => parseRefreshRequest(request(), { trigger }, "secret"));
    assert.equal(error.code, "INVALID_REQUEST", String(trigger));
    assert.deepEqual(error.details, { detail: "trigger must be cron, manual or cli" });
  }
});

Deno.test("parseRefreshRequest() always records a user caller as trigger user", () => {
  assert.equal(parseRefreshRequest(request(), {}, "user").trigger, "user");
  for (const trigger of ["cron", "manual", "cli", "bogus"]) {
    assert.equal(parseRefreshRequest(request(), { trigger }, "user").trigger, "user", trigger);
  }
});

Deno.test("parseRefreshRequest() detects Prefer: respond-async", () => {
  const asks = [
    "respond-async",
    "respond-async, wait=5",
    "respond-async; wait=5",
    "wait=5, respond-async",
    "handling=lenient,respond-async",
    "RESPOND-ASYNC",
    " respond-async ",
  ];
  for (const prefer of asks) {
    assert.equal(
      parseRefreshRequest(request(prefer), {}, "secret").respondAsync,
      true,
      JSON.stringify(prefer),
    );
  }
});

Deno.test("parseRefreshRequest() stays synchronous without respond-async in Prefer", () => {
  for (const prefer of [undefined, "", "wait=5", "respond-asynchronously", "no-respond-async"]) {
    assert.equal(
      parseRefreshRequest(request(prefer), {}, "user").respondAsync,
      false,
      JSON.stringify(prefer),
    );
  }
});
