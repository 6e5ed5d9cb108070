/**
 * Connecting a mall end to end: cafe24-authorize and cafe24-callback over HTTP, the Cafe24
 * sandbox's authorize and token endpoints over HTTP, real PostgreSQL with the migrations, and a
 * local JWKS so that the functions' real user-token verification runs. Also the "refresh now"
 * path of cafe24-refresh with a user's own token.
 *
 * The test is the browser: it follows each redirect itself (`redirect: "manual"`). The callback
 * is registered at Cafe24 under a public HTTPS address, as Cafe24 requires; the browser here
 * resolves that address to the local functions server, as Supabase's gateway would.
 */
import assert from "node:assert/strict";
import { startTestAuth, type TestAuth } from "../support/auth.ts";
import {
  cafe24Entry,
  CLIENT_SECRET,
  CONNECT_SETTINGS,
  connectionState,
  connectStackOptions,
  CRON_SECRET,
  insertConnection,
  type RefreshStack,
  startRefreshStack,
} from "../support/stack.ts";
import { signState, verifyState } from "../../supabase/functions/_shared/connect/state.ts";

const {
  publicFunctionsUrl: PUBLIC_FUNCTIONS_URL,
  redirectUri: REDIRECT_URI,
  stateSecret: STATE_SECRET,
  apiVersion: API_VERSION,
} = CONNECT_SETTINGS;

