/**
 * Bad input, as one table: malformed headers, query strings, bodies, user tokens, OAuth states,
 * callback parameters, `providers` rows and Cafe24 answers, sent over HTTP to the three functions
 * on one stack (real PostgreSQL with the migrations, the Cafe24 sandbox, the functions as a child
 * process, a local JWKS), configured as in connect_flow_test.ts.
 *
 * Each row names what it sends and the stable answer it expects: the HTTP status and error code;
 * for cafe24-callback's GET the `reason` of the redirect to CAFE24_APP_RETURN_URL; for a refresh
 * run over a broken row or a bad Cafe24 answer, the skipped_reasons counter or the failure code.
 * Each row also says how many requests Cafe24 may get from it (mostly none).
 *
 * After every row, every stored token must be what it was before the row was sent:
 * `select id, providers from auth_settings`, the pending connections (pairs parked by the
 * callback until the app completes them) and the sandbox's live refresh token of every seeded
 * mall. No row in this table is a legitimate refresh or completion. Two seeded connections are
 * due at all times, so a request that slipped past a check into a broad or forced run would
 * refresh them and show up here; the completion rows (cafe24-callback POST) mostly carry the
 * handle of a live pending connection of Alice's, so one that slipped through would use it up.
 *
 * Answers the sandbox cannot give (a literal `invalid_client`, a non-JSON 400, a redirect, a
 * 1 MiB body) come from a small stub of Cafe24's token endpoint in this file, reached by a second
 * functions process whose CAFE24_API_BASE_URL points at it.
 */
import assert from "node:assert/strict";
import { base64url, startTestAuth, type TestAuth } from "../support/auth.ts";
import { browser } from "../support/connect.ts";
import type { FaultKind, FaultSpec } from "../../local/cafe24_sandbox.ts";
import {
  CLIENT_SECRET,
  CONNECT_SETTINGS,
  connectionState,
  connectMall,
  connectStackOptions,
  CRON_SECRET,
  insertConnection,
  type RefreshStack,
  startRefreshStack,
} from "../support/stack.ts";
import type { FunctionsServer } from "../../local/functions/server.ts";
import type {
  RefreshFailureCode,
  RequestErrorCode,
} from "../../supabase/functions/_shared/platform/errors.ts";
import {
  newNonce,
  signState,
  verifyState,
} from "../../supabase/functions/_shared/connect/state.ts";
import type { RunSummary, SkipReason } from "../../supabase/functions/_shared/refresh/run.ts";

const { stateSecret: STATE_SECRET } = CONNECT_SETTINGS;
/** The mall of the pending connections the completion rows carry handles of. */
const PENDING_MALL = "shoppending";

type Category =
  | "header"
  | "query"
  | "body"
  | "jwt"
  | "state"
  | "callback"
  | "providers"
  | "cafe24";

type Expected =
  /** A JSON error answer `{"error": CODE, …}` with this status. */
  | { status: number; error: RequestErrorCode }
  /** cafe24-callback: 302 to CAFE24_APP_RETURN_URL with `cafe24=error&reason=CODE`. */
  | { reason: RequestErrorCode }
  /** A run over exactly one connection that skips it for this reason. */
  | { skipped: SkipReason }
  /** A run over exactly one connection that fails it with this code, leaving it `then`. */
  | { failure: RefreshFailureCode; then: "active" | "reconnect_required" };

interface Sent {
  url: string | URL;
  init?: RequestInit;
  /** The auth_settings row a run must report on (failure rows). */
  connectionId?: string;
}

interface Row {
  category: Category;
  name: string;
  expect: Expected;
  /** Seeds what the row needs and returns the request. Runs before the "before" snapshot. */
  prepare: () => Promise<Sent>;
  /** Requests Cafe24 (sandbox or stub) receives while the row is sent. Default 0. */
  cafe24Requests?: number;
  /** A fault `prepare` queued at the sandbox, which the sandbox must have served. */
  fault?: FaultKind;
  /** Only for a row that reveals a product bug: the row keeps asserting the right behaviour. */
  ignore?: boolean;
}

interface Seen {
  status: number;
  location: string | null;
  body: string;
}

Deno.test("bad input: malformed requests, rows and Cafe24 answers change no stored token", async (t) => {
  const auth = await startTestAuth();
  const stub = startCafe24Stub();
  let stack: RefreshStack | undefined;
  try {
    stack = await startRefreshStack(connectStackOptions(auth));
    const stubbed = await stack.startFunctions({ CAFE24_API_BASE_URL: stub.template });
    await badInputSteps(t, stack, stubbed, auth, stub);
  } finally {
    await stack?.stop();
    await stub.close();
    await auth.close();
  }
});

