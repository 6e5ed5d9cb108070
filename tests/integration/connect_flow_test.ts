/**
 * Connecting a mall end to end: cafe24-authorize and cafe24-callback over HTTP, the Cafe24
 * sandbox's authorize, token and revoke endpoints over HTTP, real PostgreSQL with the migrations,
 * and a local JWKS so that the functions' real user-token verification runs. Also the "refresh
 * now" path of cafe24-refresh with a user's own token.
 *
 * Connecting takes two requests to cafe24-callback: Cafe24's redirect (GET) exchanges the code and
 * parks the pair as a pending connection, sending the browser back to the app with a handle in
 * the URL fragment; the app then completes it (POST) with the user's session. The test is the
 * browser (tests/support/connect.ts): it follows each redirect itself and records every answer.
 * Who may complete a connection, takeovers and the browser roles' view are custody_test.ts's.
 */
import assert from "node:assert/strict";
import { startTestAuth, type TestAuth } from "../support/auth.ts";
import { type Browser, browser } from "../support/connect.ts";
import {
  cafe24Entry,
  CLIENT_SECRET,
  CONNECT_SETTINGS,
  connectionState,
  connectStackOptions,
  CRON_SECRET,
  insertConnection,
  openStored,
  type RefreshStack,
  startRefreshStack,
} from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";
import type { FunctionsServer } from "../../local/functions/server.ts";
import { signState, verifyState } from "../../supabase/functions/_shared/connect/state.ts";

const {
  publicFunctionsUrl: PUBLIC_FUNCTIONS_URL,
  redirectUri: REDIRECT_URI,
  stateSecret: STATE_SECRET,
  apiVersion: API_VERSION,
} = CONNECT_SETTINGS;
const ALLOWED_SCOPES = CONNECT_SETTINGS.scopes.split(",");

Deno.test("connecting a Cafe24 mall", async (t) => {
  const auth = await startTestAuth();
  let stack: RefreshStack | undefined;
  try {
    stack = await startRefreshStack(connectStackOptions(auth));
    await connectFlowSteps(t, stack, auth);
  } finally {
    await stack?.stop();
    await auth.close();
  }
});