interface Seen {
  status: number;
  location: string | null;
  body: string;
  headers: Headers;
}

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
  /** Every status, Location and body the browser saw: checked for tokens at the end. */
  const seen: Seen[] = [];
  /** Authorization codes the sandbox handed out. */
  const codes: string[] = [];
  /** Log output of the extra functions servers some steps start. */
  const outputs: string[][] = [stack.functions.output];

  const browse = async (url: string | URL, init: RequestInit = {}, functionsUrl?: string) => {
    const target = String(url).startsWith(PUBLIC_FUNCTIONS_URL)
      ? (functionsUrl ?? stack.functions.url) + String(url).slice(PUBLIC_FUNCTIONS_URL.length)
      : String(url);
    const response = await fetch(target, { redirect: "manual", ...init });
    const result: Seen = {
      status: response.status,
      location: response.headers.get("location"),
      body: await response.text(),
      headers: response.headers,
    };
    seen.push(result);
    return result;
  };
  const authorize = (
    jwt: string | null,
    query: Record<string, string>,
    functionsUrl = stack.functions.url,
  ) => {
    const url = new URL(`${functionsUrl}/cafe24-authorize`);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    return browse(url, jwt === null ? {} : { headers: { authorization: `Bearer ${jwt}` } });
  };
  /** authorize (mode=json) → Cafe24's authorize endpoint → the callback URL it redirects to. */
  const authorizeAtCafe24 = async (jwt: string, mallId: string, functionsUrl?: string) => {
    const started = await authorize(jwt, { mall_id: mallId, mode: "json" }, functionsUrl);
    assert.equal(started.status, 200, started.body);
    const atCafe24 = await browse(JSON.parse(started.body).url);
    assert.equal(atCafe24.status, 302, atCafe24.body);
    const callbackUrl = new URL(atCafe24.location!);
    const code = callbackUrl.searchParams.get("code");
    if (code !== null) codes.push(code);
    return callbackUrl;
  };
  const returned = (result: Seen) => {
    assert.equal(result.status, 302, result.body);
    const url = new URL(result.location!);
    assert.equal(`${url.origin}${url.pathname}`, "https://app.test/settings/integrations");
    assert.equal(url.searchParams.get("tab"), "cafe24", "the return URL's own query survives");
    return url.searchParams;
  };
  /** Everything a connection attempt could write: settings rows and their refresh state. */
  const writes = async () =>
    JSON.stringify(
      await db.sql`
        select s.id, s.user_id, s.providers, s.updated_at, c.status, c.consecutive_failures,
          c.updated_at as connection_updated_at
        from public.auth_settings s
        left join cafe24_private.connections c on c.auth_settings_id = s.id
        order by s.id`,
    );
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
    "the whole flow: 302 to Cafe24, back to the callback, tokens stored, shop_no set",
    async () => {
      const started = await authorize(aliceJwt, { mall_id: "shopalice" });
      assert.equal(started.status, 302);
      assert.equal(started.headers.get("referrer-policy"), "no-referrer");
      const atCafe24 = await browse(started.location!);
      assert.equal(atCafe24.status, 302, atCafe24.body);
      assert.ok(atCafe24.location!.startsWith(`${REDIRECT_URI}?`));
      firstCallbackUrl = new URL(atCafe24.location!);
      codes.push(firstCallbackUrl.searchParams.get("code")!);

      const done = returned(await browse(firstCallbackUrl));
      assert.equal(done.get("cafe24"), "connected");
      assert.equal(done.get("mall_id"), "shopalice");
      assert.equal(done.get("warning"), null);

      const { id, entry } = await entryOf(alice);
      assert.equal(entry.mall_id, "shopalice");
      assert.equal(entry.refresh_token, sandbox.liveRefreshToken("shopalice"));
      assert.equal(typeof entry.access_token, "string");
      assert.match(String(entry.expires_at), /Z$/);
      assert.match(String(entry.refresh_token_expires_at), /Z$/);
      assert.deepEqual(entry.scopes, ["mall.read_store", "mall.read_product"]);
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
    const done = returned(await browse(firstCallbackUrl!));
    assert.equal(done.get("cafe24"), "error");
    assert.equal(done.get("reason"), "STATE_REPLAYED");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
  });

  await t.step("a tampered state is refused before anything is sent or written", async () => {
    const callbackUrl = await authorizeAtCafe24(aliceJwt, "shopalice");
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
      const done = returned(await browse(url));
      assert.equal(done.get("reason"), "STATE_INVALID", tampered);
    }
    const withoutState = new URL(callbackUrl);
    withoutState.searchParams.delete("state");
    assert.equal(returned(await browse(withoutState)).get("reason"), "STATE_INVALID");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
    assert.equal(await openStates(bob), 0);
  });

  await t.step("an expired state is refused; nothing is exchanged or written", async () => {
    const callbackUrl = await authorizeAtCafe24(aliceJwt, "shopalice");
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
    const done = returned(await browse(callbackUrl));
    assert.equal(done.get("reason"), "STATE_EXPIRED");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
  });

  await t.step("a state taken to another mall's Cafe24 gets no connection", async () => {
    // Alice's state for shopalice, presented at shopother's authorize page: shopother's code comes
    // back with it, and the callback redeems it at shopalice, where Cafe24 does not know it.
    const started = await authorize(aliceJwt, { mall_id: "shopalice", mode: "json" });
    const url = new URL(JSON.parse(started.body).url);
    url.pathname = url.pathname.replace("/shopalice/", "/shopother/");
    const atOther = await browse(url);
    assert.equal(atOther.status, 302);
    const callbackUrl = new URL(atOther.location!);
    codes.push(callbackUrl.searchParams.get("code")!);

    const before = await writes();
    const exchanges = codeExchanges();
    // When the callback names a mall, it must be the state's: refused before any exchange.
    const named = new URL(callbackUrl);
    named.searchParams.set("mall_id", "shopother");
    assert.equal(returned(await browse(named)).get("reason"), "STATE_MALL_MISMATCH");
    assert.equal(codeExchanges(), exchanges);

    const done = returned(await browse(callbackUrl));
    assert.equal(done.get("reason"), "TOKEN_EXCHANGE_REJECTED");
    assert.equal(codeExchanges(), exchanges + 1, "the code went to shopalice's token endpoint");
    assert.equal(sandbox.counters().byMall.shopother!.codeExchanges, 0);
    assert.equal(await writes(), before);
    // The state is spent: it cannot be tried again with a proper code.
    assert.equal(returned(await browse(callbackUrl)).get("reason"), "STATE_REPLAYED");
  });

  await t.step("a state signed for another user than its nonce's is refused", async () => {
    const callbackUrl = await authorizeAtCafe24(aliceJwt, "shopalice");
    const check = await verifyState(STATE_SECRET, callbackUrl.searchParams.get("state"));
    assert.ok(check.ok);
    // Even with the secret, Alice's nonce cannot be spent as Bob's.
    const asBob = await signState(STATE_SECRET, { ...check.state, userId: bob });
    const url = new URL(callbackUrl);
    url.searchParams.set("state", asBob);
    const before = await writes();
    const exchanges = codeExchanges();
    assert.equal(returned(await browse(url)).get("reason"), "STATE_INVALID");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
    const bobRows = await db.sql`select 1 from public.auth_settings where user_id = ${bob}`;
    assert.equal(bobRows.length, 0);
  });

  await t.step("Bob's own flow connects Bob's mall to Bob only", async () => {
    const callbackUrl = await authorizeAtCafe24(bobJwt, "shopbob");
    assert.equal(returned(await browse(callbackUrl)).get("cafe24"), "connected");
    const { entry } = await entryOf(bob);
    assert.equal(entry.mall_id, "shopbob");
    assert.equal((await entryOf(alice)).entry.mall_id, "shopalice");
  });

  await t.step("a callback without a code is refused; the state stays unused", async () => {
    const callbackUrl = await authorizeAtCafe24(aliceJwt, "shopalice");
    const open = await openStates(alice);
    callbackUrl.searchParams.delete("code");
    const before = await writes();
    const exchanges = codeExchanges();
    assert.equal(returned(await browse(callbackUrl)).get("reason"), "MISSING_CODE");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
    assert.equal(await openStates(alice), open);
  });

  await t.step("the owner denying access (error=access_denied) ends as ACCESS_DENIED", async () => {
    const callbackUrl = await authorizeAtCafe24(aliceJwt, "shopdeny");
    assert.equal(callbackUrl.searchParams.get("error"), "access_denied");
    const before = await writes();
    const exchanges = codeExchanges();
    const done = returned(await browse(callbackUrl));
    assert.equal(done.get("cafe24"), "error");
    assert.equal(done.get("reason"), "ACCESS_DENIED");
    assert.equal(codeExchanges(), exchanges);
    assert.equal(await writes(), before);
  });

  await t.step("a code older than one minute is rejected by Cafe24; nothing written", async () => {
    const callbackUrl = await authorizeAtCafe24(aliceJwt, "shopslow");
    sandbox.clock.advance(61_000);
    const before = await writes();
    const invalidGrants = sandbox.counters().invalidGrants;
    const done = returned(await browse(callbackUrl));
    assert.equal(done.get("reason"), "TOKEN_EXCHANGE_REJECTED");
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
    const atCafe24 = await browse(JSON.parse(started.body).url);
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
    const callbackUrl = await authorizeAtCafe24(aliceJwt, "shopflaky");
    sandbox.queueFaults("shopflaky", [{ kind: "server_error", status: 503 }]);
    const before = await writes();
    const injected = sandbox.counters().faultsInjected.server_error;
    const done = returned(await browse(callbackUrl));
    assert.equal(done.get("reason"), "CAFE24_UNAVAILABLE");
    assert.equal(sandbox.counters().faultsInjected.server_error, injected + 1);
    assert.equal(await writes(), before);
  });

  await t.step(
    "a malformed 200 from the token endpoint ends as TOKEN_RESPONSE_INVALID",
    async () => {
      for (const variant of ["missing_refresh_token", "html", "wrong_types"] as const) {
        const callbackUrl = await authorizeAtCafe24(aliceJwt, "shopgarble");
        sandbox.queueFaults("shopgarble", [{ kind: "malformed_200", variant }]);
        const before = await writes();
        const done = returned(await browse(callbackUrl));
        assert.equal(done.get("reason"), "TOKEN_RESPONSE_INVALID", variant);
        assert.equal(await writes(), before, variant);
      }
    },
  );

  await t.step(
    "a 403 from the shop lookup keeps the connection and records a warning",
    async () => {
      const charlie = crypto.randomUUID();
      const callbackUrl = await authorizeAtCafe24(await auth.mint({ sub: charlie }), "shopnoshops");
      const done = returned(await browse(callbackUrl));
      assert.equal(done.get("cafe24"), "connected");
      assert.equal(done.get("warning"), "SHOPS_LOOKUP_FAILED");
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

      const callbackUrl = await authorizeAtCafe24(await auth.mint({ sub: dana }), "shopkeep");
      assert.equal(returned(await browse(callbackUrl)).get("cafe24"), "connected");

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

  await t.step("connecting another mall drops the old mall's shop and board choices", async () => {
    const dana = (await db.sql<{ user_id: string }[]>`
      select user_id from auth_settings where providers -> 'cafe24' ->> 'mall_id' = 'shopkeep'
      order by created_at limit 1`)[0]!.user_id;
    const callbackUrl = await authorizeAtCafe24(await auth.mint({ sub: dana }), "shopnew");
    assert.equal(returned(await browse(callbackUrl)).get("cafe24"), "connected");
    const { entry } = await entryOf(dana);
    assert.equal(entry.mall_id, "shopnew");
    assert.equal(entry.refresh_token, sandbox.liveRefreshToken("shopnew"));
    assert.equal(entry.shop_no, 1, "shop 3 of shopkeep means nothing in shopnew");
    assert.equal(entry.board_no, undefined);
    assert.deepEqual(entry.shops, [{ shop_no: 1, name: "shopnew shop", default: true }]);
    assert.equal(entry.scope, "mall.read_store", "app-wide settings stay");
  });

  await t.step(
    "two callbacks for one new user at once leave exactly one settings row",
    async () => {
      const erin = crypto.randomUUID();
      const erinJwt = await auth.mint({ sub: erin });
      const first = await authorizeAtCafe24(erinJwt, "shopduoa");
      const second = await authorizeAtCafe24(erinJwt, "shopduob");
      const results = await Promise.all([browse(first), browse(second)]);
      for (const result of results) assert.equal(returned(result).get("cafe24"), "connected");
      const { entry } = await entryOf(erin);
      const mall = String(entry.mall_id);
      assert.ok(mall === "shopduoa" || mall === "shopduob", mall);
      assert.equal(
        entry.refresh_token,
        sandbox.liveRefreshToken(mall),
        "the last write wins whole",
      );

      // The same race made certain, straight at the SQL function: the first writer's row is not
      // committed yet when the second one looks for the user's row.
      const gina = crypto.randomUUID();
      const tokens = (n: number) =>
        db.sql.json({
          access_token: `at-${n}`,
          refresh_token: `rt-${n}`,
          expires_at: new Date(Date.now() + 7_200_000).toISOString(),
        });
      const written = Promise.withResolvers<void>();
      const commit = Promise.withResolvers<void>();
      const holder = db.sql.begin(async (tx) => {
        await tx`select cafe24_private.store_connection(${gina}::uuid, 'shopduoa', ${tokens(1)})`;
        written.resolve();
        await commit.promise;
      });
      await written.promise;
      const waiter = db.sql`
        select cafe24_private.store_connection(${gina}::uuid, 'shopduoa', ${tokens(2)})`;
      await new Promise((resolve) => setTimeout(resolve, 300));
      commit.resolve();
      await Promise.all([holder, waiter]);
      assert.equal((await entryOf(gina)).entry.refresh_token, "rt-2");
    },
  );

  await t.step("without CAFE24_APP_RETURN_URL the callback ends on a small page", async () => {
    const pageServer = await stack.startFunctions({ CAFE24_APP_RETURN_URL: "" });
    const frank = crypto.randomUUID();
    const callbackUrl = await authorizeAtCafe24(
      await auth.mint({ sub: frank }),
      "shoppage",
      pageServer.url,
    );
    const page = await browse(callbackUrl, {}, pageServer.url);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    assert.match(page.body, /The mall shoppage is now connected/);
    assert.doesNotMatch(page.body, /<script/i);

    const replay = await browse(callbackUrl, {}, pageServer.url);
    assert.equal(replay.status, 400);
    assert.match(replay.body, /Reason: STATE_REPLAYED/);
    await pageServer.stop();
    outputs.push(pageServer.output);
  });

  await t.step("refresh now: a user's token refreshes that user's connections only", async () => {
    const tokensOf = async (userId: string) =>
      (await db.sql<{ token: string }[]>`
        select providers -> 'cafe24' ->> 'refresh_token' as token from auth_settings
        where user_id = ${userId}`).map((r) => r.token);
    const bobBefore = await tokensOf(bob);
    const bobRequests = sandbox.counters().byMall.shopbob!.refreshRequests;
    const aliceBefore = await tokensOf(alice);
    // A user's force refreshes only tokens at least 5 minutes old: make Alice's an hour old.
    await db.sql`
      update auth_settings
      set providers = jsonb_set(providers, '{cafe24,expires_at}',
        to_jsonb(${new Date(Date.now() + 3_600_000).toISOString()}::text))
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

    const [run] = await db.sql<{ trigger: string; filters: Record<string, unknown> }[]>`
      select trigger, filters from cafe24_private.refresh_runs order by started_at desc limit 1`;
    assert.equal(run!.trigger, "user");
    assert.equal(run!.filters.user_id, alice);

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

  await t.step("refresh without CRON_SECRET is 500 for user callers too", async () => {
    const noSecret = await stack.startFunctions({ CRON_SECRET: "" });
    const response = await fetch(`${noSecret.url}/cafe24-refresh`, {
      method: "POST",
      headers: { authorization: `Bearer ${aliceJwt}` },
    });
    assert.equal(response.status, 500);
    assert.deepEqual(await response.json(), { error: "CRON_SECRET_NOT_CONFIGURED" });
    await noSecret.stop();
    outputs.push(noSecret.output);
  });

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
          select providers -> 'cafe24' ->> 'refresh_token' as v from auth_settings
          union all select providers -> 'cafe24' ->> 'access_token' from auth_settings) t
        where v is not null`;
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

      const answers = seen.filter((s) => {
        // Cafe24's own redirect to the callback carries the code: that is the protocol.
        return !(s.location?.startsWith(`${REDIRECT_URI}?`) ?? false);
      });
      for (const secret of secrets) {
        for (const answer of answers) {
          assert.ok(!(answer.location ?? "").includes(secret), "a secret in a redirect URL");
          assert.ok(!answer.body.includes(secret), "a secret in a response body");
        }
      }
      const output = outputs.flat().join("\n");
      assert.ok(output.includes("cafe24_connected"), "the log is what was checked");
      for (const secret of secrets) {
        assert.ok(!output.includes(secret), "a secret in the functions' output");
      }
    },
  );
}