async function badInputSteps(
  t: Deno.TestContext,
  stack: RefreshStack,
  stubbed: FunctionsServer,
  auth: TestAuth,
  stub: Cafe24Stub,
) {
  const { db, sandbox, functions } = stack;
  const web = browser(stack);
  /** Malls whose sandbox live refresh token is part of every snapshot. */
  const seeded = new Set<string>();
  /** Handles of the pending connections the completion rows were given: all still parked. */
  const handles: string[] = [];
  // Every completion row parks a live pending connection of Alice's and leaves it parked, far more
  // than one user may hold at once (max_pending_connections, tested in custody_test.ts).
  await db.sql`
    create or replace function cafe24_private.max_pending_connections()
    returns integer language sql immutable set search_path = '' as $$ select 1000 $$`;
  /** Every answer a row got: checked for secrets at the end. */
  const seen: Seen[] = [];

  const alice = crypto.randomUUID();
  const bob = crypto.randomUUID();
  /** Owns a due connection: a user token for them that got through would refresh it. */
  const victim = crypto.randomUUID();
  const aliceJwt = await auth.mint({ sub: alice });

  sandbox.addMall("shopalpha");
  sandbox.addMall("shopvictim");
  sandbox.addMall(PENDING_MALL);
  // Due now (no expiry stored): any run that reaches them refreshes them.
  await connectMall(stack, "shopalpha", { userId: alice });
  await connectMall(stack, "shopvictim", { userId: victim });
  seeded.add("shopalpha");
  seeded.add("shopvictim");

  // ---------------------------------------------------------------------------------------------
  // Request builders
  // ---------------------------------------------------------------------------------------------

  const at = (server: FunctionsServer, name: string, query = "") => `${server.url}/${name}${query}`;
  const cron = { "x-cron-secret": CRON_SECRET };
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  /** `body` (sent as JSON) makes it a POST; refresh is POSTed either way, as pg_net does. */
  const request = (
    server: FunctionsServer,
    name: string,
    query: string,
    headers: Record<string, string>,
    options: { method?: string; body?: string },
  ): Sent => ({
    url: at(server, name, query),
    init: options.body === undefined ? { method: options.method ?? "GET", headers } : {
      method: options.method ?? "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: options.body,
    },
  });
  const refresh = (
    query: string,
    headers: Record<string, string>,
    options: { method?: string; body?: string } = {},
  ) => request(functions, "cafe24-refresh", query, headers, { method: "POST", ...options });
  const authorize = (
    query: string,
    headers: Record<string, string>,
    options: { method?: string; body?: string } = {},
  ) => request(functions, "cafe24-authorize", query, headers, options);
  const json = (body: string) => ({ body });
  /** A forced refresh as a user: `force=true` so that a token that got through would refresh. */
  const asUser = (token: string) => refresh("?force=true", bearer(token));

  const withParams = (url: URL, changes: Record<string, string | null>): URL => {
    const changed = new URL(url);
    for (const [name, value] of Object.entries(changes)) {
      if (value === null) changed.searchParams.delete(name);
      else changed.searchParams.set(name, value);
    }
    return changed;
  };
  /**
   * authorize (mode=json) as Alice → the sandbox's authorize page → the callback URL it sends the
   * browser to, addressed to the local functions server. Its state's nonce is recorded and open.
   */
  const startConnect = async (mallId = "shopalpha"): Promise<URL> =>
    new URL(web.local(await web.authorizeAtCafe24(aliceJwt, mallId)));
  const stateOf = async (url: URL) => {
    const check = await verifyState(STATE_SECRET, url.searchParams.get("state"));
    assert.ok(check.ok, "the sandbox returned the state unchanged");
    return check.state;
  };
  const callback = (url: URL): Sent => ({ url, init: { method: "GET" } });
  /** cafe24-callback's completion request: `body` exactly as given, sent as JSON. */
  const completion = (
    headers: Record<string, string>,
    body: string,
    query = "",
    method = "POST",
  ) => request(functions, "cafe24-callback", query, headers, { method, body });
  const handleBody = (handle: unknown) => JSON.stringify({ handle });
  /**
   * `bytes` of spaces and then `tail`, 1 KiB a chunk, sent without a Content-Length: JSON
   * allows the leading whitespace, so with a JSON `tail` it is a valid body, only too large.
   */
  const chunked = (bytes: number, tail = "") => {
    const chunks = [...Array(Math.ceil(bytes / 1024)).fill(" ".repeat(1024)), tail];
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        const chunk = chunks.shift();
        if (chunk === undefined) return controller.close();
        controller.enqueue(new TextEncoder().encode(chunk));
      },
    });
  };

  /** A row of its own user, refreshed by that user with force: only that row is in scope. */
  const brokenRow = async (providers: string, expected: "row" | "failure" = "row") => {
    const userId = crypto.randomUUID();
    const [row] = await db.sql<{ id: string }[]>`
      insert into public.auth_settings (user_id, providers)
      values (${userId}, ${providers}::text::jsonb)
      returning id`;
    const sent = asUser(await auth.mint({ sub: userId }));
    return expected === "failure" ? { ...sent, connectionId: row!.id } : sent;
  };
  const providersRow = (name: string, providers: string, skipped: SkipReason): Row => ({
    category: "providers",
    name: `${name}: ${providers}`,
    expect: { skipped },
    prepare: () => brokenRow(providers),
  });

  /** A due connection of its own mall at the sandbox, with `fault` queued for its next request. */
  const faultRow = (
    name: string,
    mallId: string,
    fault: FaultSpec,
    failure: RefreshFailureCode,
  ): Row => ({
    category: "cafe24",
    name,
    expect: { failure, then: "active" },
    cafe24Requests: 1,
    fault: fault.kind,
    prepare: async () => {
      const { id } = await connectMall(stack, mallId);
      seeded.add(mallId);
      sandbox.queueFaults(mallId, [fault]);
      return { ...refresh(`?mall_id=${mallId}&force=true`, cron), connectionId: id };
    },
  });
  /** A connection whose token request goes to the stub, which answers `answer`. */
  const stubRow = (
    name: string,
    mallId: string,
    answer: () => Response,
    failure: RefreshFailureCode,
    then: "active" | "reconnect_required" = "active",
  ): Row => ({
    category: "cafe24",
    name,
    expect: { failure, then },
    cafe24Requests: 1,
    prepare: async () => {
      stub.answers.set(mallId, answer);
      const id = await insertConnection(db, {
        mallId,
        refreshToken: `rt-${crypto.randomUUID()}`,
        accessToken: `at-${crypto.randomUUID()}`,
      });
      return {
        url: at(stubbed, "cafe24-refresh", `?mall_id=${mallId}&force=true`),
        init: { method: "POST", headers: cron },
        connectionId: id,
      };
    },
  });
  /** A callback whose code exchange meets `fault` at the sandbox. */
  const exchangeFaultRow = (name: string, fault: FaultSpec, reason: RequestErrorCode): Row => ({
    category: "cafe24",
    name,
    expect: { reason },
    cafe24Requests: 1,
    fault: fault.kind,
    prepare: async () => {
      const url = await startConnect();
      sandbox.queueFaults("shopalpha", [fault]);
      return callback(url);
    },
  });

  const hugeJwtShaped = `${"a".repeat(20_000)}.${"b".repeat(20_000)}.c`;
  const tokenOf = (jwt: string) => jwt.split(".") as [string, string, string];
  const json64 = (value: unknown) => base64url(new TextEncoder().encode(JSON.stringify(value)));
  const unjson64 = (part: string): Record<string, unknown> =>
    JSON.parse(atob(part.replaceAll("-", "+").replaceAll("_", "/")));

  // ---------------------------------------------------------------------------------------------
  // The table
  // ---------------------------------------------------------------------------------------------

  const unauthorized = { status: 401, error: "UNAUTHORIZED" } as const;
  const badMall = { status: 400, error: "INVALID_MALL_ID" } as const;
  const badRequest = { status: 400, error: "INVALID_REQUEST" } as const;
  const badScope = { status: 400, error: "INVALID_SCOPE" } as const;
  const tooLarge = { status: 413, error: "BODY_TOO_LARGE" } as const;
  const headerRow = (name: string, sent: () => Sent | Promise<Sent>, expect: Expected): Row => ({
    category: "header",
    name,
    expect,
    prepare: async () => await sent(),
  });
  const queryRow = (name: string, sent: Sent, expect: Expected): Row => ({
    category: "query",
    name,
    expect,
    prepare: () => Promise.resolve(sent),
  });
  const bodyRow = (name: string, sent: Sent, expect: Expected): Row => ({
    category: "body",
    name,
    expect,
    prepare: () => Promise.resolve(sent),
  });
  const jwtRow = (name: string, sent: () => Promise<Sent>): Row => ({
    category: "jwt",
    name,
    expect: unauthorized,
    prepare: sent,
  });
  const stateRow = (
    name: string,
    reason: RequestErrorCode,
    state: (url: URL) => Promise<string | null> | string | null,
  ): Row => ({
    category: "state",
    name,
    expect: { reason },
    prepare: async () => {
      const url = await startConnect();
      return callback(withParams(url, { state: await state(url) }));
    },
  });
  const callbackRow = (
    name: string,
    reason: RequestErrorCode,
    changes: (url: URL) => Record<string, string | null>,
    cafe24Requests = 0,
  ): Row => ({
    category: "callback",
    name,
    expect: { reason },
    cafe24Requests,
    prepare: async () => {
      const url = await startConnect();
      return callback(withParams(url, changes(url)));
    },
  });
  const forAlice = (query: string) => authorize(query, bearer(aliceJwt));
  /**
   * A completion row built around the handle of a live pending connection of Alice's, parked by
   * a real callback before the row is sent; the snapshot shows it still parked afterwards.
   */
  const completionRow = (
    category: Category,
    name: string,
    expect: Expected,
    sent: (handle: string) => Sent | Promise<Sent>,
  ): Row => ({
    category,
    name,
    expect,
    prepare: async () => {
      const handle = await web.startConnection(aliceJwt, PENDING_MALL);
      handles.push(handle);
      return await sent(handle);
    },
  });
  const handleInvalid = { status: 400, error: "HANDLE_INVALID" } as const;

  const rows: Row[] = [
    // Headers ------------------------------------------------------------------------------------
    headerRow("refresh without any credentials", () => refresh("?force=true", {}), unauthorized),
    headerRow(
      "refresh with `Authorization: Bearer` and no token",
      () => refresh("?force=true", { authorization: "Bearer" }),
      unauthorized,
    ),
    headerRow(
      "refresh with the cron secret under the Basic scheme",
      () => refresh("?force=true", { authorization: `Basic ${btoa(`cron:${CRON_SECRET}`)}` }),
      unauthorized,
    ),
    headerRow(
      "refresh with the bare cron secret as Authorization, no scheme",
      () => refresh("?force=true", { authorization: CRON_SECRET }),
      unauthorized,
    ),
    headerRow(
      "refresh with the cron secret under a `Token` scheme",
      () => refresh("?force=true", { authorization: `Token ${CRON_SECRET}` }),
      unauthorized,
    ),
    headerRow(
      "refresh with whitespace inside the x-cron-secret value",
      () =>
        refresh("?force=true", {
          "x-cron-secret": `${CRON_SECRET.slice(0, 10)} ${CRON_SECRET.slice(10)}`,
        }),
      unauthorized,
    ),
    headerRow(
      "refresh with the cron secret followed by a second word in the bearer",
      () => refresh("?force=true", { authorization: `Bearer ${CRON_SECRET} ${CRON_SECRET}` }),
      unauthorized,
    ),
    headerRow(
      "refresh with an empty x-cron-secret",
      () => refresh("?force=true", { "x-cron-secret": "" }),
      unauthorized,
    ),
    headerRow(
      "refresh with a wrong x-cron-secret next to the right secret as bearer",
      () => refresh("?force=true", { "x-cron-secret": "wrong", ...bearer(CRON_SECRET) }),
      unauthorized,
    ),
    headerRow(
      "refresh with a 40 KB JWT-shaped bearer",
      () => refresh("?force=true", bearer(hugeJwtShaped)),
      unauthorized,
    ),
    // Deno's HTTP server answers an empty 400 itself once a request's headers pass ~64 KB, before
    // any function runs; these stay below that, so the function's own checks are what answer.
    headerRow(
      "refresh with a 33 KB x-cron-secret that starts with the secret",
      () => refresh("?force=true", { "x-cron-secret": CRON_SECRET.repeat(1_000) }),
      unauthorized,
    ),
    headerRow(
      "authorize without Authorization",
      () => authorize("?mall_id=shopalpha&mode=json", {}),
      unauthorized,
    ),
    headerRow(
      "authorize with the cron secret as bearer (not a user token)",
      () => authorize("?mall_id=shopalpha&mode=json", bearer(CRON_SECRET)),
      unauthorized,
    ),
    headerRow(
      "authorize with a 40 KB JWT-shaped bearer",
      () => authorize("?mall_id=shopalpha&mode=json", bearer(hugeJwtShaped)),
      unauthorized,
    ),
    headerRow(
      "refresh with PUT",
      () => refresh("?force=true", cron, { method: "PUT" }),
      { status: 405, error: "METHOD_NOT_ALLOWED" },
    ),
    headerRow(
      "authorize with DELETE",
      () => authorize("?mall_id=shopalpha", bearer(aliceJwt), { method: "DELETE" }),
      { status: 405, error: "METHOD_NOT_ALLOWED" },
    ),
    headerRow(
      "callback POST carrying a valid state and code, without a session",
      async () => {
        const url = await startConnect();
        return { url, init: { method: "POST" } };
      },
      unauthorized,
    ),
    completionRow(
      "header",
      "completion without Authorization",
      unauthorized,
      (handle) => completion({}, handleBody(handle)),
    ),
    completionRow(
      "header",
      "completion with `Authorization: Bearer` and no token",
      unauthorized,
      (handle) => completion({ authorization: "Bearer" }, handleBody(handle)),
    ),
    completionRow(
      "header",
      "completion with the cron secret as bearer (not a user token)",
      unauthorized,
      (handle) => completion(bearer(CRON_SECRET), handleBody(handle)),
    ),
    completionRow(
      "header",
      "completion with Alice's token under the Basic scheme",
      unauthorized,
      (handle) => completion({ authorization: `Basic ${aliceJwt}` }, handleBody(handle)),
    ),
    completionRow(
      "header",
      "completion with the handle as the bearer",
      unauthorized,
      (handle) => completion(bearer(handle), handleBody(handle)),
    ),
    completionRow(
      "header",
      "completion with PUT",
      { status: 405, error: "METHOD_NOT_ALLOWED" },
      (handle) => completion(bearer(aliceJwt), handleBody(handle), "", "PUT"),
    ),

    // Query strings -----------------------------------------------------------------------------
    queryRow(
      "refresh mall_id with uppercase",
      refresh("?mall_id=ShopAlpha&force=true", cron),
      badMall,
    ),
    queryRow("refresh mall_id with dots", refresh("?mall_id=shop.alpha&force=true", cron), badMall),
    queryRow(
      "refresh mall_id with slashes",
      refresh("?mall_id=evil.example/x&force=true", cron),
      badMall,
    ),
    queryRow(
      "refresh mall_id with `#` (%23)",
      refresh("?mall_id=shopalpha%23x&force=true", cron),
      badMall,
    ),
    queryRow(
      "refresh mall_id with an encoded slash (%2F)",
      refresh("?mall_id=shopalpha%2F..%2Fshopvictim&force=true", cron),
      badMall,
    ),
    queryRow(
      "refresh mall_id with unicode",
      refresh(`?mall_id=${encodeURIComponent("shöpalpha")}&force=true`, cron),
      badMall,
    ),
    queryRow(
      "refresh mall_id of 17 characters",
      refresh(`?mall_id=${"s".repeat(17)}&force=true`, cron),
      badMall,
    ),
    queryRow("refresh mall_id empty", refresh("?mall_id=&force=true", cron), badMall),
    queryRow(
      "refresh mall_id with a trailing newline (%0A)",
      refresh("?mall_id=shopalpha%0A&force=true", cron),
      badMall,
    ),
    queryRow(
      "refresh mall_id starting with a digit",
      refresh("?mall_id=1shop&force=true", cron),
      badMall,
    ),
    queryRow("refresh force=maybe", refresh("?force=maybe", cron), badRequest),
    queryRow("refresh unknown trigger", refresh("?trigger=bogus&force=true", cron), badRequest),
    queryRow("authorize mall_id with uppercase", forAlice("?mall_id=ShopAlpha"), badMall),
    queryRow(
      "authorize mall_id with dots, a slash and `#`",
      forAlice(`?mall_id=${encodeURIComponent("evil.example/x#")}`),
      badMall,
    ),
    queryRow(
      "authorize mall_id with an encoded slash (%2F)",
      forAlice("?mall_id=evil%2Fx"),
      badMall,
    ),
    queryRow(
      "authorize mall_id with unicode",
      forAlice(`?mall_id=${encodeURIComponent("shopａlpha")}`),
      badMall,
    ),
    queryRow(
      "authorize mall_id of 17 characters",
      forAlice(`?mall_id=${"s".repeat(17)}`),
      badMall,
    ),
    queryRow("authorize mall_id empty", forAlice("?mall_id="), badMall),
    queryRow("authorize without mall_id", forAlice("?mode=json"), badMall),
    queryRow(
      "authorize scope separated by spaces",
      forAlice(
        `?mall_id=shopalpha&scope=${encodeURIComponent("mall.read_store mall.read_product")}`,
      ),
      badScope,
    ),
    queryRow(
      "authorize scope with a name Cafe24 does not have",
      forAlice("?mall_id=shopalpha&scope=openid"),
      badScope,
    ),
    queryRow("authorize scope empty", forAlice("?mall_id=shopalpha&scope="), badScope),
    queryRow(
      "authorize scope with a trailing comma",
      forAlice("?mall_id=shopalpha&scope=mall.read_store,"),
      badScope,
    ),
    queryRow("authorize unknown mode", forAlice("?mall_id=shopalpha&mode=html"), badRequest),
    completionRow(
      "query",
      "completion with the handle in the query string",
      badRequest,
      (handle) => completion(bearer(aliceJwt), "", `?handle=${handle}`),
    ),
    completionRow(
      "query",
      "completion with the handle in the query string and in the body",
      badRequest,
      (handle) => completion(bearer(aliceJwt), handleBody(handle), `?handle=${handle}`),
    ),
    completionRow(
      "query",
      "completion with an empty handle in the query string next to the body's",
      badRequest,
      (handle) => completion(bearer(aliceJwt), handleBody(handle), "?handle="),
    ),
    {
      category: "query",
      name: "callback POST carrying a valid state and code, with Alice's session",
      expect: handleInvalid,
      prepare: async () => {
        const url = await startConnect();
        return { url, init: { method: "POST", headers: bearer(aliceJwt) } };
      },
    },

    // Bodies ------------------------------------------------------------------------------------
    bodyRow(
      "refresh body that is not JSON",
      refresh("", cron, json("{mall_id: shopalpha")),
      badRequest,
    ),
    bodyRow(
      "refresh body that is a JSON array",
      refresh("", cron, json('["shopalpha"]')),
      badRequest,
    ),
    bodyRow("refresh body that is JSON null", refresh("", cron, json("null")), badRequest),
    bodyRow("refresh body that is a JSON string", refresh("", cron, json('"x"')), badRequest),
    bodyRow(
      "refresh body with a numeric mall_id",
      refresh("", cron, json('{"mall_id": 12345, "force": true}')),
      badMall,
    ),
    bodyRow(
      "refresh body with mall_id as an array",
      refresh("", cron, json('{"mall_id": ["shopalpha"], "force": true}')),
      badMall,
    ),
    bodyRow(
      "refresh body with mall_id null",
      refresh("", cron, json('{"mall_id": null, "force": true}')),
      badMall,
    ),
    bodyRow(
      'refresh body with force "yes"',
      refresh("", cron, json('{"force": "yes"}')),
      badRequest,
    ),
    bodyRow(
      "refresh body with force 1 (a number)",
      refresh("", cron, json('{"force": 1}')),
      badRequest,
    ),
    bodyRow(
      "refresh body of 300 KB",
      refresh("", cron, json(`{"force": true, "pad": "${"x".repeat(300 * 1024)}"}`)),
      tooLarge,
    ),
    bodyRow(
      "refresh body of 16 KiB + 1 byte (JSON padded with spaces)",
      refresh("", cron, json(`{"force": true}${" ".repeat(16 * 1024 + 1 - 15)}`)),
      tooLarge,
    ),
    {
      category: "body",
      name: "refresh body of 300 KB sent chunked, without a Content-Length",
      expect: tooLarge,
      prepare: () =>
        Promise.resolve({
          url: at(functions, "cafe24-refresh", "?force=true"),
          init: {
            method: "POST",
            headers: { ...cron, "content-type": "application/json" },
            body: chunked(300 * 1024),
          },
        }),
    },
    completionRow(
      "body",
      "completion body of 16 KiB + 1 byte (the handle padded with spaces)",
      tooLarge,
      (handle) => {
        const body = handleBody(handle);
        return completion(bearer(aliceJwt), body + " ".repeat(16 * 1024 + 1 - body.length));
      },
    ),
    completionRow(
      "body",
      "completion body of 300 KB sent chunked, without a Content-Length",
      tooLarge,
      (handle) => ({
        url: at(functions, "cafe24-callback"),
        init: {
          method: "POST",
          headers: { ...bearer(aliceJwt), "content-type": "application/json" },
          body: chunked(300 * 1024, handleBody(handle)),
        },
      }),
    ),
    bodyRow(
      "authorize body of 300 KB",
      authorize(
        "",
        bearer(aliceJwt),
        json(`{"mall_id": "shopalpha", "pad": "${"x".repeat(300 * 1024)}"}`),
      ),
      tooLarge,
    ),
    bodyRow(
      "authorize body that is not JSON",
      authorize("", bearer(aliceJwt), json("mall_id=shopalpha")),
      badRequest,
    ),
    bodyRow(
      "authorize body with scope as an array",
      authorize(
        "",
        bearer(aliceJwt),
        json('{"mall_id": "shopalpha", "scope": ["mall.read_store"]}'),
      ),
      badScope,
    ),
    bodyRow(
      "authorize body with mall_id as an object",
      authorize("", bearer(aliceJwt), json('{"mall_id": {"$ne": ""}}')),
      badMall,
    ),
    bodyRow(
      "authorize body with a numeric mode",
      authorize("", bearer(aliceJwt), json('{"mall_id": "shopalpha", "mode": 1}')),
      badRequest,
    ),
    completionRow(
      "body",
      "completion body that is not JSON",
      badRequest,
      (handle) => completion(bearer(aliceJwt), `{handle: ${handle}}`),
    ),
    completionRow(
      "body",
      "completion body that is form-encoded",
      badRequest,
      (handle) => completion(bearer(aliceJwt), `handle=${handle}`),
    ),
    completionRow(
      "body",
      "completion body that is a JSON array holding the handle",
      badRequest,
      (handle) => completion(bearer(aliceJwt), JSON.stringify([handle])),
    ),
    completionRow(
      "body",
      "completion body that is the handle as a JSON string",
      badRequest,
      (handle) => completion(bearer(aliceJwt), JSON.stringify(handle)),
    ),
    bodyRow("completion body that is JSON null", completion(bearer(aliceJwt), "null"), badRequest),
    bodyRow("completion with an empty body", completion(bearer(aliceJwt), ""), handleInvalid),
    bodyRow("completion body without a handle", completion(bearer(aliceJwt), "{}"), handleInvalid),
    completionRow(
      "body",
      "completion with the handle under another name",
      handleInvalid,
      (handle) => completion(bearer(aliceJwt), JSON.stringify({ handle_id: handle })),
    ),
    bodyRow(
      "completion with a numeric handle",
      completion(bearer(aliceJwt), '{"handle": 12345}'),
      handleInvalid,
    ),
    bodyRow(
      "completion with handle null",
      completion(bearer(aliceJwt), '{"handle": null}'),
      handleInvalid,
    ),
    bodyRow(
      "completion with the handle as an object",
      completion(bearer(aliceJwt), '{"handle": {"$ne": ""}}'),
      handleInvalid,
    ),
    completionRow(
      "body",
      "completion with the handle inside an array",
      handleInvalid,
      (handle) => completion(bearer(aliceJwt), handleBody([handle])),
    ),
    completionRow(
      "body",
      "completion with the handle one character short",
      handleInvalid,
      (handle) => completion(bearer(aliceJwt), handleBody(handle.slice(0, -1))),
    ),
    completionRow(
      "body",
      "completion with the handle and a trailing newline",
      handleInvalid,
      (handle) => completion(bearer(aliceJwt), handleBody(`${handle}\n`)),
    ),
    completionRow(
      "body",
      "completion with the handle as padded base64 (`=`)",
      handleInvalid,
      (handle) => completion(bearer(aliceJwt), handleBody(`${handle}=`)),
    ),
    completionRow(
      "body",
      "completion with the handle in upper case",
      handleInvalid,
      (handle) => completion(bearer(aliceJwt), handleBody(handle.toUpperCase())),
    ),
    completionRow(
      "body",
      "completion with the handle's SHA-256, what the database keeps",
      handleInvalid,
      async (handle) => {
        const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(handle));
        return completion(bearer(aliceJwt), handleBody(base64url(new Uint8Array(hash))));
      },
    ),
    bodyRow(
      "completion with a well-formed handle that was never issued",
      completion(
        bearer(aliceJwt),
        handleBody(base64url(crypto.getRandomValues(new Uint8Array(32)))),
      ),
      handleInvalid,
    ),

    // User tokens (JWTs) ------------------------------------------------------------------------
    // The victim's sub, `force=true`: a token that got through would refresh their due connection.
    jwtRow(
      "refresh with an expired token",
      async () => asUser(await auth.mint({ sub: victim, expiresInSeconds: -60 })),
    ),
    jwtRow(
      "refresh with a token signed by another key, same kid",
      async () => asUser(await auth.mintWithWrongKey({ sub: victim })),
    ),
    jwtRow(
      "refresh with a token signed by another key, unknown kid",
      async () => asUser(await auth.mintWithWrongKey({ sub: victim, kid: crypto.randomUUID() })),
    ),
    jwtRow(
      "refresh with an HS256 token",
      async () => asUser(await auth.mintHs256({ sub: victim })),
    ),
    jwtRow(
      "refresh with an HS256 token carrying the JWKS kid",
      async () => asUser(await auth.mintHs256({ sub: victim, kid: auth.kid })),
    ),
    jwtRow(
      "refresh with alg none",
      () => Promise.resolve(asUser(auth.mintUnsigned({ sub: victim }))),
    ),
    jwtRow(
      "refresh with alg RS256 in the header of an ES256 token",
      async () => {
        const [, payload, signature] = tokenOf(await auth.mint({ sub: victim }));
        return asUser(
          `${json64({ alg: "RS256", typ: "JWT", kid: auth.kid })}.${payload}.${signature}`,
        );
      },
    ),
    jwtRow(
      "refresh with a token without sub",
      async () => asUser(await auth.mint({ sub: victim, extraClaims: { sub: undefined } })),
    ),
    jwtRow(
      "refresh with a token whose sub is not a uuid",
      async () => asUser(await auth.mint({ sub: "victim" })),
    ),
    jwtRow(
      "refresh with a token of role anon",
      async () => asUser(await auth.mint({ sub: victim, role: "anon" })),
    ),
    jwtRow(
      "refresh with a token for another audience",
      async () => asUser(await auth.mint({ sub: victim, aud: "somebody-else" })),
    ),
    jwtRow(
      "refresh with a token without exp",
      async () => asUser(await auth.mint({ sub: victim, extraClaims: { exp: undefined } })),
    ),
    jwtRow(
      "refresh with a token without kid",
      async () => asUser(await auth.mint({ sub: victim, kid: null })),
    ),
    jwtRow(
      "refresh with a valid token's payload swapped for the victim's",
      async () => {
        const [header, payload, signature] = tokenOf(
          await auth.mint({ sub: crypto.randomUUID() }),
        );
        const swapped = json64({ ...unjson64(payload), sub: victim });
        return asUser(`${header}.${swapped}.${signature}`);
      },
    ),
    jwtRow("refresh with JWT-shaped garbage", () => Promise.resolve(asUser("aaa.bbb.ccc"))),
    jwtRow("refresh with a bearer that is not a JWT", () => Promise.resolve(asUser("not-a-jwt"))),
    jwtRow(
      "authorize with an expired token",
      async () =>
        authorize(
          "?mall_id=shopalpha&mode=json",
          bearer(await auth.mint({ sub: alice, expiresInSeconds: -60 })),
        ),
    ),
    jwtRow(
      "authorize with alg none",
      () =>
        Promise.resolve(
          authorize("?mall_id=shopalpha&mode=json", bearer(auth.mintUnsigned({ sub: alice }))),
        ),
    ),
    jwtRow(
      "authorize with an HS256 token",
      async () =>
        authorize("?mall_id=shopalpha&mode=json", bearer(await auth.mintHs256({ sub: alice }))),
    ),
    jwtRow(
      "authorize with a token of role anon",
      async () =>
        authorize(
          "?mall_id=shopalpha&mode=json",
          bearer(await auth.mint({ sub: alice, role: "anon" })),
        ),
    ),
    jwtRow(
      "authorize with a token without sub",
      async () =>
        authorize(
          "?mall_id=shopalpha&mode=json",
          bearer(await auth.mint({ sub: alice, extraClaims: { sub: undefined } })),
        ),
    ),
    // Alice's own live handle: a token for her that got through would complete her connection.
    ...([
      ["an expired token", () => auth.mint({ sub: alice, expiresInSeconds: -60 })],
      ["a token signed by another key", () => auth.mintWithWrongKey({ sub: alice })],
      ["an HS256 token", () => auth.mintHs256({ sub: alice })],
      ["alg none", () => Promise.resolve(auth.mintUnsigned({ sub: alice }))],
      ["a token of role anon", () => auth.mint({ sub: alice, role: "anon" })],
      ["a token for another audience", () => auth.mint({ sub: alice, aud: "somebody-else" })],
      [
        "a valid token's payload swapped for Alice's",
        async () => {
          const [header, payload, signature] = tokenOf(await auth.mint({ sub: bob }));
          return `${header}.${json64({ ...unjson64(payload), sub: alice })}.${signature}`;
        },
      ],
    ] as const).map(([name, token]) =>
      completionRow(
        "jwt",
        `completion with ${name}`,
        unauthorized,
        async (handle) => completion(bearer(await token()), handleBody(handle)),
      )
    ),

    // OAuth states ------------------------------------------------------------------------------
    stateRow("state with a tampered signature", "STATE_INVALID", (url) => {
      const [payload, signature] = url.searchParams.get("state")!.split(".") as [string, string];
      const flipped = (signature[0] === "A" ? "B" : "A") + signature.slice(1);
      return `${payload}.${flipped}`;
    }),
    stateRow("state with a tampered payload (user swapped)", "STATE_INVALID", (url) => {
      const [payload, signature] = url.searchParams.get("state")!.split(".") as [string, string];
      return `${json64({ ...unjson64(payload), u: bob })}.${signature}`;
    }),
    stateRow("state with a tampered payload (mall swapped)", "STATE_INVALID", (url) => {
      const [payload, signature] = url.searchParams.get("state")!.split(".") as [string, string];
      return `${json64({ ...unjson64(payload), m: "shopvictim" })}.${signature}`;
    }),
    stateRow(
      "state truncated to its payload",
      "STATE_INVALID",
      (url) => url.searchParams.get("state")!.split(".")[0]!,
    ),
    stateRow(
      "state with half its signature",
      "STATE_INVALID",
      (url) => url.searchParams.get("state")!.slice(0, -22),
    ),
    stateRow(
      "state expired (validly signed)",
      "STATE_EXPIRED",
      async (url) =>
        signState(STATE_SECRET, {
          ...await stateOf(url),
          expiresAt: Math.floor(Date.now() / 1000) - 1,
        }),
    ),
    stateRow(
      "state signed for another user with this nonce",
      "STATE_INVALID",
      async (url) => signState(STATE_SECRET, { ...await stateOf(url), userId: bob }),
    ),
    stateRow(
      "state signed for another mall with this nonce",
      "STATE_INVALID",
      async (url) => signState(STATE_SECRET, { ...await stateOf(url), mallId: "shopvictim" }),
    ),
    stateRow(
      "state validly signed but never issued",
      "STATE_REPLAYED",
      async (url) => signState(STATE_SECRET, { ...await stateOf(url), nonce: newNonce() }),
    ),
    stateRow(
      "state signed with another secret",
      "STATE_INVALID",
      async (url) => signState("another-state-secret-0123456789", await stateOf(url)),
    ),
    stateRow("state empty", "STATE_INVALID", () => ""),
    stateRow("state missing", "STATE_INVALID", () => null),
    stateRow(
      "state of 2,000 characters",
      "STATE_INVALID",
      () => `${"a".repeat(1_000)}.${"b".repeat(999)}`,
    ),
    stateRow("state with three parts (a JWT)", "STATE_INVALID", () => aliceJwt),
    {
      category: "state",
      name: "state replayed after its first callback spent it",
      expect: { reason: "STATE_REPLAYED" },
      prepare: async () => {
        const url = await startConnect();
        // The first callback spends the nonce (its code is one Cafe24 never issued).
        const first = await fetch(withParams(url, { code: "a-code-cafe24-never-issued" }), {
          redirect: "manual",
        });
        await first.body?.cancel();
        assert.equal(
          new URL(first.headers.get("location") ?? "https://x.test").searchParams.get("reason"),
          "TOKEN_EXCHANGE_REJECTED",
        );
        return callback(url);
      },
    },
    {
      category: "state",
      name: "state for one mall while the callback names another (mall_id)",
      expect: { reason: "STATE_MALL_MISMATCH" },
      prepare: async () => callback(withParams(await startConnect(), { mall_id: "shopvictim" })),
    },

    // Callback parameters -----------------------------------------------------------------------
    callbackRow("callback without code", "MISSING_CODE", () => ({ code: null })),
    callbackRow("callback with an empty code", "MISSING_CODE", () => ({ code: "" })),
    callbackRow("callback with a 600-character code", "MISSING_CODE", () => ({
      code: "c".repeat(600),
    })),
    callbackRow("callback with error=access_denied", "ACCESS_DENIED", () => ({
      code: null,
      error: "access_denied",
      error_description: "The shop operator denied the app access.",
    })),
    callbackRow("callback with error=access_denied next to a code", "ACCESS_DENIED", () => ({
      error: "access_denied",
    })),
    callbackRow("callback with error=access_denied and no state", "STATE_INVALID", () => ({
      code: null,
      state: null,
      error: "access_denied",
    })),
    callbackRow("callback with another error", "AUTHORIZATION_FAILED", () => ({
      code: null,
      error: "server_error",
    })),
    callbackRow("callback with an unreadable error", "AUTHORIZATION_FAILED", () => ({
      code: null,
      error: "<script>alert(1)</script>",
    })),
    callbackRow("callback without any parameter", "STATE_INVALID", () => ({
      code: null,
      state: null,
    })),
    callbackRow(
      "callback with a code Cafe24 never issued",
      "TOKEN_EXCHANGE_REJECTED",
      () => ({ code: "a-code-cafe24-never-issued" }),
      1,
    ),

    // providers shapes in auth_settings rows ----------------------------------------------------
    providersRow("providers is an array", "[1, 2]", "malformed"),
    providersRow("providers is a string", '"cafe24"', "malformed"),
    providersRow("providers is a number", "42", "malformed"),
    providersRow("providers is JSON null", "null", "malformed"),
    providersRow("providers is an empty object", "{}", "no_cafe24"),
    providersRow("cafe24 is null", '{"cafe24": null}', "no_cafe24"),
    providersRow("cafe24 is not an object", '{"cafe24": "shopbroken"}', "malformed"),
    providersRow("cafe24 is an array", '{"cafe24": [{"mall_id": "shopbroken"}]}', "malformed"),
    providersRow(
      "mall_id is a number",
      '{"cafe24": {"mall_id": 42, "refresh_token": "rt-number-mall-id-0001"}}',
      "malformed",
    ),
    providersRow(
      "refresh_token is an object",
      '{"cafe24": {"mall_id": "shopbroken", "refresh_token": {"value": "rt-in-an-object"}}}',
      "malformed",
    ),
    providersRow(
      "refresh_token is a number",
      '{"cafe24": {"mall_id": "shopbroken", "refresh_token": 1234567890}}',
      "malformed",
    ),
    providersRow(
      "mall_id and refresh_token are empty strings",
      '{"cafe24": {"mall_id": "", "refresh_token": ""}}',
      "missing_keys",
    ),
    providersRow(
      "refresh_token is missing",
      '{"cafe24": {"mall_id": "shopbroken", "access_token": "at-orphan-0001"}}',
      "missing_keys",
    ),
    providersRow(
      "mall_id is missing",
      '{"cafe24": {"refresh_token": "rt-without-mall-0001"}}',
      "missing_keys",
    ),
    providersRow(
      "refresh_token is JSON null",
      '{"cafe24": {"mall_id": "shopbroken", "refresh_token": null}}',
      "missing_keys",
    ),
    {
      category: "providers",
      name: "mall_id that would leave Cafe24's host (SSRF): no request is sent",
      expect: { failure: "INVALID_MALL_ID", then: "reconnect_required" },
      prepare: () =>
        brokenRow(
          '{"cafe24": {"mall_id": "evil.example/x#", "refresh_token": "rt-ssrf-00000001"}}',
          "failure",
        ),
    },
    {
      category: "providers",
      name: "mall_id with uppercase: no request is sent",
      expect: { failure: "INVALID_MALL_ID", then: "reconnect_required" },
      prepare: () =>
        brokenRow(
          '{"cafe24": {"mall_id": "ShopAlpha", "refresh_token": "rt-upper-0000001"}}',
          "failure",
        ),
    },

    // Cafe24 answers ----------------------------------------------------------------------------
    ...(["html", "text", "missing_refresh_token", "wrong_types", "empty"] as const).map((variant) =>
      faultRow(
        `malformed 200 (${variant})`,
        `shopbad${variant.replaceAll("_", "").slice(0, 9)}`,
        { kind: "malformed_200", variant },
        "CAFE24_MALFORMED_RESPONSE",
      )
    ),
    faultRow(
      "HTML 502 from a proxy",
      "shopproxy502",
      { kind: "server_error", status: 502 },
      "CAFE24_SERVER_ERROR",
    ),
    faultRow("HTML 500 page", "shophtml500", { kind: "html_error" }, "CAFE24_SERVER_ERROR"),
    faultRow(
      "JSON 503",
      "shopjson503",
      { kind: "server_error", status: 503 },
      "CAFE24_SERVER_ERROR",
    ),
    faultRow(
      "429 without Retry-After",
      "shoplimited",
      { kind: "rate_limited" },
      "CAFE24_RATE_LIMITED",
    ),
    faultRow("connection reset mid-answer", "shopreset", { kind: "reset" }, "CAFE24_NETWORK_ERROR"),
    {
      category: "cafe24",
      name: "400 invalid_grant (refresh token revoked at Cafe24)",
      expect: { failure: "CAFE24_INVALID_GRANT", then: "reconnect_required" },
      cafe24Requests: 1,
      prepare: async () => {
        const { id } = await connectMall(stack, "shoprevoked");
        sandbox.revokeRefreshToken("shoprevoked");
        seeded.add("shoprevoked");
        return { ...refresh("?mall_id=shoprevoked&force=true", cron), connectionId: id };
      },
    },
    {
      category: "cafe24",
      name: "400 invalid_grant after an earlier malformed 200 (answer possibly lost)",
      expect: { failure: "CAFE24_ANSWER_LOST", then: "reconnect_required" },
      cafe24Requests: 1,
      prepare: async () => {
        const { id } = await connectMall(stack, "shoplostanswer");
        seeded.add("shoplostanswer");
        sandbox.queueFaults("shoplostanswer", [{ kind: "malformed_200", variant: "empty" }]);
        const first = await fetch(at(functions, "cafe24-refresh", "?mall_id=shoplostanswer"), {
          method: "POST",
          headers: cron,
        });
        const summary: RunSummary = await first.json();
        assert.equal(summary.failed, 1, "the first run met the malformed 200");
        // As if Cafe24 had rotated the token behind that answer; the backoff is over.
        sandbox.revokeRefreshToken("shoplostanswer");
        await db.sql`
          update cafe24_private.connections set next_attempt_at = null
          where auth_settings_id = ${id}`;
        return { ...refresh("?mall_id=shoplostanswer&force=true", cron), connectionId: id };
      },
    },
    {
      category: "cafe24",
      name: "404 JSON for a mall Cafe24 does not know",
      expect: { failure: "CAFE24_UNEXPECTED_STATUS", then: "active" },
      cafe24Requests: 1,
      prepare: async () => {
        const id = await insertConnection(db, {
          mallId: "shopghost",
          refreshToken: `rt-${crypto.randomUUID()}`,
        });
        return { ...refresh("?mall_id=shopghost&force=true", cron), connectionId: id };
      },
    },
    stubRow(
      "401 invalid_client",
      "stubclient",
      () =>
        Response.json({
          error: "invalid_client",
          error_description: "Client authentication failed",
        }, {
          status: 401,
        }),
      "CAFE24_CLIENT_AUTH_FAILED",
    ),
    stubRow(
      "401 invalid_grant `Invalid client_secret` (Cafe24's wrong-secret answer)",
      "stubsecret",
      () =>
        Response.json({ error: "invalid_grant", error_description: "Invalid client_secret" }, {
          status: 401,
        }),
      "CAFE24_CLIENT_AUTH_FAILED",
    ),
    stubRow(
      "401 invalid_grant `Invalid refresh_token`",
      "stubexpired",
      () =>
        Response.json({ error: "invalid_grant", error_description: "Invalid refresh_token" }, {
          status: 401,
        }),
      "CAFE24_INVALID_GRANT",
      "reconnect_required",
    ),
    stubRow(
      "non-JSON 400",
      "stubtext",
      () => new Response("Bad Request", { status: 400, headers: { "content-type": "text/plain" } }),
      "CAFE24_UNEXPECTED_STATUS",
    ),
    stubRow(
      "400 invalid_request",
      "stubrequest",
      () => Response.json({ error: "invalid_request" }, { status: 400 }),
      "CAFE24_REJECTED",
    ),
    stubRow(
      "302 to a login page",
      "stubredirect",
      () => new Response(null, { status: 302, headers: { location: "https://login.test/" } }),
      "CAFE24_UNEXPECTED_STATUS",
    ),
    stubRow(
      "200 carrying an OAuth error instead of tokens",
      "stuberror",
      () => Response.json({ error: "invalid_grant", error_description: "Invalid refresh_token" }),
      "CAFE24_MALFORMED_RESPONSE",
    ),
    stubRow(
      "200 with an empty access_token",
      "stubempty",
      () => Response.json(tokenAnswer({ access_token: "" })),
      "CAFE24_MALFORMED_RESPONSE",
    ),
    stubRow(
      "200 with an impossible expires_at (Feb 30)",
      "stubbadtime",
      () => Response.json(tokenAnswer({ expires_at: "2026-02-30T10:00:00.000" })),
      "CAFE24_MALFORMED_RESPONSE",
    ),
    stubRow(
      "200 with a 1 MiB body",
      "stubhuge",
      () =>
        new Response(`{"access_token":"${"a".repeat(1 << 20)}"}`, {
          status: 200,
          headers: { "content-type": "application/json" },
        }),
      "CAFE24_MALFORMED_RESPONSE",
    ),
    exchangeFaultRow(
      "code exchange answered with a malformed 200 (wrong_types)",
      { kind: "malformed_200", variant: "wrong_types" },
      "TOKEN_RESPONSE_INVALID",
    ),
    exchangeFaultRow(
      "code exchange answered with an HTML 502",
      { kind: "server_error", status: 502 },
      "CAFE24_UNAVAILABLE",
    ),
    exchangeFaultRow(
      "code exchange answered with a connection reset",
      { kind: "reset" },
      "CAFE24_UNAVAILABLE",
    ),
  ];

  // ---------------------------------------------------------------------------------------------
  // Running it
  // ---------------------------------------------------------------------------------------------

  /**
   * Every stored token: the rows as they are, the pending connections, and what the sandbox holds
   * live for each mall.
   */
  const storedTokens = async () => ({
    rows: (await db.sql<{ id: string; providers: unknown }[]>`
      select id, providers from public.auth_settings order by id`)
      .map((row) => ({ id: row.id, providers: row.providers })),
    pending: (await db.sql<{ hash: string; user_id: string; tokens: unknown }[]>`
      select encode(handle_hash, 'hex') as hash, user_id, tokens
      from cafe24_private.pending_connections order by handle_hash`)
      .map((row) => ({ hash: row.hash, user_id: row.user_id, tokens: row.tokens })),
    live: Object.fromEntries(
      [...seeded].sort().map((mall) => [
        mall,
        sandbox.liveRefreshToken(mall) ?? null,
      ]),
    ),
  });
  const cafe24Requests = () =>
    Object.values(sandbox.counters().requests).reduce((sum, n) => sum + n, 0) + stub.requests();

  await t.step(`the table has at least 30 rows (${rows.length})`, () => {
    assert.ok(rows.length >= 30);
    const names = rows.map((row) => `${row.category}: ${row.name}`);
    assert.equal(new Set(names).size, names.length, "row names are unique");
  });

  const refreshSuccessesBefore = sandbox.counters().refreshSuccesses;
  for (const row of rows) {
    await t.step({
      name: `${row.category}: ${row.name}`,
      ignore: row.ignore ?? false,
      fn: async () => {
        try {
          const sent = await row.prepare();
          const before = await storedTokens();
          const requestsBefore = cafe24Requests();
          const faultsBefore = sandbox.counters().faultsInjected;

          const response = await fetch(sent.url, { redirect: "manual", ...sent.init });
          const body = await response.text();
          const location = response.headers.get("location");
          seen.push({ status: response.status, location, body });
          const answer = `${response.status} ${location ?? ""} ${body.slice(0, 300)}`;

          assert.deepEqual(await storedTokens(), before, `no stored token changed (${answer})`);
          assert.equal(
            cafe24Requests() - requestsBefore,
            row.cafe24Requests ?? 0,
            `requests Cafe24 received (${answer})`,
          );
          if (row.fault !== undefined) {
            const faults = sandbox.counters().faultsInjected;
            assert.equal(faults[row.fault] - faultsBefore[row.fault], 1, "the fault was served");
          }
          await checkAnswer(row.expect, response, body, sent);
        } finally {
          sandbox.clearFaults();
        }
      },
    });
  }

  await t.step("nothing was refreshed or connected, and no secret was echoed", async () => {
    const counters = sandbox.counters();
    assert.equal(counters.refreshSuccesses, refreshSuccessesBefore, "no refresh succeeded");
    assert.equal(counters.deadTokenReuses, 0);
    for (const [mall, c] of Object.entries(counters.byMall)) {
      // The completion rows' pending connections were parked by real callbacks, one each.
      const parked = mall === PENDING_MALL ? handles.length : 0;
      assert.equal(c.codeExchanges, parked, `codes exchanged for ${mall}`);
    }
    assert.ok(handles.length >= 20, "the completion rows carried live handles");
    const [pending] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from cafe24_private.pending_connections
      where user_id = ${alice} and mall_id = ${PENDING_MALL}`;
    assert.equal(pending!.n, handles.length, "every pending connection is still parked");
    assert.deepEqual(
      auth.requests.filter((r) => r !== "GET /auth/v1/.well-known/jwks.json"),
      [],
      "nothing but the JWKS was requested from Auth",
    );
    const [stored] = await db.sql<{ tokens: string[] }[]>`
      select coalesce(array_agg(v), '{}') as tokens from (
        select refresh_token as v from cafe24_private.connections
        union all select access_token from cafe24_private.connections
        union all select tokens ->> 'refresh_token' from cafe24_private.pending_connections
        union all select tokens ->> 'access_token' from cafe24_private.pending_connections) t
      where length(v) >= 16`;
    const secrets = [
      ...stored!.tokens,
      ...handles,
      CRON_SECRET,
      CLIENT_SECRET,
      STATE_SECRET,
      aliceJwt,
    ];
    const output = [...functions.output, ...stubbed.output].join("\n");
    for (const secret of secrets) {
      for (const answer of seen) {
        assert.ok(!(answer.location ?? "").includes(secret), "a secret in a redirect URL");
        assert.ok(!answer.body.includes(secret), "a secret in a response body");
      }
      assert.ok(!output.includes(secret), "a secret in the functions' output");
    }
  });

  async function checkAnswer(expect: Expected, response: Response, body: string, sent: Sent) {
    if ("error" in expect) {
      assert.equal(response.status, expect.status, body);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      assert.equal(JSON.parse(body).error, expect.error, body);
      return;
    }
    if ("reason" in expect) {
      assert.equal(response.status, 302, body);
      const location = new URL(response.headers.get("location") ?? "about:blank");
      assert.equal(
        `${location.origin}${location.pathname}`,
        "https://app.test/settings/integrations",
      );
      assert.deepEqual([...location.searchParams.keys()], ["tab", "cafe24", "reason"]);
      assert.equal(location.searchParams.get("cafe24"), "error");
      assert.equal(location.searchParams.get("reason"), expect.reason);
      return;
    }
    assert.equal(response.status, 200, body);
    const summary: RunSummary = JSON.parse(body);
    assert.equal(summary.scanned, 1, "the run saw exactly this row");
    assert.equal(summary.refreshed, 0, "nothing was refreshed");
    if ("skipped" in expect) {
      assert.equal(summary.failed, 0);
      assert.equal(summary.skipped, 1);
      assert.equal(summary.skipped_reasons[expect.skipped], 1, JSON.stringify(summary));
      return;
    }
    assert.equal(summary.failed, 1, JSON.stringify(summary));
    assert.equal(summary.failures[0]?.id, sent.connectionId);
    assert.ok(
      summary.failures[0]?.reason.startsWith(`${expect.failure}: `),
      summary.failures[0]?.reason,
    );
    const state = await connectionState(db, sent.connectionId!);
    assert.equal(state.status, expect.then);
    assert.equal(state.last_error_code, expect.failure);
    assert.equal(state.lease_id, null, "the lease was let go");
  }
}

/** A complete, well-formed token answer with `changes` applied. */
function tokenAnswer(changes: Record<string, unknown>): Record<string, unknown> {
  return {
    access_token: `at-${crypto.randomUUID()}`,
    expires_at: "2030-01-01T12:00:00.000",
    refresh_token: `rt-${crypto.randomUUID()}`,
    refresh_token_expires_at: "2030-01-14T10:00:00.000",
    client_id: "test-client-id",
    mall_id: "stub",
    user_id: "stub",
    scopes: ["mall.read_store"],
    issued_at: "2030-01-01T10:00:00.000",
    shop_no: "1",
    ...changes,
  };
}

interface Cafe24Stub {
  /** `http://127.0.0.1:PORT/{mall_id}`, for CAFE24_API_BASE_URL. */
  template: string;
  /** The answer of `/{mall_id}/api/v2/oauth/token`, per mall; anything else is 404. */
  answers: Map<string, () => Response>;
  requests(): number;
  close(): Promise<void>;
}

/** Cafe24's token endpoint answering what the sandbox cannot: one fixed answer per mall. */
function startCafe24Stub(): Cafe24Stub {
  const answers = new Map<string, () => Response>();
  let requests = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      requests++;
      await request.body?.cancel();
      const [, mallId = "", ...rest] = new URL(request.url).pathname.split("/");
      const answer = rest.join("/") === "api/v2/oauth/token" && request.method === "POST"
        ? answers.get(mallId)
        : undefined;
      return answer?.() ??
        Response.json({ error: { code: 404, message: "Not Found" } }, { status: 404 });
    },
  );
  return {
    template: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/{mall_id}`,
    answers,
    requests: () => requests,
    close: () => server.shutdown(),
  };
}