async function connectFlowSteps(t: Deno.TestContext, stack: RefreshStack, auth: TestAuth) {
  const { db, sandbox } = stack;
  const web = browser(stack);
  /** Every browser of this suite: their hops are checked for tokens at the end. */
  const browsers: Browser[] = [web];
  /** Log output of the extra functions servers some steps start. */
  const outputs: string[][] = [stack.functions.output];
  /** A browser whose callback address resolves to `server` instead of the stack's functions. */
  const browserAt = (server: FunctionsServer) => {
    const other = browser(stack, () => server.url);
    browsers.push(other);
    return other;
  };

  const authorize = (
    jwt: string | null,
    query: Record<string, string>,
    functionsUrl = stack.functions.url,
  ) => {
    const url = new URL(`${functionsUrl}/cafe24-authorize`);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    return web.get(url, jwt === null ? {} : { headers: { authorization: `Bearer ${jwt}` } });
  };
  /** The callback's redirect back to the app with an error: its `reason`. */
  const failure = async (callbackUrl: URL) => {
    const { fragment, query } = await web.callback(callbackUrl);
    assert.equal(query.get("tab"), "cafe24", "the return URL's own query survives");
    assert.equal(query.get("cafe24"), "error");
    assert.equal([...fragment].length, 0, "no handle comes with an error");
    return query.get("reason");
  };
  /** Everything a connection attempt could write: settings rows, their state, parked pairs. */
  const writes = async () =>
    JSON.stringify([
      await db.sql`
        select s.id, s.user_id, s.providers, s.updated_at, c.status, c.consecutive_failures,
          c.updated_at as connection_updated_at
        from public.auth_settings s
        left join cafe24_private.connections c on c.auth_settings_id = s.id
        order by s.id`,
      await db.sql`
        select encode(handle_hash, 'hex') as handle_hash, user_id, mall_id, tokens
        from cafe24_private.pending_connections order by handle_hash`,
    ]);
  /** The pending connection parked under `handle` (only the handle's SHA-256 is stored). */
  const pendingOf = async (handle: string) =>
    await db.sql<
      {
        user_id: string;
        mall_id: string;
        requested_scopes: string[];
        tokens: Record<string, unknown>;
        ttl_seconds: number;
      }[]
    >`
      select user_id, mall_id, requested_scopes, tokens,
        extract(epoch from expires_at - created_at)::int as ttl_seconds
      from cafe24_private.pending_connections
      where handle_hash = sha256(convert_to(${handle}, 'UTF8'))`;
  const openStates = async (userId: string) => {
    const [row] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from cafe24_private.oauth_states where user_id = ${userId}`;
    return row!.n;
  };
  const codeExchanges = () => sandbox.counters().requests.token_code;
  const entryOf = async (userId: string) => {
    const rows = await db.sql<{ id: string }[]>`
      select id from public.auth_settings where user_id = ${userId}`;
    assert.equal(rows.length, 1, "exactly one settings row for the user");
    return { id: rows[0]!.id, entry: await cafe24Entry(db, rows[0]!.id) };
  };

  const alice = crypto.randomUUID();
  const bob = crypto.randomUUID();
  const aliceJwt = await auth.mint({ sub: alice });
  const bobJwt = await auth.mint({ sub: bob });
  for (
    const mall of [
      "shopalice",
      "shopbob",
      "shopother",
      "shopdeny",
      "shopslow",
      "shopflaky",
      "shopgarble",
      "shopnoshops",
      "shopstale",
      "shopkeep",
      "shopnew",
      "shopduoa",
      "shopduob",
      "shoppage",
      "shopcors",
    ]
  ) {
    sandbox.addMall(mall, {
      ...(mall === "shopdeny" ? { denyAuthorization: true } : {}),
      ...(mall === "shopnoshops" ? { shopsStatus: 403 } : {}),
    });
  }

  await t.step("authorize refuses every request without a valid user token: 401", async () => {
    const sub = crypto.randomUUID();
    const tokens: Record<string, string | null> = {
      missing: null,
      garbage: "not-a-jwt",
      cron_secret: CRON_SECRET,
      expired: await auth.mint({ sub, expiresInSeconds: -60 }),
      wrong_key: await auth.mintWithWrongKey({ sub }),
      wrong_key_unknown_kid: await auth.mintWithWrongKey({ sub, kid: crypto.randomUUID() }),
      hs256: await auth.mintHs256({ sub }),
      hs256_with_kid: await auth.mintHs256({ sub, kid: auth.kid }),
      alg_none: auth.mintUnsigned({ sub }),
      anon_role: await auth.mint({ sub, role: "anon" }),
      service_role: await auth.mint({ sub, role: "service_role" }),
      other_audience: await auth.mint({ sub, aud: "somebody-else" }),
      sub_not_uuid: await auth.mint({ sub: "not-a-uuid" }),
      no_kid: await auth.mint({ sub, kid: null }),
    };
    for (const [name, jwt] of Object.entries(tokens)) {
      const result = await authorize(jwt, { mall_id: "shopalice", mode: "json" });
      assert.equal(result.status, 401, name);
      assert.deepEqual(JSON.parse(result.body), { error: "UNAUTHORIZED" }, name);
      assert.equal(result.headers.get("access-control-allow-origin"), "*", name);
    }
    assert.equal(await openStates(sub), 0, "no state was recorded");
    // getClaims' fallback for HS256 or an unknown kid would ask Auth's /user endpoint.
    assert.deepEqual(
      auth.requests.filter((r) => r !== "GET /auth/v1/.well-known/jwks.json"),
      [],
      "nothing but the JWKS was requested from Auth",
    );
  });

  await t.step("authorize validates mall_id, scope and mode: 400", async () => {
    const cases: [Record<string, string>, string][] = [
      [{}, "INVALID_MALL_ID"],
      [{ mall_id: "evil.example/x#" }, "INVALID_MALL_ID"],
      [{ mall_id: "Shop" }, "INVALID_MALL_ID"],
      [{ mall_id: "shopalice", scope: "openid" }, "INVALID_SCOPE"],
      [{ mall_id: "shopalice", scope: "mall.read_store,,mall.read_product" }, "INVALID_SCOPE"],
      [{ mall_id: "shopalice", scope: "mall.read_store mall.read_product" }, "INVALID_SCOPE"],
      [{ mall_id: "shopalice", mode: "html" }, "INVALID_REQUEST"],
    ];
    for (const [query, code] of cases) {
      const result = await authorize(aliceJwt, query);
      assert.equal(result.status, 400, JSON.stringify(query));
      assert.equal(JSON.parse(result.body).error, code, JSON.stringify(query));
    }
    assert.equal(await openStates(alice), 0);
  });

  await t.step(
    "authorize (mode=json) answers Cafe24's authorize URL and records the state's nonce",
    async () => {
      const result = await authorize(aliceJwt, {
        mall_id: "shopalice",
        scope: "mall.read_store, mall.read_product",
        mode: "json",
      });
      assert.equal(result.status, 200, result.body);
      assert.equal(result.headers.get("cache-control"), "no-store");
      const url = new URL(JSON.parse(result.body).url);
      assert.equal(
        `${url.origin}${url.pathname}`,
        `${sandbox.url}/shopalice/api/v2/oauth/authorize`,
      );
      assert.deepEqual([...url.searchParams.keys()], [
        "response_type",
        "client_id",
        "state",
        "redirect_uri",
        "scope",
      ]);
      assert.equal(url.searchParams.get("response_type"), "code");
      assert.equal(url.searchParams.get("client_id"), stack.env.CAFE24_CLIENT_ID);
      assert.equal(url.searchParams.get("redirect_uri"), REDIRECT_URI);
      assert.equal(url.searchParams.get("scope"), "mall.read_store,mall.read_product");

      const check = await verifyState(STATE_SECRET, url.searchParams.get("state"));
      assert.ok(check.ok);
      assert.equal(check.state.userId, alice);
      assert.equal(check.state.mallId, "shopalice");
      assert.deepEqual(
        check.state.scopes,
        ALLOWED_SCOPES,
        "the state carries the scopes asked for",
      );
      const lifetime = check.state.expiresAt * 1000 - Date.now();
      assert.ok(lifetime > 9 * 60_000 && lifetime <= 10 * 60_000, `lifetime ${lifetime}`);
      const [row] = await db.sql<{ user_id: string; mall_id: string; expires_at: Date }[]>`
        select user_id, mall_id, expires_at from cafe24_private.oauth_states
        where nonce = ${check.state.nonce}`;
      assert.equal(row?.user_id, alice);
      assert.equal(row?.mall_id, "shopalice");
      assert.equal(row?.expires_at.getTime(), check.state.expiresAt * 1000);
    },
  );

  let firstCallbackUrl: URL | undefined;
  await t.step(
    "the whole flow: 302 to Cafe24, the callback parks the pair, the app completes it",
    async () => {
      const started = await authorize(aliceJwt, { mall_id: "shopalice" });
      assert.equal(started.status, 302);
      assert.equal(started.headers.get("referrer-policy"), "no-referrer");
      const atCafe24 = await web.get(started.location!);
      assert.equal(atCafe24.status, 302, atCafe24.body);
      assert.ok(atCafe24.location!.startsWith(`${REDIRECT_URI}?`));
      firstCallbackUrl = new URL(atCafe24.location!);

      const { hop, fragment, query } = await web.callback(firstCallbackUrl);
      assert.equal(hop.headers.get("cache-control"), "no-store");
      assert.deepEqual([...query], [["tab", "cafe24"]], "the return URL's own query, unchanged");
      assert.deepEqual([...fragment.keys()], ["cafe24", "handle", "mall_id"]);
      assert.equal(fragment.get("cafe24"), "pending");
      assert.equal(fragment.get("mall_id"), "shopalice");
      const handle = fragment.get("handle")!;
      assert.match(handle, /^[A-Za-z0-9_-]{43}$/);

      // Parked, not connected: the pair waits under the handle's hash and no account holds it.
      const rows = await db.sql`select 1 from public.auth_settings where user_id = ${alice}`;
      assert.equal(rows.length, 0, "nothing is attached to an account before completion");
      const [pending] = await pendingOf(handle);
      assert.equal(pending?.user_id, alice);
      assert.equal(pending?.mall_id, "shopalice");
      assert.deepEqual(pending?.requested_scopes, ALLOWED_SCOPES);
      // Sealed for this pending connection (completion reseals it for the row it joins).
      assert.match(String(pending?.tokens.refresh_token), /^v1\./);
      assert.ok(!JSON.stringify(pending?.tokens).includes(sandbox.liveRefreshToken("shopalice")!));
      assert.equal(pending?.ttl_seconds, 600);
      const parked = sandbox.counters().byMall.shopalice!;
      assert.equal(parked.codeExchanges, 1);
      assert.equal(parked.shopsRequests, 0, "the shops are looked up at completion");

      const done = await web.complete(aliceJwt, handle);
      assert.deepEqual(done, {
        status: 200,
        body: { connected: true, mall_id: "shopalice", shop_no: 1 },
      });
      assert.equal(web.hops.at(-1)!.headers.get("cache-control"), "no-store");
      assert.equal((await pendingOf(handle)).length, 0, "the pending connection is used up");

      const { id, entry } = await entryOf(alice);
      assert.equal(entry.mall_id, "shopalice");
      assert.equal(entry.refresh_token, sandbox.liveRefreshToken("shopalice"));
      assert.equal(typeof entry.access_token, "string");
      assert.match(String(entry.expires_at), /Z$/);
      assert.match(String(entry.refresh_token_expires_at), /Z$/);
      assert.deepEqual(entry.scopes, ALLOWED_SCOPES);
      assert.ok(Math.abs(Date.parse(String(entry.connected_at)) - Date.now()) < 60_000);
      assert.deepEqual(entry.shops, [{ shop_no: 1, name: "shopalice shop", default: true }]);
      assert.equal(entry.shop_no, 1);
      assert.equal(entry.last_warning, undefined);
      assert.equal((await connectionState(db, id)).status, "active");

      const counters = sandbox.counters().byMall.shopalice!;
      assert.equal(counters.codeExchanges, 1);
      assert.equal(counters.shopsRequests, 1);
      assert.equal(counters.lastApiVersion, API_VERSION);
      assert.equal(await openStates(alice), 1, "this flow's nonce is used up; step 3's is open");
    },
  );

  await t.step("a refresh with the stored tokens works", async () => {
    const response = await stack.refresh({ mall_id: "shopalice", force: "true" });
    const summary = await response.json();
    assert.equal(response.status, 200);
    assert.equal(summary.refreshed, 1);
    const counters = sandbox.counters();
    assert.equal(counters.byMall.shopalice!.refreshSuccesses, 1);
    assert.equal(counters.deadTokenReuses, 0);
    const { entry } = await entryOf(alice);
    assert.equal(entry.refresh_token, sandbox.liveRefreshToken("shopalice"));
    assert.equal(entry.shop_no, 1, "settings survive the refresh");
  });

  await t.step("a replayed callback is refused and exchanges nothing", async () => {
    const before = await writes();
    const exchanges = codeExchanges();
    assert.equal(await failure(firstCallbackUrl!), "STATE_REPLAYED");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
  });

  await t.step("a tampered state is refused before anything is sent or written", async () => {
    const callbackUrl = await web.authorizeAtCafe24(aliceJwt, "shopalice");
    const state = callbackUrl.searchParams.get("state")!;
    const [payload, signature] = state.split(".") as [string, string];
    const decoded = JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
    const forged = btoa(JSON.stringify({ ...decoded, u: bob })).replaceAll("+", "-")
      .replaceAll("/", "_").replace(/=+$/, "");
    const flipped = payload.slice(0, -2) + (payload.at(-2) === "A" ? "B" : "A") + payload.at(-1);
    const before = await writes();
    const exchanges = codeExchanges();
    for (const tampered of [`${forged}.${signature}`, `${flipped}.${signature}`, payload, ""]) {
      const url = new URL(callbackUrl);
      url.searchParams.set("state", tampered);
      assert.equal(await failure(url), "STATE_INVALID", tampered);
    }
    const withoutState = new URL(callbackUrl);
    withoutState.searchParams.delete("state");
    assert.equal(await failure(withoutState), "STATE_INVALID");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
    assert.equal(await openStates(bob), 0);
  });

  await t.step("an expired state is refused; nothing is exchanged or written", async () => {
    const callbackUrl = await web.authorizeAtCafe24(aliceJwt, "shopalice");
    const check = await verifyState(STATE_SECRET, callbackUrl.searchParams.get("state"));
    assert.ok(check.ok);
    // The same nonce, user and mall, signed with the real secret, but 10 minutes older.
    const expired = await signState(STATE_SECRET, {
      ...check.state,
      expiresAt: Math.floor(Date.now() / 1000) - 1,
    });
    callbackUrl.searchParams.set("state", expired);
    const before = await writes();
    const exchanges = codeExchanges();
    assert.equal(await failure(callbackUrl), "STATE_EXPIRED");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
  });

  await t.step("a state taken to another mall's Cafe24 gets no connection", async () => {
    // Alice's state for shopalice, presented at shopother's authorize page: shopother's code comes
    // back with it, and the callback redeems it at shopalice, where Cafe24 does not know it.
    const started = await authorize(aliceJwt, { mall_id: "shopalice", mode: "json" });
    const url = new URL(JSON.parse(started.body).url);
    url.pathname = url.pathname.replace("/shopalice/", "/shopother/");
    const atOther = await web.get(url);
    assert.equal(atOther.status, 302);
    const callbackUrl = new URL(atOther.location!);

    const before = await writes();
    const exchanges = codeExchanges();
    // When the callback names a mall, it must be the state's: refused before any exchange.
    const named = new URL(callbackUrl);
    named.searchParams.set("mall_id", "shopother");
    assert.equal(await failure(named), "STATE_MALL_MISMATCH");
    assert.equal(codeExchanges(), exchanges);

    assert.equal(await failure(callbackUrl), "TOKEN_EXCHANGE_REJECTED");
    assert.equal(codeExchanges(), exchanges + 1, "the code went to shopalice's token endpoint");
    assert.equal(sandbox.counters().byMall.shopother!.codeExchanges, 0);
    assert.equal(await writes(), before);
    // The state is spent: it cannot be tried again with a proper code.
    assert.equal(await failure(callbackUrl), "STATE_REPLAYED");
  });

  await t.step("a state signed for another user than its nonce's is refused", async () => {
    const callbackUrl = await web.authorizeAtCafe24(aliceJwt, "shopalice");
    const check = await verifyState(STATE_SECRET, callbackUrl.searchParams.get("state"));
    assert.ok(check.ok);
    // Even with the secret, Alice's nonce cannot be spent as Bob's.
    const asBob = await signState(STATE_SECRET, { ...check.state, userId: bob });
    const url = new URL(callbackUrl);
    url.searchParams.set("state", asBob);
    const before = await writes();
    const exchanges = codeExchanges();
    assert.equal(await failure(url), "STATE_INVALID");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
    const bobRows = await db.sql`select 1 from public.auth_settings where user_id = ${bob}`;
    assert.equal(bobRows.length, 0);
  });

  await t.step("Bob's own flow connects Bob's mall to Bob only", async () => {
    assert.equal((await web.connect(bobJwt, "shopbob")).status, 200);
    const { entry } = await entryOf(bob);
    assert.equal(entry.mall_id, "shopbob");
    assert.equal((await entryOf(alice)).entry.mall_id, "shopalice");
  });

  await t.step("a callback without a code is refused; the state stays unused", async () => {
    const callbackUrl = await web.authorizeAtCafe24(aliceJwt, "shopalice");
    const open = await openStates(alice);
    callbackUrl.searchParams.delete("code");
    const before = await writes();
    const exchanges = codeExchanges();
    assert.equal(await failure(callbackUrl), "MISSING_CODE");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
    assert.equal(await openStates(alice), open);
  });

  await t.step("the owner denying access (error=access_denied) ends as ACCESS_DENIED", async () => {
    const callbackUrl = await web.authorizeAtCafe24(aliceJwt, "shopdeny");
    assert.equal(callbackUrl.searchParams.get("error"), "access_denied");
    const before = await writes();
    const exchanges = codeExchanges();
    assert.equal(await failure(callbackUrl), "ACCESS_DENIED");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
  });

  await t.step("a code older than one minute is rejected by Cafe24; nothing written", async () => {
    const callbackUrl = await web.authorizeAtCafe24(aliceJwt, "shopslow");
    sandbox.clock.advance(61_000);
    const before = await writes();
    const invalidGrants = sandbox.counters().invalidGrants;
    assert.equal(await failure(callbackUrl), "TOKEN_EXCHANGE_REJECTED");
    assert.equal(sandbox.counters().invalidGrants, invalidGrants + 1);
    assert.equal(sandbox.counters().byMall.shopslow!.codeExchanges, 0);
    assert.equal(await writes(), before);
  });

  await t.step("a redirect_uri Cafe24 does not know stops the flow at Cafe24", async () => {
    const misconfigured = await stack.startFunctions({
      CAFE24_REDIRECT_URI: `${PUBLIC_FUNCTIONS_URL}/cafe24-callback-old`,
    });
    const before = await writes();
    const started = await authorize(
      aliceJwt,
      { mall_id: "shopalice", mode: "json" },
      misconfigured.url,
    );
    assert.equal(started.status, 200);
    const atCafe24 = await web.get(JSON.parse(started.body).url);
    assert.equal(atCafe24.status, 400);
    assert.equal(atCafe24.location, null);
    assert.deepEqual(JSON.parse(atCafe24.body), {
      error: "invalid_request",
      error_description: "The redirect_uri added by Cafe24 Developers is invalid.",
    });
    assert.equal(await writes(), before);
    await misconfigured.stop();
    outputs.push(misconfigured.output);
  });

  await t.step("a 5xx from the token endpoint ends as CAFE24_UNAVAILABLE", async () => {
    const callbackUrl = await web.authorizeAtCafe24(aliceJwt, "shopflaky");
    sandbox.queueFaults("shopflaky", [{ kind: "server_error", status: 503 }]);
    const before = await writes();
    const injected = sandbox.counters().faultsInjected.server_error;
    assert.equal(await failure(callbackUrl), "CAFE24_UNAVAILABLE");
    assert.equal(sandbox.counters().faultsInjected.server_error, injected + 1);
    assert.equal(await writes(), before);
  });

  await t.step(
    "a malformed 200 from the token endpoint ends as TOKEN_RESPONSE_INVALID",
    async () => {
      for (const variant of ["missing_refresh_token", "html", "wrong_types"] as const) {
        const callbackUrl = await web.authorizeAtCafe24(aliceJwt, "shopgarble");
        sandbox.queueFaults("shopgarble", [{ kind: "malformed_200", variant }]);
        const before = await writes();
        assert.equal(await failure(callbackUrl), "TOKEN_RESPONSE_INVALID", variant);
        assert.equal(await writes(), before, variant);
      }
    },
  );

  await t.step(
    "a pending connection completed after its 10 minutes is refused and its pair revoked",
    async () => {
      const handle = await web.startConnection(aliceJwt, "shopstale");
      assert.ok(sandbox.liveRefreshToken("shopstale") !== undefined);
      // As if the app had come back 10 minutes later: the expiry is checked by the database clock.
      await db.sql`
        update cafe24_private.pending_connections set expires_at = now() - interval '1 second'
        where handle_hash = sha256(convert_to(${handle}, 'UTF8'))`;
      const aliceBefore = await entryOf(alice);
      const revokes = sandbox.counters().requests.revoke;
      const late = await web.complete(aliceJwt, handle);
      assert.deepEqual(late, { status: 400, body: { error: "HANDLE_INVALID" } });
      assert.equal(sandbox.counters().requests.revoke, revokes + 1);
      assert.equal(sandbox.liveRefreshToken("shopstale"), undefined, "no live pair is left");
      assert.equal((await pendingOf(handle)).length, 0, "the pending connection is gone");
      assert.deepEqual(await entryOf(alice), aliceBefore, "Alice's connection is untouched");
    },
  );

  await t.step(
    "a 403 from the shop lookup keeps the connection and records a warning",
    async () => {
      const charlie = crypto.randomUUID();
      const charlieJwt = await auth.mint({ sub: charlie });
      const handle = await web.startConnection(charlieJwt, "shopnoshops");
      assert.equal(sandbox.counters().byMall.shopnoshops!.shopsRequests, 0);
      const done = await web.complete(charlieJwt, handle);
      assert.deepEqual(done, {
        status: 200,
        body: {
          connected: true,
          mall_id: "shopnoshops",
          shop_no: null,
          warning: "SHOPS_LOOKUP_FAILED",
        },
      });
      const { id, entry } = await entryOf(charlie);
      assert.equal(entry.refresh_token, sandbox.liveRefreshToken("shopnoshops"));
      assert.equal(entry.shop_no, undefined);
      assert.equal(entry.shops, undefined);
      const warning = entry.last_warning as Record<string, unknown>;
      assert.equal(warning.code, "SHOPS_LOOKUP_FAILED");
      assert.match(String(warning.message), /HTTP 403/);
      assert.equal(sandbox.counters().byMall.shopnoshops!.shopsRequests, 1);
      assert.equal((await connectionState(db, id)).status, "active");
    },
  );

  await t.step(
    "reconnecting keeps the app's settings and other providers and clears reconnect_required",
    async () => {
      const dana = crypto.randomUUID();
      const id = await insertConnection(db, {
        userId: dana,
        mallId: "shopkeep",
        refreshToken: "a-refresh-token-cafe24-no-longer-knows",
        extra: { scope: "mall.read_store", shop_no: 3, board_no: 7 },
        otherProviders: { google: { refresh_token: "google-keep-me" } },
      });
      const failed = await (await stack.refresh({ mall_id: "shopkeep" })).json();
      assert.equal(failed.failed, 1);
      assert.equal((await connectionState(db, id)).status, "reconnect_required");

      const done = await web.connect(await auth.mint({ sub: dana }), "shopkeep");
      assert.deepEqual(done, {
        status: 200,
        body: { connected: true, mall_id: "shopkeep", shop_no: 3 },
      });

      const { id: sameId, entry } = await entryOf(dana);
      assert.equal(sameId, id, "the existing row was updated, not a second one added");
      assert.equal(entry.refresh_token, sandbox.liveRefreshToken("shopkeep"));
      assert.equal(entry.scope, "mall.read_store");
      assert.equal(entry.shop_no, 3, "a chosen shop is kept");
      assert.equal(entry.board_no, 7);
      assert.deepEqual(entry.shops, [{ shop_no: 1, name: "shopkeep shop", default: true }]);
      const [row] = await db.sql`select providers -> 'google' as google from auth_settings
        where id = ${id}`;
      assert.deepEqual(row!.google, { refresh_token: "google-keep-me" });
      const state = await connectionState(db, id);
      assert.equal(state.status, "active");
      assert.equal(state.consecutive_failures, 0);

      const again = await (await stack.refresh({ mall_id: "shopkeep", force: "true" })).json();
      assert.equal(again.refreshed, 1);
    },
  );

  await t.step(
    "CAFE24_PLAINTEXT_TOKEN_COPY: a new connection's access token is copied into providers",
    async () => {
      const server = await stack.startFunctions({ CAFE24_PLAINTEXT_TOKEN_COPY: "true" });
      outputs.push(server.output);
      sandbox.addMall("shopcopied");
      const user = crypto.randomUUID();
      const done = await browserAt(server).connect(await auth.mint({ sub: user }), "shopcopied");
      assert.equal(done.status, 200, JSON.stringify(done.body));
      const [row] = await db.sql<
        { id: string; cafe24: Record<string, unknown>; access_token: string }[]
      >`
        select s.id, s.providers -> 'cafe24' as cafe24, c.access_token
        from auth_settings s join cafe24_private.connections c on c.auth_settings_id = s.id
        where s.user_id = ${user}`;
      assert.equal(
        row!.cafe24.access_token,
        await openStored(db, row!.id, "access_token", row!.access_token),
      );
      assert.match(row!.access_token, /^v1\./, "the private row keeps it sealed");
      assert.match(String(row!.cafe24.expires_at), /Z$/);
      assert.equal(row!.cafe24.refresh_token, undefined, "never the refresh token");
    },
  );

  await t.step("connecting another mall drops the old mall's shop and board choices", async () => {
    const dana = (await db.sql<{ user_id: string }[]>`
      select user_id from auth_settings where providers -> 'cafe24' ->> 'mall_id' = 'shopkeep'
      order by created_at limit 1`)[0]!.user_id;
    const done = await web.connect(await auth.mint({ sub: dana }), "shopnew");
    assert.deepEqual(done, {
      status: 200,
      body: { connected: true, mall_id: "shopnew", shop_no: 1 },
    });
    const { entry } = await entryOf(dana);
    assert.equal(entry.mall_id, "shopnew");
    assert.equal(entry.refresh_token, sandbox.liveRefreshToken("shopnew"));
    assert.equal(entry.shop_no, 1, "shop 3 of shopkeep means nothing in shopnew");
    assert.equal(entry.board_no, undefined);
    assert.deepEqual(entry.shops, [{ shop_no: 1, name: "shopnew shop", default: true }]);
    assert.equal(entry.scope, "mall.read_store", "app-wide settings stay");
  });

  await t.step(
    "two connections of one new user, called back and completed at once, leave one settings row",
    async () => {
      const erin = crypto.randomUUID();
      const erinJwt = await auth.mint({ sub: erin });
      const first = await web.authorizeAtCafe24(erinJwt, "shopduoa");
      const second = await web.authorizeAtCafe24(erinJwt, "shopduob");
      const handles = (await Promise.all([web.callback(first), web.callback(second)])).map(
        ({ fragment }) => {
          assert.equal(fragment.get("cafe24"), "pending");
          return fragment.get("handle")!;
        },
      );
      const answers = await Promise.all(handles.map((handle) => web.complete(erinJwt, handle)));
      for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const { entry } = await entryOf(erin);
      const mall = String(entry.mall_id);
      assert.ok(mall === "shopduoa" || mall === "shopduob", mall);
      assert.equal(
        entry.refresh_token,
        sandbox.liveRefreshToken(mall),
        "the last write wins whole",
      );

      // The same race made certain, straight at the SQL function the completion calls: the first
      // writer's row is not committed yet when the second one looks for the user's row. The
      // second must wait on the first's per-user lock instead of adding a row of its own.
      const gina = crypto.randomUUID();
      const tokens = (n: number) =>
        db.sql.json({
          access_token: `at-${n}`,
          refresh_token: `rt-${n}`,
          expires_at: new Date(Date.now() + 7_200_000).toISOString(),
        });
      const written = Promise.withResolvers<number>();
      const commit = Promise.withResolvers<void>();
      const holder = db.sql.begin(async (tx) => {
        const [row] = await tx<{ pid: number }[]>`
          select pg_backend_pid() as pid,
            cafe24_private.store_connection(${gina}::uuid, 'shopduoa', ${tokens(1)})`;
        written.resolve(row!.pid);
        await commit.promise;
      });
      const holderPid = await Promise.race([
        written.promise,
        holder.then(() => assert.fail("the first writer committed before it was told to")),
      ]);
      const waiter = db.sql`
        select cafe24_private.store_connection(${gina}::uuid, 'shopduoa', ${tokens(2)})`.execute();
      const blocked = async () =>
        (await db.sql<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where ${holderPid}::int = any(pg_blocking_pids(pid))`)[0]!.n > 0;
      await waitFor("the second writer to wait for the first one's lock", blocked);
      commit.resolve();
      await Promise.all([holder, waiter]);
      assert.equal((await entryOf(gina)).entry.refresh_token, "rt-2");
    },
  );

  await t.step(
    "without CAFE24_APP_RETURN_URL the callback ends on a CONFIG_MISSING page and spends nothing",
    async () => {
      const pageServer = await stack.startFunctions({ CAFE24_APP_RETURN_URL: "" });
      const atPage = browserAt(pageServer);
      const frank = crypto.randomUUID();
      const frankJwt = await auth.mint({ sub: frank });
      const callbackUrl = await atPage.authorizeAtCafe24(frankJwt, "shoppage");
      const before = await writes();
      const exchanges = codeExchanges();
      const page = await atPage.get(callbackUrl);
      assert.equal(page.status, 500);
      assert.equal(page.location, null);
      assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
      assert.equal(page.headers.get("cache-control"), "no-store");
      assert.match(page.body, /Reason: CONFIG_MISSING/);
      assert.doesNotMatch(page.body, /<script/i);
      assert.equal(codeExchanges(), exchanges, "the code was not exchanged");
      assert.equal(await writes(), before, "nothing was parked or stored");
      // The completion needs the setting too: it is one requirement of the whole function.
      const completion = await atPage.complete(frankJwt, "x".repeat(43));
      assert.equal(completion.status, 500);
      assert.equal(completion.body.error, "CONFIG_MISSING");
      assert.deepEqual(completion.body.missing, ["CAFE24_APP_RETURN_URL"]);
      await pageServer.stop();
      outputs.push(pageServer.output);
      const logged = pageServer.output.filter((line) => line.includes('"config_missing"'));
      assert.ok(
        logged.length > 0 && logged.every((line) => line.includes("CAFE24_APP_RETURN_URL")),
      );

      // The state was not spent: the same callback, at a configured server, connects Frank.
      assert.equal(await openStates(frank), 1);
      const { fragment } = await web.callback(callbackUrl);
      assert.equal(fragment.get("cafe24"), "pending");
      assert.equal((await web.complete(frankJwt, fragment.get("handle"))).status, 200);
      assert.equal((await entryOf(frank)).entry.mall_id, "shoppage");
    },
  );

  await t.step("refresh now: a user's token refreshes that user's connections only", async () => {
    const tokensOf = async (userId: string) =>
      (await db.sql<{ token: string }[]>`
        select refresh_token as token from cafe24_private.connections
        where user_id = ${userId}`).map((r) => r.token);
    const bobBefore = await tokensOf(bob);
    const bobRequests = sandbox.counters().byMall.shopbob!.refreshRequests;
    const aliceBefore = await tokensOf(alice);
    // A user's force refreshes only tokens at least 5 minutes old: make Alice's an hour old, by
    // Cafe24's expiry and by the admin refresh of it earlier in this suite.
    await db.sql`
      update auth_settings
      set providers = jsonb_set(providers, '{cafe24,expires_at}',
        to_jsonb(${new Date(Date.now() + 3_600_000).toISOString()}::text))
      where user_id = ${alice}`;
    await db.sql`
      update cafe24_private.connections set last_refreshed_at = now() - interval '1 hour'
      where user_id = ${alice}`;

    const response = await stack.refresh({ force: "true" }, {
      headers: { authorization: `Bearer ${aliceJwt}` },
    });
    assert.equal(response.status, 200);
    const summary = await response.json();
    assert.equal(summary.scanned, 1);
    assert.equal(summary.refreshed, 1);
    assert.notDeepEqual(await tokensOf(alice), aliceBefore);
    assert.deepEqual(await tokensOf(bob), bobBefore);
    assert.equal(sandbox.counters().byMall.shopbob!.refreshRequests, bobRequests);

    const [run] = await db.sql<{ trigger: string; user_id: string }[]>`
      select trigger, user_id from cafe24_private.refresh_runs order by started_at desc limit 1`;
    assert.equal(run!.trigger, "user");
    assert.equal(run!.user_id, alice);

    // Naming Bob's mall does not widen Alice's scope; a `trigger` of her own is ignored. (Her
    // refresh a moment ago would make this one 429 RATE_LIMITED: forget it.)
    await db.sql`delete from cafe24_private.user_refresh_starts where user_id = ${alice}`;
    const other =
      await (await stack.refresh({ mall_id: "shopbob", force: "true", trigger: "cron" }, {
        headers: { authorization: `Bearer ${aliceJwt}` },
      })).json();
    assert.equal(other.scanned, 0);
    assert.deepEqual(await tokensOf(bob), bobBefore);
    assert.equal(sandbox.counters().byMall.shopbob!.refreshRequests, bobRequests);
  });

  await t.step(
    "refresh refuses expired, foreign-key, HS256 and missing user tokens: 401",
    async () => {
      const runs = async () =>
        (await db.sql<{ n: number }[]>`select count(*)::int as n from cafe24_private.refresh_runs`)[
          0
        ]!
          .n;
      const before = await runs();
      const cases: Record<string, Record<string, string>> = {
        expired: {
          authorization: `Bearer ${await auth.mint({ sub: alice, expiresInSeconds: -1 })}`,
        },
        wrong_key: { authorization: `Bearer ${await auth.mintWithWrongKey({ sub: alice })}` },
        hs256: { authorization: `Bearer ${await auth.mintHs256({ sub: alice })}` },
        anon_role: { authorization: `Bearer ${await auth.mint({ sub: alice, role: "anon" })}` },
        wrong_secret_header_with_user_token: {
          "x-cron-secret": "wrong",
          authorization: `Bearer ${aliceJwt}`,
        },
        missing: { authorization: "" },
      };
      for (const [name, headers] of Object.entries(cases)) {
        const response = await stack.refresh({ force: "true" }, { headers });
        assert.equal(response.status, 401, name);
        assert.deepEqual(await response.json(), { error: "UNAUTHORIZED" }, name);
      }
      assert.equal(await runs(), before, "no run was started");

      const cron = await stack.refresh({ mall_id: "shopbob" });
      assert.equal(cron.status, 200, "the cron secret path is unchanged");
      await cron.body?.cancel();
    },
  );

  await t.step(
    "refresh without CRON_SECRET still serves user callers; the scheduler gets 500",
    async () => {
      const noSecret = await stack.startFunctions({ CRON_SECRET: "" });
      const response = await fetch(`${noSecret.url}/cafe24-refresh`, {
        method: "POST",
        headers: { authorization: `Bearer ${aliceJwt}` },
      });
      assert.notEqual(response.status, 500, "an unset CRON_SECRET stops the scheduler, not users");
      assert.notEqual(response.status, 401);
      await response.body?.cancel();
      const scheduler = await fetch(`${noSecret.url}/cafe24-refresh`, {
        method: "POST",
        headers: { "x-cron-secret": "anything" },
      });
      assert.equal(scheduler.status, 500);
      assert.deepEqual(await scheduler.json(), { error: "CRON_SECRET_NOT_CONFIGURED" });
      await noSecret.stop();
      outputs.push(noSecret.output);
    },
  );

  await t.step("all three functions answer CORS preflights and label their answers", async () => {
    const origin = "https://app.test";
    for (const name of ["cafe24-authorize", "cafe24-callback", "cafe24-refresh"]) {
      const preflight = await fetch(`${stack.functions.url}/${name}`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, x-client-info, apikey, content-type",
        },
      });
      await preflight.body?.cancel();
      assert.equal(preflight.status, 204, name);
      assert.equal(preflight.headers.get("access-control-allow-origin"), "*", name);
      const allowed = (preflight.headers.get("access-control-allow-headers") ?? "").split(",")
        .map((h) => h.trim());
      for (const header of ["authorization", "x-client-info", "apikey", "content-type"]) {
        assert.ok(allowed.includes(header), `${name}: ${header}`);
      }
      const answer = await fetch(`${stack.functions.url}/${name}`, {
        headers: { origin },
        redirect: "manual",
      });
      await answer.body?.cancel();
      assert.equal(answer.headers.get("access-control-allow-origin"), "*", name);
    }
    const restricted = await stack.startFunctions({ CORS_ALLOWED_ORIGINS: "https://app.test" });
    const allowed = await fetch(`${restricted.url}/cafe24-authorize`, {
      method: "OPTIONS",
      headers: { origin: "https://app.test" },
    });
    await allowed.body?.cancel();
    assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.test");
    const other = await fetch(`${restricted.url}/cafe24-authorize`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.test" },
    });
    await other.body?.cancel();
    assert.equal(other.headers.get("access-control-allow-origin"), null);
    await restricted.stop();
    outputs.push(restricted.output);
  });

  await t.step(
    "no token, code or secret appears in a redirect, page, response or log line",
    async () => {
      const [row] = await db.sql<{ tokens: string[] }[]>`
        select coalesce(array_agg(v), '{}') as tokens from (
          select refresh_token as v from cafe24_private.connections
          union all select access_token from cafe24_private.connections) t
        where v is not null`;
      const hops = browsers.flatMap((b) => b.hops);
      // Cafe24's own redirect to the callback carries the code, and the callback's redirect to
      // the app carries the handle in its fragment: that is the protocol. Nothing else may.
      const toCallback = (location: string | null) =>
        location?.startsWith(`${REDIRECT_URI}?`) ?? false;
      const codes = hops.filter((hop) => toCallback(hop.location))
        .map((hop) => new URL(hop.location!).searchParams.get("code"))
        .filter((code) => code !== null);
      const handles = hops.filter((hop) => hop.location?.includes("#") ?? false)
        .map((hop) => new URLSearchParams(new URL(hop.location!).hash.slice(1)).get("handle"))
        .filter((handle) => handle !== null);
      const secrets = [
        ...row!.tokens,
        ...codes,
        aliceJwt,
        bobJwt,
        CLIENT_SECRET,
        CRON_SECRET,
        STATE_SECRET,
      ];
      assert.ok(row!.tokens.length >= 10, "the check covers the tokens of every connection");
      assert.ok(codes.length >= 10, "the check covers the codes handed out");
      assert.ok(handles.length >= 8, "the check covers the handles handed out");

      for (const hop of hops) {
        for (const secret of secrets) {
          if (!toCallback(hop.location)) {
            assert.ok(!(hop.location ?? "").includes(secret), "a secret in a redirect URL");
          }
          assert.ok(!hop.body.includes(secret), "a secret in a response body");
        }
        for (const handle of handles) {
          assert.ok(!hop.body.includes(handle), "a handle in a response body");
        }
      }
      const output = outputs.flat().join("\n");
      for (const event of ["cafe24_connect_pending", "cafe24_connected"]) {
        assert.ok(output.includes(event), `the log is what was checked (${event})`);
      }
      for (const secret of [...secrets, ...handles]) {
        assert.ok(!output.includes(secret), "a secret or a handle in the functions' output");
      }
    },
  );
}
