// The Cafe24 sandbox over real HTTP. Run under several TZ values: nothing here may depend on it.

import assert from "node:assert/strict";
import {
  APP_DELETED_MESSAGE,
  type Cafe24Sandbox,
  type Cafe24SandboxOptions,
  type FaultKind,
  formatKst,
  INSUFFICIENT_SCOPE_MESSAGE,
  startCafe24Sandbox,
} from "../../../local/cafe24_sandbox.ts";
import { waitFor } from "../../support/wait.ts";
import { rawRequest } from "../../support/raw_http.ts";

const CLIENT_ID = "sandboxclient";
const CLIENT_SECRET = "sandbox-secret";
const REDIRECT = "https://app.example/cafe24/callback";
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

async function withSandbox(
  fn: (sb: Cafe24Sandbox) => Promise<void>,
  options: Partial<Cafe24SandboxOptions> = {},
): Promise<void> {
  const sb = await startCafe24Sandbox({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUri: REDIRECT,
    seed: 7,
    quiet: true,
    ...options,
  });
  try {
    await fn(sb);
  } finally {
    await sb.close();
  }
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function answer(response: Response): Promise<Answer> {
  const text = await response.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: callers look at text.
  }
  return { status: response.status, headers: response.headers, text, json };
}

const basic = (id = CLIENT_ID, secret = CLIENT_SECRET) => `Basic ${btoa(`${id}:${secret}`)}`;

type Auth = "basic" | "body" | "none" | { secret: string };

function tokenFetch(
  sb: Cafe24Sandbox,
  mall: string,
  params: Record<string, string>,
  auth: Auth = "basic",
  init: RequestInit = {},
): Promise<Response> {
  const body = new URLSearchParams(params);
  const headers: Record<string, string> = {
    "content-type": "application/x-www-form-urlencoded",
  };
  if (auth === "basic") headers.authorization = basic();
  else if (auth === "body") {
    body.set("client_id", CLIENT_ID);
    body.set("client_secret", CLIENT_SECRET);
  } else if (auth !== "none") headers.authorization = basic(CLIENT_ID, auth.secret);
  return fetch(`${sb.url}/${mall}/api/v2/oauth/token`, {
    method: "POST",
    headers,
    body,
    ...init,
  });
}

async function refresh(
  sb: Cafe24Sandbox,
  mall: string,
  refreshToken: string,
  auth: Auth = "basic",
): Promise<Answer> {
  return await answer(
    await tokenFetch(sb, mall, { grant_type: "refresh_token", refresh_token: refreshToken }, auth),
  );
}

async function shops(
  sb: Cafe24Sandbox,
  mall: string,
  accessToken: string,
  version: string | null = "2025-12-01",
): Promise<Answer> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${accessToken}`,
    "content-type": "application/json",
  };
  if (version !== null) headers["x-cafe24-api-version"] = version;
  return await answer(await fetch(`${sb.url}/${mall}/api/v2/admin/shops`, { headers }));
}

function authorizeUrl(sb: Cafe24Sandbox, mall: string, extra: Record<string, string> = {}): string {
  const query = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    state: "st@te 1/2",
    redirect_uri: REDIRECT,
    scope: "mall.read_store,mall.read_product",
    ...extra,
  });
  return `${sb.url}/${mall}/api/v2/oauth/authorize?${query}`;
}

async function authorize(
  sb: Cafe24Sandbox,
  mall: string,
  extra: Record<string, string> = {},
): Promise<{ status: number; location: URL | null; answer: Answer }> {
  const response = await fetch(authorizeUrl(sb, mall, extra), { redirect: "manual" });
  const location = response.headers.get("location");
  return {
    status: response.status,
    location: location === null ? null : new URL(location),
    answer: await answer(response),
  };
}

/** A control API request, with the sandbox's control token unless `token` says otherwise. */
async function control(
  sb: Cafe24Sandbox,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = sb.controlToken,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    headers["content-type"] = "application/json";
  }
  return await answer(await fetch(`${sb.url}/__sandbox/${path}`, init));
}

const TOKEN_KEYS = [
  "access_token",
  "expires_at",
  "refresh_token",
  "refresh_token_expires_at",
  "client_id",
  "mall_id",
  "user_id",
  "scopes",
  "issued_at",
  "shop_no",
  "token_type",
];
const KST_FORMAT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}$/;

/** Reads a Cafe24 timestamp as what it is, Korea time. */
const kstToMs = (value: string) => Date.parse(`${value}+09:00`);

Deno.test("formatKst is UTC+9 without offset, whatever the host time zone", async () => {
  const instant = Date.UTC(2021, 2, 1, 5, 0, 0, 0);
  assert.equal(formatKst(instant), "2021-03-01T14:00:00.000");
  assert.equal(formatKst(Date.UTC(2021, 11, 31, 20, 30, 15, 7)), "2022-01-01T05:30:15.007");
  const moduleUrl = new URL("../../../local/cafe24_sandbox.ts", import.meta.url).href;
  for (const tz of ["UTC", "America/New_York", "Asia/Seoul", "Pacific/Chatham"]) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { formatKst } from ${
          JSON.stringify(moduleUrl)
        }; console.log(formatKst(${instant}));`,
      ],
      env: { TZ: tz },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.equal(new TextDecoder().decode(output.stdout).trim(), "2021-03-01T14:00:00.000", tz);
  }
});

Deno.test("refresh rotates: old token dead, its reuse counted, new token works", async () => {
  await withSandbox(async (sb) => {
    const issued = sb.issueTokens("shopone");
    assert.match(issued.refreshToken, /^[A-Za-z0-9_-]{22,}$/);
    assert.equal(sb.liveRefreshToken("shopone"), issued.refreshToken);

    const first = await refresh(sb, "shopone", issued.refreshToken);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(Object.keys(first.json), TOKEN_KEYS);
    assert.equal(first.json.mall_id, "shopone");
    assert.notEqual(first.json.user_id, "shopone");
    assert.equal(first.json.client_id, CLIENT_ID);
    assert.equal(first.json.shop_no, "1");
    assert.equal(first.json.token_type, "Bearer");
    assert.deepEqual(first.json.scopes, issued.scopes);
    assert.notEqual(first.json.refresh_token, issued.refreshToken);
    assert.notEqual(first.json.access_token, issued.accessToken);
    assert.equal(sb.liveRefreshToken("shopone"), first.json.refresh_token);

    const reuse = await refresh(sb, "shopone", issued.refreshToken);
    assert.equal(reuse.status, 400);
    assert.deepEqual(reuse.json, {
      error: "invalid_grant",
      error_description: "Invalid refresh_token",
    });

    const second = await refresh(sb, "shopone", first.json.refresh_token, "body");
    assert.equal(second.status, 200, second.text);

    const c = sb.counters();
    assert.equal(c.requests.token_refresh, 3);
    assert.equal(c.refreshSuccesses, 2);
    assert.equal(c.deadTokenReuses, 1);
    assert.equal(c.invalidGrants, 1);
    assert.equal(c.concurrentRefreshViolations, 0);
    assert.equal(c.maxConcurrentRefreshesPerMall, 1);
    assert.deepEqual(c.byMall.shopone, {
      refreshRequests: 3,
      refreshSuccesses: 2,
      deadTokenReuses: 1,
      maxConcurrentRefreshes: 1,
      codeExchanges: 0,
      samePairConcurrentRefreshes: 0,
      revokedPairs: 0,
      shopsRequests: 0,
      lastApiVersion: null,
    });
    // counters() is a copy.
    c.byMall.shopone!.refreshRequests = 99;
    assert.equal(sb.counters().byMall.shopone!.refreshRequests, 3);
    sb.resetCounters();
    assert.equal(sb.counters().refreshSuccesses, 0);
    assert.equal(sb.counters().byMall.shopone!.refreshRequests, 0);
  });
});

Deno.test("token timestamps are KST on the sandbox clock, no offset", async () => {
  await withSandbox(async (sb) => {
    sb.clock.set(Date.UTC(2030, 0, 1, 0, 0, 0));
    const issued = sb.issueTokens("timemall");
    const before = sb.clock.now();
    const body = (await refresh(sb, "timemall", issued.refreshToken)).json;
    const after = sb.clock.now();
    for (const key of ["expires_at", "refresh_token_expires_at", "issued_at"]) {
      assert.match(body[key], KST_FORMAT, key);
    }
    assert.ok(body.issued_at.startsWith("2030-01-01T09:00:"), body.issued_at);
    const issuedMs = kstToMs(body.issued_at);
    assert.ok(issuedMs >= before && issuedMs <= after, `${issuedMs} not in [${before}, ${after}]`);
    assert.equal(kstToMs(body.expires_at) - issuedMs, 2 * HOUR);
    assert.equal(kstToMs(body.refresh_token_expires_at) - issuedMs, 14 * DAY);
    assert.match(issued.expiresAt, KST_FORMAT);
  });
});

Deno.test("client authentication: Basic, body credentials, wrong secret, none", async () => {
  await withSandbox(async (sb) => {
    const issued = sb.issueTokens("authmall");
    const wrong = await refresh(sb, "authmall", issued.refreshToken, { secret: "nope" });
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.json, {
      error: "invalid_grant",
      error_description: "Invalid client_secret",
    });
    const none = await refresh(sb, "authmall", issued.refreshToken, "none");
    assert.equal(none.status, 401);
    // A rejected client must not rotate the token.
    assert.equal(sb.liveRefreshToken("authmall"), issued.refreshToken);
    const viaBody = await refresh(sb, "authmall", issued.refreshToken, "body");
    assert.equal(viaBody.status, 200, viaBody.text);
    const viaBasic = await refresh(sb, "authmall", viaBody.json.refresh_token, "basic");
    assert.equal(viaBasic.status, 200, viaBasic.text);
    assert.equal(sb.counters().clientAuthFailures, 2);
    assert.equal(sb.counters().invalidGrants, 0);

    const json = await answer(
      await fetch(`${sb.url}/authmall/api/v2/oauth/token`, {
        method: "POST",
        headers: { authorization: basic(), "content-type": "application/json" },
        body: JSON.stringify({ grant_type: "refresh_token", refresh_token: "x" }),
      }),
    );
    assert.equal(json.status, 400);
    assert.equal(json.json.error, "invalid_request");
  });
});

Deno.test("expired, revoked and unknown refresh tokens: invalid_grant, not reuse", async () => {
  await withSandbox(async (sb) => {
    const a = sb.issueTokens("expmall");
    sb.clock.advance(14 * DAY);
    const expired = await refresh(sb, "expmall", a.refreshToken);
    assert.equal(expired.status, 401);
    assert.equal(expired.json.error, "invalid_grant");

    const b = sb.issueTokens("expmall", { refreshTokenLifetimeMs: 1000 });
    sb.clock.advance(900); // the sandbox clock also runs in real time: leave headroom
    assert.equal((await refresh(sb, "expmall", b.refreshToken)).status, 200);

    const c = sb.issueTokens("revmall");
    sb.revokeRefreshToken("revmall");
    assert.equal(sb.liveRefreshToken("revmall"), undefined);
    assert.equal((await refresh(sb, "revmall", c.refreshToken)).status, 401);
    assert.equal((await refresh(sb, "revmall", "never-issued-token-xxxxx")).status, 401);
    // A live token of one mall is unknown to another.
    const d = sb.issueTokens("othermall");
    assert.equal((await refresh(sb, "revmall", d.refreshToken)).status, 401);

    const counters = sb.counters();
    assert.equal(counters.invalidGrants, 4);
    assert.equal(counters.deadTokenReuses, 0);
  }, { invalidGrantStatus: 401 });
});

Deno.test("issueTokens is a new grant: the previous token is superseded, not reused", async () => {
  await withSandbox(async (sb) => {
    const old = sb.issueTokens("reissue");
    const fresh = sb.issueTokens("reissue");
    assert.notEqual(fresh.grantId, old.grantId);
    assert.equal(sb.liveRefreshToken("reissue"), fresh.refreshToken);
    assert.equal((await refresh(sb, "reissue", old.refreshToken)).status, 400);
    assert.equal(sb.counters().byMall.reissue!.deadTokenReuses, 0);
    assert.deepEqual(
      sb.refreshLog().map((e) => [e.presented, e.outcome, e.pairId]),
      [["superseded_by_grant", "invalid_grant", old.pairId]],
    );
  });
});

Deno.test("issuedTokens lists every token value handed out, and resetCounters keeps it", async () => {
  await withSandbox(async (sb) => {
    const granted = sb.issueTokens("issuedone");
    assert.deepEqual(sb.issuedTokens(), [granted.accessToken, granted.refreshToken]);
    const rotated = await refresh(sb, "issuedone", granted.refreshToken);
    assert.equal(rotated.status, 200, rotated.text);
    sb.queueFaults("issuedone", [{ kind: "malformed_200", variant: "wrong_types" }]);
    const fake = await refresh(sb, "issuedone", rotated.json.refresh_token);
    assert.equal(typeof fake.json.access_token, "string", fake.text);
    sb.resetCounters();
    const auth = await authorize(sb, "issuedone");
    const exchanged = await tokenFetch(sb, "issuedone", {
      grant_type: "authorization_code",
      code: auth.location!.searchParams.get("code")!,
      redirect_uri: REDIRECT,
    }).then(answer);
    assert.equal(exchanged.status, 200, exchanged.text);
    const list = sb.issuedTokens();
    assert.deepEqual(list, [
      granted.accessToken,
      granted.refreshToken,
      rotated.json.access_token,
      rotated.json.refresh_token,
      fake.json.access_token,
      fake.json.refresh_token,
      exchanged.json.access_token,
      exchanged.json.refresh_token,
    ]);
    list.pop();
    assert.equal(sb.issuedTokens().length, 8, "a copy");
  });
});

Deno.test("authorize redirects with code and unchanged state; code is single-use", async () => {
  await withSandbox(async (sb) => {
    sb.addMall("codemall");
    const previous = sb.issueTokens("codemall");
    const auth = await authorize(sb, "codemall");
    assert.equal(auth.status, 302);
    assert.ok(auth.location);
    assert.equal(`${auth.location.origin}${auth.location.pathname}`, REDIRECT);
    assert.equal(auth.location.searchParams.get("state"), "st@te 1/2");
    const code = auth.location.searchParams.get("code");
    assert.ok(code && code.length >= 22);

    const exchange = () =>
      tokenFetch(sb, "codemall", {
        grant_type: "authorization_code",
        code,
        redirect_uri: REDIRECT,
      }).then(answer);
    const first = await exchange();
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(Object.keys(first.json), TOKEN_KEYS);
    assert.deepEqual(first.json.scopes, ["mall.read_store", "mall.read_product"]);
    assert.equal(sb.liveRefreshToken("codemall"), first.json.refresh_token);

    const again = await exchange();
    assert.equal(again.status, 400);
    assert.equal(again.json.error, "invalid_grant");

    // The exchange replaced the previous pair; its holder did nothing wrong: no reuse.
    assert.equal((await refresh(sb, "codemall", previous.refreshToken)).status, 400);
    const c = sb.counters();
    assert.equal(c.requests.authorize, 1);
    assert.equal(c.requests.token_code, 2);
    assert.equal(c.byMall.codemall!.codeExchanges, 1);
    assert.equal(c.byMall.codemall!.deadTokenReuses, 0);
    assert.equal(sb.refreshLog()[0]!.presented, "superseded_by_grant");
  });
});

Deno.test("authorize: space-separated scopes; code expires after 1 minute; redirect must match", async () => {
  await withSandbox(async (sb) => {
    sb.addMall("slowmall");
    const spaced = await authorize(sb, "slowmall", { scope: "mall.read_store mall.read_order" });
    const spacedCode = spaced.location!.searchParams.get("code")!;
    const ok = await answer(
      await tokenFetch(sb, "slowmall", {
        grant_type: "authorization_code",
        code: spacedCode,
        redirect_uri: REDIRECT,
      }),
    );
    assert.deepEqual(ok.json.scopes, ["mall.read_store", "mall.read_order"]);

    const late = (await authorize(sb, "slowmall")).location!.searchParams.get("code")!;
    sb.clock.advance(59_000);
    const wrongRedirect = await answer(
      await tokenFetch(sb, "slowmall", {
        grant_type: "authorization_code",
        code: late,
        redirect_uri: "https://app.example/other",
      }),
    );
    assert.equal(wrongRedirect.status, 400);
    assert.equal(wrongRedirect.json.error, "invalid_grant");
    sb.clock.advance(1_000);
    const expired = await answer(
      await tokenFetch(sb, "slowmall", {
        grant_type: "authorization_code",
        code: late,
        redirect_uri: REDIRECT,
      }),
    );
    assert.equal(expired.status, 400);
    assert.deepEqual(expired.json, {
      error: "invalid_grant",
      error_description: "Code time expired",
    });
  });
});

Deno.test("authorize: redirect_uri mismatch is JSON without redirect; deny; unknown mall", async () => {
  await withSandbox(async (sb) => {
    sb.addMall("strict");
    for (const uri of [`${REDIRECT}/`, REDIRECT.toUpperCase(), `${REDIRECT}?x=1`]) {
      const mismatch = await authorize(sb, "strict", { redirect_uri: uri });
      assert.equal(mismatch.status, 400, uri);
      assert.equal(mismatch.location, null);
      assert.deepEqual(mismatch.answer.json, {
        error: "invalid_request",
        error_description: "The redirect_uri added by Cafe24 Developers is invalid.",
      });
    }
    const wrongClient = await authorize(sb, "strict", { client_id: "someone" });
    assert.equal(wrongClient.status, 400);

    sb.addMall("denier", { denyAuthorization: true });
    const denied = await authorize(sb, "denier");
    assert.equal(denied.status, 302);
    assert.equal(denied.location!.searchParams.get("error"), "access_denied");
    assert.ok(denied.location!.searchParams.get("error_description"));
    assert.equal(denied.location!.searchParams.get("state"), "st@te 1/2");
    assert.equal(denied.location!.searchParams.get("code"), null);

    const unknown = await authorize(sb, "nosuchmall");
    assert.equal(unknown.status, 404);
    // A browser lands on a page of Cafe24's own, in both languages, with a way back.
    const page = await fetch(`${sb.url}/nosuchmall/api/v2/oauth/authorize?response_type=code`, {
      headers: { referer: "http://127.0.0.1:54330/" },
    });
    assert.equal(page.status, 404);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    const html = await page.text();
    assert.match(html, /쇼핑몰을 찾을 수 없습니다/);
    assert.match(html, /Mall not found/);
    assert.match(html, /<a id="back" href="http:\/\/127\.0\.0\.1:54330\/">/);
    // With the app's registered redirect URI: back through it with an OAuth error and the state.
    const viaApp = await (await fetch(
      `${sb.url}/nosuchmall/api/v2/oauth/authorize?response_type=code&state=s1&redirect_uri=` +
        encodeURIComponent(REDIRECT),
    )).text();
    const back = new URL(/<a id="back" href="([^"]+)"/.exec(viaApp)![1]!.replaceAll("&amp;", "&"));
    assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
    assert.equal(back.searchParams.get("error"), "invalid_request");
    assert.equal(back.searchParams.get("state"), "s1");
    const unknownToken = await answer(
      await tokenFetch(sb, "nosuchmall", { grant_type: "refresh_token", refresh_token: "x" }),
    );
    assert.equal(unknownToken.status, 404);
  });
});

Deno.test("shops: bearer checked, version header recorded, configurable status", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("shopmall");
    const ok = await shops(sb, "shopmall", tokens.accessToken, "2024-06-01");
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.shops.length, 1);
    assert.deepEqual(Object.keys(ok.json.shops[0]), [
      "shop_no",
      "default",
      "shop_name",
      "language_code",
      "currency_code",
      "base_domain",
      "primary_domain",
      "active",
      "timezone",
    ]);
    assert.equal(ok.json.shops[0].shop_no, 1);
    assert.equal(sb.counters().byMall.shopmall!.lastApiVersion, "2024-06-01");

    const bad = await shops(sb, "shopmall", "not-a-token", null);
    assert.equal(bad.status, 401);
    assert.equal(bad.json.error.code, 401);
    assert.equal(typeof bad.json.error.message, "string");
    assert.equal(sb.counters().byMall.shopmall!.lastApiVersion, null);

    sb.clock.advance(2 * HOUR);
    assert.equal((await shops(sb, "shopmall", tokens.accessToken)).status, 401);

    const custom = [{ shop_no: 1, default: "T", shop_name: "A" }, { shop_no: 2, default: "F" }];
    sb.addMall("twoshops", { shops: custom });
    const two = sb.issueTokens("twoshops");
    assert.deepEqual((await shops(sb, "twoshops", two.accessToken)).json, { shops: custom });

    sb.addMall("twoshops", { shopsStatus: 403 });
    const forbidden = await shops(sb, "twoshops", two.accessToken);
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.json.error.code, 403);

    sb.addMall("noscope", { scopes: ["mall.read_product"] });
    const narrow = sb.issueTokens("noscope");
    assert.equal((await shops(sb, "noscope", narrow.accessToken)).status, 403);

    assert.equal(sb.counters().requests.shops, 6);
  });
});

Deno.test("revoke endpoint kills both halves of the pair", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("revoker");
    const revoke = await answer(
      await fetch(`${sb.url}/revoker/api/v2/oauth/revoke`, {
        method: "POST",
        headers: { authorization: basic(), "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: tokens.accessToken, token_hint: "access_token" }),
      }),
    );
    assert.equal(revoke.status, 200);
    assert.equal(revoke.text, "");
    assert.equal((await shops(sb, "revoker", tokens.accessToken)).status, 401);
    assert.equal((await refresh(sb, "revoker", tokens.refreshToken)).status, 400);
    assert.equal(sb.counters().deadTokenReuses, 0);
    assert.equal(sb.counters().requests.revoke, 1);
  });
});

Deno.test("leaky bucket: 429 after 40 quick calls, drains on the sandbox clock", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("busymall");
    for (let i = 1; i <= 40; i++) {
      const ok = await shops(sb, "busymall", tokens.accessToken);
      assert.equal(ok.status, 200, `call ${i}`);
      assert.equal(ok.headers.get("x-api-call-limit"), `${i}/40`);
    }
    const limited = await shops(sb, "busymall", tokens.accessToken);
    assert.equal(limited.status, 429);
    assert.deepEqual(limited.json, { error: { code: 429, message: "Too Many Requests" } });
    assert.equal(limited.headers.get("x-cafe24-call-usage"), "100");
    assert.ok(Number(limited.headers.get("x-cafe24-call-remain")) >= 1);
    assert.equal(sb.counters().rateLimited, 1);
    // Another mall has its own bucket.
    const other = sb.issueTokens("calmmall");
    assert.equal((await shops(sb, "calmmall", other.accessToken)).status, 200);

    sb.clock.advance(5_000);
    const drained = await shops(sb, "busymall", tokens.accessToken);
    assert.equal(drained.status, 200);
    assert.ok(Number(drained.headers.get("x-api-call-limit")!.split("/")[0]) <= 33);
  });
});

Deno.test("leaky bucket covers the token endpoint unless disabled", async () => {
  for (const rateLimitTokenEndpoint of [true, false]) {
    await withSandbox(async (sb) => {
      let token = sb.issueTokens("tokenbucket").refreshToken;
      for (let i = 0; i < 3; i++) {
        const r = await refresh(sb, "tokenbucket", token);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.has("x-api-call-limit"), rateLimitTokenEndpoint);
        token = r.json.refresh_token;
      }
      const last = await refresh(sb, "tokenbucket", token);
      assert.equal(last.status, rateLimitTokenEndpoint ? 429 : 200);
    }, { rateLimitTokenEndpoint, bucketCapacity: 3, bucketDrainPerSecond: 0.001 });
  }
});

Deno.test("queued faults hit the next token requests in order, mall before global", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("queued");
    sb.queueFaults("queued", ["rate_limited", "html_error"]);
    sb.queueFaults("*", [{ kind: "server_error", status: 503 }]);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await refresh(sb, "queued", tokens.refreshToken)).status);
    }
    assert.deepEqual(statuses, [429, 500, 503, 200]);

    // Queued faults are for the token endpoint: shops does not consume them.
    const other = sb.issueTokens("queued2");
    sb.queueFaults("*", ["rate_limited"]);
    assert.equal((await shops(sb, "queued2", other.accessToken)).status, 200);
    assert.equal((await refresh(sb, "queued2", other.refreshToken)).status, 429);

    sb.queueFaults("queued2", ["rate_limited"]);
    sb.clearFaults();
    assert.equal((await refresh(sb, "queued2", other.refreshToken)).status, 200);
  });
});

Deno.test("faulted requests never rotate the token", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("faulty");
    const kinds: FaultKind[] = [
      "server_error",
      "rate_limited",
      "rate_limited_retry_after",
      "html_error",
      "malformed_200",
      "malformed_200",
      "malformed_200",
      "malformed_200",
      "malformed_200",
      "reset",
    ];
    sb.queueFaults("faulty", kinds);
    for (const _ of kinds) {
      const response = await tokenFetch(sb, "faulty", {
        grant_type: "refresh_token",
        refresh_token: tokens.refreshToken,
      });
      await response.text().catch(() => undefined);
      assert.equal(sb.liveRefreshToken("faulty"), tokens.refreshToken);
    }
    const clean = await refresh(sb, "faulty", tokens.refreshToken);
    assert.equal(clean.status, 200, clean.text);
    const c = sb.counters();
    assert.equal(c.refreshSuccesses, 1);
    assert.equal(c.deadTokenReuses, 0);
    assert.equal(c.faultsInjected.malformed_200, 5);
    assert.equal(c.faultsInjected.reset, 1);
    assert.equal(c.faultsInjected.hang, 0);
  });
});

Deno.test("fault kinds: server_error, rate limits, html_error", async () => {
  await withSandbox(async (sb) => {
    const t = sb.issueTokens("kinds").refreshToken;
    sb.queueFaults("kinds", [
      { kind: "server_error", status: 502 },
      { kind: "server_error", status: 504 },
      { kind: "server_error", status: 500 },
      "rate_limited",
      "rate_limited_retry_after",
      "html_error",
    ]);
    const bad502 = await refresh(sb, "kinds", t);
    assert.equal(bad502.status, 502);
    assert.match(bad502.headers.get("content-type")!, /^text\/html/);
    assert.match(bad502.text, /<html>/);
    const bad504 = await refresh(sb, "kinds", t);
    assert.equal(bad504.status, 504);
    assert.match(bad504.headers.get("content-type")!, /^text\/html/);
    const bad500 = await refresh(sb, "kinds", t);
    assert.equal(bad500.status, 500);
    assert.equal(bad500.json.error.code, 500);
    const limited = await refresh(sb, "kinds", t);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get("retry-after"), null);
    const retryAfter = await refresh(sb, "kinds", t);
    assert.equal(retryAfter.status, 429);
    assert.equal(retryAfter.headers.get("retry-after"), "2");
    const html = await refresh(sb, "kinds", t);
    assert.equal(html.status, 500);
    assert.match(html.headers.get("content-type")!, /^text\/html/);
    assert.equal(html.json, undefined);

    sb.setFaults("kinds", { retryAfterSeconds: 7 });
    sb.queueFaults("kinds", ["rate_limited_retry_after"]);
    assert.equal((await refresh(sb, "kinds", t)).headers.get("retry-after"), "7");

    // Unpinned server errors draw their status from the seeded PRNG.
    sb.queueFaults("kinds", Array(12).fill("server_error"));
    const drawn = new Set<number>();
    for (let i = 0; i < 12; i++) drawn.add((await refresh(sb, "kinds", t)).status);
    for (const status of drawn) assert.ok([500, 502, 503, 504].includes(status), String(status));
    assert.ok(drawn.size >= 2);
    assert.equal(sb.counters().faultsInjected.server_error, 15);
  });
});

Deno.test("fault kind malformed_200: every variant", async () => {
  await withSandbox(async (sb) => {
    const t = sb.issueTokens("malformed").refreshToken;
    sb.queueFaults("malformed", [
      { kind: "malformed_200", variant: "html" },
      { kind: "malformed_200", variant: "text" },
      { kind: "malformed_200", variant: "missing_refresh_token" },
      { kind: "malformed_200", variant: "wrong_types" },
      { kind: "malformed_200", variant: "empty" },
    ]);
    const html = await refresh(sb, "malformed", t);
    assert.equal(html.status, 200);
    assert.match(html.headers.get("content-type")!, /^text\/html/);
    assert.equal(html.json, undefined);
    const text = await tokenFetch(sb, "malformed", {
      grant_type: "refresh_token",
      refresh_token: t,
    });
    assert.equal(text.status, 200);
    await assert.rejects(() => text.json(), SyntaxError);
    const missing = await refresh(sb, "malformed", t);
    assert.equal(missing.status, 200);
    assert.equal(typeof missing.json.access_token, "string");
    assert.equal("refresh_token" in missing.json, false);
    const wrongTypes = await refresh(sb, "malformed", t);
    assert.equal(typeof wrongTypes.json.expires_at, "number");
    assert.equal(typeof wrongTypes.json.refresh_token, "string");
    const empty = await refresh(sb, "malformed", t);
    assert.equal(empty.status, 200);
    assert.equal(empty.text, "");
    // The fake pair in a malformed answer is not a real one.
    assert.equal((await refresh(sb, "malformed", wrongTypes.json.refresh_token)).status, 400);
    assert.equal(sb.liveRefreshToken("malformed"), t);
  });
});

Deno.test("fault kind reset: fetch resolves, reading the body throws TypeError", async () => {
  await withSandbox(async (sb) => {
    const t = sb.issueTokens("resetmall").refreshToken;
    sb.queueFaults("resetmall", ["reset"]);
    const response = await tokenFetch(sb, "resetmall", {
      grant_type: "refresh_token",
      refresh_token: t,
    });
    // What a client actually sees: Deno.serve has flushed the status line and headers before the
    // body stream fails, so the failure is the body read.
    assert.equal(response.status, 200);
    await assert.rejects(() => response.json(), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /error reading a body from connection/);
      return true;
    });
    // The server survives and the token was not rotated.
    assert.equal((await refresh(sb, "resetmall", t)).status, 200);
  });
});

Deno.test("fault kind hang: held until the client aborts, or until hangMs", async () => {
  await withSandbox(async (sb) => {
    const t = sb.issueTokens("hangmall").refreshToken;
    sb.queueFaults("hangmall", ["hang"]);
    const started = performance.now();
    await assert.rejects(
      () =>
        tokenFetch(sb, "hangmall", { grant_type: "refresh_token", refresh_token: t }, "basic", {
          signal: AbortSignal.timeout(300),
        }),
      (error: unknown) => error instanceof DOMException && error.name === "TimeoutError",
    );
    const waited = performance.now() - started;
    assert.ok(waited >= 250 && waited < 5_000, `waited ${waited}`);
    await waitFor("the server to see the disconnect", () => sb.counters().clientAborts > 0);
    const c = sb.counters();
    assert.equal(c.faultsInjected.hang, 1);
    assert.equal(c.clientAborts, 1);

    sb.setFaults("hangmall", { hangMs: 100 });
    sb.queueFaults("hangmall", ["hang"]);
    const timedOut = await refresh(sb, "hangmall", t);
    assert.equal(timedOut.status, 504);
    assert.equal(sb.liveRefreshToken("hangmall"), t);
    assert.equal((await refresh(sb, "hangmall", t)).status, 200);
  });
});

Deno.test("close() releases a request that is still hanging", async () => {
  const sb = await startCafe24Sandbox({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    quiet: true,
  });
  const t = sb.issueTokens("closing").refreshToken;
  sb.queueFaults("closing", ["hang"]);
  const pending = tokenFetch(sb, "closing", { grant_type: "refresh_token", refresh_token: t })
    .then(async (r) => {
      await r.body?.cancel();
      return r.status;
    }, () => "failed");
  await waitFor("the request to hang", () => sb.counters().faultsInjected.hang > 0);
  const started = performance.now();
  await sb.close();
  assert.ok(performance.now() - started < 5_000);
  await pending;
});

Deno.test("probability faults are drawn from the seed", async () => {
  const sequence = async (seed: number) => {
    const statuses: number[] = [];
    await withSandbox(async (sb) => {
      const t = sb.issueTokens("dice").refreshToken;
      sb.setFaults("*", { probabilities: { rate_limited: 0.3, html_error: 0.3 } });
      for (let i = 0; i < 30; i++) {
        statuses.push((await refresh(sb, "dice", t)).status === 200 ? 0 : 1);
      }
      sb.setFaults("dice", { probabilities: { rate_limited: 1 } });
      assert.equal((await shops(sb, "dice", sb.issueTokens("dice").accessToken)).status, 429);
    }, { seed, bucketCapacity: 1000 });
    return statuses.join("");
  };
  const a = await sequence(11);
  assert.equal(await sequence(11), a);
  assert.notEqual(await sequence(12), a);
  assert.ok(a.includes("0") && a.includes("1"), a);
});

Deno.test("latency delays token requests; overlapping refreshes of one mall are counted", async () => {
  await withSandbox(async (sb) => {
    const t = sb.issueTokens("racy").refreshToken;
    sb.setFaults("racy", { latencyMs: 300 });
    const started = performance.now();
    const [a, b] = await Promise.all([refresh(sb, "racy", t), refresh(sb, "racy", t)]);
    assert.ok(performance.now() - started >= 280);
    assert.deepEqual([a.status, b.status].sort(), [200, 400]);
    const c = sb.counters();
    assert.equal(c.concurrentRefreshViolations, 1);
    assert.equal(c.maxConcurrentRefreshesPerMall, 2);
    assert.equal(c.byMall.racy!.maxConcurrentRefreshes, 2);
    assert.equal(c.deadTokenReuses, 1);

    // Overlap across different malls is fine.
    sb.setFaults("*", { latencyMs: 200 });
    sb.resetCounters();
    const x = sb.issueTokens("calma").refreshToken;
    const y = sb.issueTokens("calmb").refreshToken;
    await Promise.all([refresh(sb, "calma", x), refresh(sb, "calmb", y)]);
    assert.equal(sb.counters().concurrentRefreshViolations, 0);
    assert.equal(sb.counters().maxConcurrentRefreshesPerMall, 1);
  });
});

Deno.test("a client abort during latency: dropped, or committed and lost", async () => {
  for (const commitOnClientAbort of [false, true]) {
    await withSandbox(async (sb) => {
      const t = sb.issueTokens("abortive").refreshToken;
      sb.setFaults("abortive", { latencyMs: 300 });
      await assert.rejects(() =>
        tokenFetch(sb, "abortive", { grant_type: "refresh_token", refresh_token: t }, "basic", {
          signal: AbortSignal.timeout(100),
        })
      );
      await waitFor("the abandoned request's outcome", () => sb.refreshLog().length > 0);
      const c = sb.counters();
      assert.equal(c.clientAborts, 1);
      if (commitOnClientAbort) {
        assert.notEqual(sb.liveRefreshToken("abortive"), t);
        assert.equal(c.lostResponses, 1);
        assert.equal(c.refreshSuccesses, 1);
      } else {
        assert.equal(sb.liveRefreshToken("abortive"), t);
        assert.equal(c.lostResponses, 0);
        // The abandoned request no longer counts as in flight.
        sb.clearFaults();
        assert.equal((await refresh(sb, "abortive", t)).status, 200);
        assert.equal(sb.counters().concurrentRefreshViolations, 0);
      }
    }, { commitOnClientAbort });
  }
});

Deno.test("control endpoints drive the sandbox over HTTP", async () => {
  await withSandbox(async (sb) => {
    const created = await control(sb, "POST", "malls", {
      mall_id: "ctrlmall",
      access_token_lifetime_ms: 60_000,
    });
    assert.equal(created.status, 200, created.text);
    assert.deepEqual(Object.keys(created.json).sort(), [
      "accessToken",
      "expiresAt",
      "grantId",
      "issuedAt",
      "pairId",
      "refreshToken",
      "refreshTokenExpiresAt",
      "scopes",
    ]);
    assert.equal(kstToMs(created.json.expiresAt) - kstToMs(created.json.issuedAt), 60_000);
    assert.deepEqual((await control(sb, "GET", "malls/ctrlmall/live")).json, {
      refresh_token: created.json.refreshToken,
    });
    assert.equal((await control(sb, "GET", "malls/nomall/live")).status, 404);

    const bulk = await control(sb, "POST", "malls/bulk", { mall_ids: ["bulka", "bulkb"] });
    assert.deepEqual(Object.keys(bulk.json), ["bulka", "bulkb"]);
    assert.equal(sb.liveRefreshToken("bulkb"), bulk.json.bulkb.refreshToken);

    assert.equal(
      (await control(sb, "POST", "faults/queue", { scope: "*", kinds: ["rate_limited"] }))
        .status,
      200,
    );
    assert.equal((await refresh(sb, "bulka", bulk.json.bulka.refreshToken)).status, 429);
    await control(sb, "POST", "faults", {
      scope: "bulka",
      plan: { probabilities: { html_error: 1 } },
    });
    assert.equal((await refresh(sb, "bulka", bulk.json.bulka.refreshToken)).status, 500);
    await control(sb, "POST", "faults/clear");
    assert.equal((await refresh(sb, "bulka", bulk.json.bulka.refreshToken)).status, 200);

    const counters = await control(sb, "GET", "counters");
    assert.equal(counters.json.requests.token_refresh, 3);
    assert.equal(counters.json.faultsInjected.html_error, 1);
    await control(sb, "POST", "counters/reset");
    assert.equal((await control(sb, "GET", "counters")).json.requests.token_refresh, 0);

    const before = sb.clock.now();
    const advanced = await control(sb, "POST", "clock", { advance_ms: 3_600_000 });
    assert.ok(advanced.json.now_ms >= before + 3_600_000);
    await control(sb, "POST", "clock", { set_ms: Date.UTC(2031, 0, 1) });
    assert.ok(Math.abs(sb.clock.now() - Date.UTC(2031, 0, 1)) < 1_000);

    assert.equal(
      (await control(sb, "POST", "faults/queue", { scope: "*", kinds: ["nope"] })).status,
      400,
    );
    assert.equal((await control(sb, "POST", "malls", { mall_id: "Bad/Mall" })).status, 400);
    assert.equal((await control(sb, "POST", "clock", {})).status, 400);
    assert.equal((await control(sb, "GET", "whatever")).status, 404);
  });
});

Deno.test("control API: without the control token, or with another, nothing is answered", async () => {
  await withSandbox(async (sb) => {
    const issued = sb.issueTokens("lockedmall");
    assert.ok(sb.controlToken.length >= 32, "a fresh random token by default");
    for (const token of [null, "not-the-control-token", `${sb.controlToken}x`]) {
      for (
        const [method, path] of [
          ["GET", "malls/lockedmall/live"],
          ["GET", "malls/lockedmall/pairs"],
          ["POST", "malls"],
          ["POST", "malls/lockedmall/revoke"],
          ["GET", "counters"],
        ] as const
      ) {
        const refused = await control(sb, method, path, undefined, token);
        assert.equal(refused.status, 401, `${method} ${path} with ${token}`);
        assert.match(refused.json.error, /control token as Authorization: Bearer/);
        assert.ok(!refused.text.includes(issued.refreshToken), "no live token in the refusal");
      }
    }
    // Nothing changed: the pair is still live and the only one.
    assert.equal(sb.liveRefreshToken("lockedmall"), issued.refreshToken);
    assert.equal(sb.livePairs("lockedmall").length, 1);
    // With the token: answered.
    const live = await control(sb, "GET", "malls/lockedmall/live");
    assert.equal(live.status, 200);
    assert.deepEqual(live.json, { refresh_token: issued.refreshToken });
    // Lower-case scheme, as HTTP allows.
    const lower = await answer(
      await fetch(`${sb.url}/__sandbox/counters`, {
        headers: { authorization: `bearer ${sb.controlToken}` },
      }),
    );
    assert.equal(lower.status, 200);
  });
  // A token given at start is the one it wants.
  const given = "a-control-token-given-at-start-0123456789";
  await withSandbox(async (sb) => {
    assert.equal(sb.controlToken, given);
    assert.equal((await control(sb, "GET", "counters", undefined, given)).status, 200);
  }, { controlToken: given });
  await assert.rejects(
    async () =>
      await startCafe24Sandbox({
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        controlToken: "short",
      }),
    /controlToken must be at least 16 characters/,
  );
});

Deno.test("answers only Host 127.0.0.1:<port> or localhost:<port>: a rebound hostname gets 421", async () => {
  await withSandbox(async (sb) => {
    const issued = sb.issueTokens("hostmall");
    const port = new URL(sb.url).port;
    const auth = { authorization: `Bearer ${sb.controlToken}` };
    const live = `${sb.url}/__sandbox/malls/hostmall/live`;
    const token = `${sb.url}/hostmall/api/v2/oauth/token`;
    const form = {
      "content-type": "application/x-www-form-urlencoded",
      authorization: basic(),
    };
    const refreshBody = `grant_type=refresh_token&refresh_token=${issued.refreshToken}`;
    for (
      const host of [
        `rebind.example:${port}`,
        "rebind.example",
        `127.0.0.1.rebind.example:${port}`,
        `localhost:${Number(port) + 1}`,
        `127.0.0.1:${Number(port) + 1}`,
        `localhost.:${port}`,
      ]
    ) {
      // Even with the control token: a page that rebound its name must read nothing.
      const control = await rawRequest(live, { host, headers: auth });
      assert.equal(control.status, 421, host);
      assert.equal(JSON.parse(control.body).error, "MISDIRECTED_REQUEST");
      assert.ok(!control.body.includes(issued.refreshToken));
      assert.ok(!control.body.includes("rebind"), "the refused name is not echoed");
      const refreshed = await rawRequest(token, {
        host,
        method: "POST",
        headers: form,
        body: refreshBody,
      });
      assert.equal(refreshed.status, 421, host);
    }
    assert.equal(sb.liveRefreshToken("hostmall"), issued.refreshToken, "nothing rotated");
    assert.equal(sb.counters().requests.token_refresh, 0, "refused before any endpoint");
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`]) {
      const answered = await rawRequest(live, { host, headers: auth });
      assert.equal(answered.status, 200, host);
      assert.equal(JSON.parse(answered.body).refresh_token, issued.refreshToken);
    }
    const refreshed = await rawRequest(token, {
      host: `localhost:${port}`,
      method: "POST",
      headers: form,
      body: refreshBody,
    });
    assert.equal(refreshed.status, 200, refreshed.body);
  });
  // A host named at start (functions in Docker reach the host as host.docker.internal).
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const fixedPort = (probe.addr as Deno.NetAddr).port;
  probe.close();
  await withSandbox(async (sb) => {
    const port = new URL(sb.url).port;
    assert.equal(port, String(fixedPort));
    const counters = `${sb.url}/__sandbox/counters`;
    const headers = { authorization: `Bearer ${sb.controlToken}` };
    const docker = await rawRequest(counters, { host: `host.docker.internal:${port}`, headers });
    assert.equal(docker.status, 200);
    const other = await rawRequest(counters, { host: `other.internal:${port}`, headers });
    assert.equal(other.status, 421);
  }, { port: fixedPort, allowedHosts: [`host.docker.internal:${fixedPort}`] });
});

Deno.test("control endpoints refuse non-loopback peers", {
  ignore: !Deno.networkInterfaces().some((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.")
  ),
}, async () => {
  const external = Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.")
  )!.address;
  await withSandbox(async (sb) => {
    const port = new URL(sb.url).port;
    const headers = { authorization: `Bearer ${sb.controlToken}` };
    // Reached on another address, and naming it: not a name this sandbox answers.
    const named = await rawRequest(`http://${external}:${port}/__sandbox/counters`, { headers });
    assert.equal(named.status, 421);
    // Reached on another address with a loopback Host: the peer is not loopback.
    const remote = await rawRequest(`http://${external}:${port}/__sandbox/counters`, {
      host: `127.0.0.1:${port}`,
      headers,
    });
    assert.equal(remote.status, 403);
    const local = await rawRequest(`http://127.0.0.1:${port}/__sandbox/counters`, { headers });
    assert.equal(local.status, 200);
  }, { hostname: "0.0.0.0" });
});

const noOpenssl = (() => {
  try {
    new Deno.Command("openssl", { args: ["version"] }).outputSync();
    return false;
  } catch {
    return true;
  }
})();

/** A throwaway self-signed certificate for 127.0.0.1 (openssl). */
async function withCertificate(fn: (tls: { cert: string; key: string }) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    const made = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.equal(made.code, 0);
    await fn({
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function refreshOverTls(sb: Cafe24Sandbox, client: Deno.HttpClient, mallId: string) {
  const t = sb.issueTokens(mallId).refreshToken;
  const response = await fetch(`${sb.url}/${mallId}/api/v2/oauth/token`, {
    method: "POST",
    headers: { authorization: basic() },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: t }),
    client,
  });
  assert.equal(response.status, 200);
  assert.equal(typeof (await response.json()).refresh_token, "string");
}

Deno.test("serves HTTPS when given a certificate", { ignore: noOpenssl }, async () => {
  await withCertificate(async (tls) => {
    await withSandbox(async (sb) => {
      assert.match(sb.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const client = Deno.createHttpClient({ caCerts: [tls.cert] });
      try {
        await refreshOverTls(sb, client, "tlsmall");
      } finally {
        client.close();
      }
    }, { tls });
  });
});

// Each mall has its own host at Cafe24, so every refresh opens a connection and pays a TLS
// handshake. Over HTTP/2 a client would multiplex every request on one connection, whatever
// Connection: close says, and a benchmark would never pay one.
Deno.test("over HTTPS, closeConnections gives every request a connection of its own", {
  ignore: noOpenssl,
}, async () => {
  await withCertificate(async (tls) => {
    await withSandbox(async (sb) => {
      const { hostname, port } = new URL(sb.url);
      const conn = await Deno.connectTls({
        hostname,
        port: Number(port),
        caCerts: [tls.cert],
        alpnProtocols: ["h2", "http/1.1"],
      });
      try {
        assert.equal((await conn.handshake()).alpnProtocol, "http/1.1");
      } finally {
        conn.close();
      }
      // A client that prefers HTTP/2 gets HTTP/1.1, reads Connection: close and opens a new
      // connection for each request.
      const client = Deno.createHttpClient({ caCerts: [tls.cert] });
      try {
        for (const mall of ["tlsone", "tlstwo", "tlsthree"]) await refreshOverTls(sb, client, mall);
      } finally {
        client.close();
      }
      assert.equal(sb.counters().tlsConnections, 1 + 3);
      assert.equal(sb.counters().refreshSuccesses, 3);
    }, { tls, closeConnections: true });
  });
});

Deno.test("standalone: prints its URL, serves, stops on SIGTERM", async () => {
  const script = new URL("../../../local/cafe24_sandbox.ts", import.meta.url).pathname;
  // The control token comes from the environment: a flag would show in the process list.
  const controlToken = "standalone-control-token-0123456789";
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-env=CAFE24_SANDBOX_CONTROL_TOKEN",
      script,
      "--port",
      "0",
      "--client-id",
      CLIENT_ID,
      "--client-secret",
      CLIENT_SECRET,
      "--redirect-uri",
      REDIRECT,
      "--seed",
      "3",
      "--latency-ms",
      "1",
      "--quiet",
      "--consent-page",
      "--independent-grants",
      "--app-deleted-refresh",
      "forbidden",
    ],
    env: { CAFE24_SANDBOX_CONTROL_TOKEN: controlToken },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const stderrText = (async () => {
    let all = "";
    for (let r = await stderr.read(); !r.done; r = await stderr.read()) all += r.value;
    return all;
  })();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let out = "";
    while (!out.includes("\n")) {
      const chunk = await reader.read();
      if (chunk.done) break;
      out += chunk.value;
    }
    const url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    assert.ok(url, `no URL in ${JSON.stringify(out)}`);
    const auth = { authorization: `Bearer ${controlToken}` };
    const refused = await fetch(`${url}/__sandbox/malls`, {
      method: "POST",
      body: JSON.stringify({ mall_id: "cli" }),
    });
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const created = await (await fetch(`${url}/__sandbox/malls`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ mall_id: "cli" }),
    })).json();
    const refreshed = await fetch(`${url}/cli/api/v2/oauth/token`, {
      method: "POST",
      headers: { authorization: basic() },
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: created.refreshToken,
      }),
    });
    assert.equal(refreshed.status, 200);
    await refreshed.body?.cancel();
    assert.deepEqual(await (await fetch(`${url}/__sandbox/settings`, { headers: auth })).json(), {
      consent_page: true,
      new_grant_revokes_older_pairs: false,
      app_deleted_refresh: "forbidden",
      write_scope_grants_read: false,
    });
    assert.match(out, /^cafe24-sandbox listening on http:\/\/127\.0\.0\.1:\d+\n$/);
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    for (let r = await reader.read(); !r.done; r = await reader.read()) { /* drain */ }
    const errors = await stderrText;
    assert.equal(status.code, 0, errors);
    // --quiet silences the sandbox. Deno itself may still print its one-time request.signal
    // legacy-abort notice (latency reads the signal), which is not the sandbox's output.
    assert.ok(!errors.includes("[cafe24-sandbox]"), errors);
  }
});

Deno.test("logs name requests but never tokens, codes or secrets; quiet logs nothing", async () => {
  for (const quiet of [false, true]) {
    const lines: string[] = [];
    const original = { error: console.error, log: console.log, warn: console.warn };
    const capture = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
    console.error = console.log = console.warn = capture;
    const secrets: string[] = [CLIENT_SECRET];
    try {
      await withSandbox(async (sb) => {
        sb.addMall("loudmall");
        const auth = await authorize(sb, "loudmall");
        const code = auth.location!.searchParams.get("code")!;
        secrets.push(code);
        const exchanged = await answer(
          await tokenFetch(sb, "loudmall", {
            grant_type: "authorization_code",
            code,
            redirect_uri: REDIRECT,
          }),
        );
        secrets.push(exchanged.json.access_token, exchanged.json.refresh_token);
        const refreshed = await refresh(sb, "loudmall", exchanged.json.refresh_token);
        secrets.push(refreshed.json.access_token, refreshed.json.refresh_token);
        await refresh(sb, "loudmall", exchanged.json.refresh_token);
        sb.queueFaults("loudmall", ["server_error"]);
        await refresh(sb, "loudmall", refreshed.json.refresh_token);
        await shops(sb, "loudmall", refreshed.json.access_token);
        await revoke(sb, "loudmall", { token: refreshed.json.access_token });
        const created = await control(sb, "POST", "malls", { mall_id: "loudtwo" });
        secrets.push(created.json.accessToken, created.json.refreshToken);
        await control(sb, "GET", "malls/loudtwo/live");
      }, { quiet });
    } finally {
      Object.assign(console, original);
    }
    if (quiet) {
      assert.deepEqual(lines, []);
    } else {
      assert.ok(lines.some((l) => l.includes("/loudmall/api/v2/oauth/token")), lines.join("\n"));
      for (const secret of secrets) {
        assert.ok(!lines.some((l) => l.includes(secret)), `leaked ${secret}`);
      }
    }
  }
});

Deno.test("the refresh log records each refresh request's outcome, never a token", async () => {
  await withSandbox(async (sb) => {
    const first = sb.issueTokens("logged").refreshToken;
    const before = sb.clock.now();
    const ok = await refresh(sb, "logged", first);
    assert.equal(ok.status, 200);
    sb.queueFaults("logged", ["server_error"]);
    assert.equal((await refresh(sb, "logged", ok.json.refresh_token)).status >= 500, true);
    assert.equal((await refresh(sb, "logged", first)).status, 400);
    const log = sb.refreshLog();
    assert.deepEqual(
      log.map((e) => [e.mallId, e.presented, e.outcome, e.fault]),
      [
        ["logged", "live", "issued", null],
        ["logged", "live", "fault", "server_error"],
        ["logged", "rotated_out", "invalid_grant", null],
      ],
    );
    for (const entry of log) {
      assert.ok(entry.receivedAtMs >= before && entry.settledAtMs >= entry.receivedAtMs);
    }
    assert.ok(!JSON.stringify(log).includes(first));
    const overHttp = await control(sb, "GET", "log");
    assert.equal(overHttp.json.entries.length, 3);
    sb.resetCounters();
    assert.deepEqual(sb.refreshLog(), []);
  });
});

Deno.test("a refresh committed after the client left is logged as lost", async () => {
  await withSandbox(async (sb) => {
    const t = sb.issueTokens("lostlog").refreshToken;
    sb.setFaults("lostlog", { latencyMs: 300 });
    await assert.rejects(() =>
      tokenFetch(sb, "lostlog", { grant_type: "refresh_token", refresh_token: t }, "basic", {
        signal: AbortSignal.timeout(100),
      })
    );
    await waitFor("the abandoned request's outcome", () => sb.refreshLog().length > 0);
    assert.deepEqual(sb.refreshLog().map((e) => e.outcome), ["lost"]);
    assert.equal(sb.counters().lostResponses, 1);
  }, { commitOnClientAbort: true });
});

Deno.test("closeConnections: every answer closes its connection", async () => {
  await withSandbox(async (sb) => {
    const t = sb.issueTokens("closing").refreshToken;
    const response = await tokenFetch(sb, "closing", {
      grant_type: "refresh_token",
      refresh_token: t,
    });
    assert.equal(response.headers.get("connection"), "close");
    await response.body?.cancel();
    const redirect = await authorize(sb, "closing");
    assert.equal(redirect.status, 302);
    assert.equal(redirect.answer.headers.get("connection"), "close");
  }, { closeConnections: true });
});

// --- Grants, revocation, consent, uninstall, request log -------------------------------------

async function revoke(
  sb: Cafe24Sandbox,
  mall: string,
  params: Record<string, string>,
  auth: Auth = "basic",
): Promise<Answer> {
  const body = new URLSearchParams(params);
  const headers: Record<string, string> = {
    "content-type": "application/x-www-form-urlencoded",
  };
  if (auth === "basic") headers.authorization = basic();
  else if (auth === "body") {
    body.set("client_id", CLIENT_ID);
    body.set("client_secret", CLIENT_SECRET);
  } else if (auth !== "none") headers.authorization = basic(CLIENT_ID, auth.secret);
  return await answer(
    await fetch(`${sb.url}/${mall}/api/v2/oauth/revoke`, { method: "POST", headers, body }),
  );
}

/** A full authorization: authorize (instant redirect) and the code exchange. */
async function connect(sb: Cafe24Sandbox, mall: string): Promise<Answer> {
  const code = (await authorize(sb, mall)).location!.searchParams.get("code")!;
  return await answer(
    await tokenFetch(sb, mall, { grant_type: "authorization_code", code, redirect_uri: REDIRECT }),
  );
}

Deno.test("a new grant supersedes the older pair: rejected like a revoked token, not reuse", async () => {
  await withSandbox(async (sb) => {
    sb.addMall("regrant");
    const first = await connect(sb, "regrant");
    assert.equal(first.status, 200, first.text);
    const rotated = await refresh(sb, "regrant", first.json.refresh_token);
    assert.equal(rotated.status, 200);
    const second = await connect(sb, "regrant");
    assert.equal(second.status, 200, second.text);
    assert.deepEqual(
      sb.livePairs("regrant").map((p) => p.refreshToken),
      [second.json.refresh_token],
    );

    const superseded = await refresh(sb, "regrant", rotated.json.refresh_token);
    assert.equal(superseded.status, 400);
    assert.deepEqual(superseded.json, {
      error: "invalid_grant",
      error_description: "Invalid refresh_token",
    });
    // The first grant's original token had been rotated out before: that one is still reuse.
    assert.equal((await refresh(sb, "regrant", first.json.refresh_token)).status, 400);
    assert.deepEqual(sb.refreshLog().map((e) => [e.presented, e.outcome]), [
      ["live", "issued"],
      ["superseded_by_grant", "invalid_grant"],
      ["rotated_out", "invalid_grant"],
    ]);
    const c = sb.counters();
    assert.equal(c.deadTokenReuses, 1);
    assert.equal(c.invalidGrants, 2);
    assert.equal((await refresh(sb, "regrant", second.json.refresh_token)).status, 200);
  });
});

Deno.test("independent grants: each pair rotates on its own until rotated, expired or revoked", async () => {
  await withSandbox(async (sb) => {
    sb.addMall("multi");
    const a = await connect(sb, "multi");
    const b = await connect(sb, "multi");
    const pairs = sb.livePairs("multi");
    assert.deepEqual(pairs.map((p) => p.refreshToken), [
      a.json.refresh_token,
      b.json.refresh_token,
    ]);
    assert.notEqual(pairs[0]!.grantId, pairs[1]!.grantId);
    assert.equal(sb.liveRefreshToken("multi"), b.json.refresh_token, "the newest pair");

    // Refreshing A rotates A only: B keeps working, A's successor is now the newest pair.
    const a2 = await refresh(sb, "multi", a.json.refresh_token);
    assert.equal(a2.status, 200, a2.text);
    assert.equal(sb.liveRefreshToken("multi"), a2.json.refresh_token);
    const b2 = await refresh(sb, "multi", b.json.refresh_token);
    assert.equal(b2.status, 200, b2.text);
    const after = sb.livePairs("multi");
    assert.deepEqual(after.map((p) => p.refreshToken), [
      a2.json.refresh_token,
      b2.json.refresh_token,
    ]);
    assert.deepEqual(after.map((p) => p.grantId), pairs.map((p) => p.grantId), "grants kept");
    assert.equal((await shops(sb, "multi", a2.json.access_token)).status, 200);
    assert.equal((await shops(sb, "multi", b2.json.access_token)).status, 200);

    // A's rotated-out token is reuse, as with a single pair.
    assert.equal((await refresh(sb, "multi", a.json.refresh_token)).status, 400);
    assert.equal(sb.counters().byMall.multi!.deadTokenReuses, 1);

    // Revoking B's pair leaves A's.
    assert.equal(
      (await revoke(sb, "multi", { token: b2.json.refresh_token, token_hint: "refresh_token" }))
        .status,
      200,
    );
    assert.deepEqual(sb.livePairs("multi").map((p) => p.refreshToken), [a2.json.refresh_token]);
    assert.equal((await shops(sb, "multi", b2.json.access_token)).status, 401);
    assert.equal((await shops(sb, "multi", a2.json.access_token)).status, 200);

    // A grant with a short refresh lifetime expires alone.
    const short = sb.issueTokens("multi", { refreshTokenLifetimeMs: 1_000 });
    sb.clock.advance(2_000);
    assert.equal((await refresh(sb, "multi", short.refreshToken)).status, 400);
    const a3 = await refresh(sb, "multi", a2.json.refresh_token);
    assert.equal(a3.status, 200, a3.text);
    assert.deepEqual(
      sb.refreshLog().slice(-2).map((e) => [e.presented, e.outcome]),
      [["expired", "invalid_grant"], ["live", "issued"]],
    );
    assert.equal(sb.counters().refreshSuccesses, 3);

    const overHttp = await control(sb, "GET", "malls/multi/pairs");
    assert.deepEqual(
      overHttp.json.pairs.map((p: { refreshToken: string }) => p.refreshToken),
      sb.livePairs("multi").map((p) => p.refreshToken),
    );
    assert.equal((await control(sb, "GET", "malls/nomall/pairs")).status, 404);
  }, { newGrantRevokesOlderPairs: false });
});

Deno.test("grant mode per mall, through the control API; null follows the sandbox again", async () => {
  await withSandbox(async (sb) => {
    sb.issueTokens("permall");
    const set = await control(sb, "POST", "malls/permall/config", {
      new_grant_revokes_older_pairs: false,
    });
    assert.equal(set.status, 200, set.text);
    sb.issueTokens("permall");
    assert.equal(sb.livePairs("permall").length, 2);
    // Another mall still follows the sandbox-wide setting (true).
    sb.issueTokens("plainmall");
    sb.issueTokens("plainmall");
    assert.equal(sb.livePairs("plainmall").length, 1);

    await control(sb, "POST", "malls/permall/config", { new_grant_revokes_older_pairs: null });
    sb.issueTokens("permall");
    assert.equal(sb.livePairs("permall").length, 1);

    // The sandbox-wide setting changes at run time too.
    const settings = await control(sb, "POST", "settings", {
      new_grant_revokes_older_pairs: false,
    });
    assert.equal(settings.json.new_grant_revokes_older_pairs, false);
    sb.issueTokens("plainmall");
    assert.equal(sb.livePairs("plainmall").length, 2);
    assert.equal(sb.settings().newGrantRevokesOlderPairs, false);

    assert.equal((await control(sb, "POST", "malls/nomall/config", {})).status, 404);
    assert.equal(
      (await control(sb, "POST", "malls/permall/config", { app_deleted: "yes" })).status,
      400,
    );
    assert.equal((await control(sb, "POST", "settings", { consent_page: 1 })).status, 400);
    assert.equal(
      (await control(sb, "POST", "settings", { app_deleted_refresh: "maybe" })).status,
      400,
    );
  });
});

Deno.test("concurrent refreshes: the same pair twice is counted apart from two pairs of one mall", async () => {
  await withSandbox(async (sb) => {
    const a = sb.issueTokens("overlap");
    const b = sb.issueTokens("overlap");
    sb.setFaults("overlap", { latencyMs: 300 });
    const two = await Promise.all([
      refresh(sb, "overlap", a.refreshToken),
      refresh(sb, "overlap", b.refreshToken),
    ]);
    assert.deepEqual(two.map((r) => r.status), [200, 200]);
    let c = sb.counters();
    // The per-mall counter keeps its meaning (one refresher per mall); the pair counter is 0.
    assert.equal(c.concurrentRefreshViolations, 1);
    assert.equal(c.samePairConcurrentRefreshes, 0);

    const token = two[0]!.json.refresh_token;
    const same = await Promise.all([refresh(sb, "overlap", token), refresh(sb, "overlap", token)]);
    assert.deepEqual(same.map((r) => r.status).sort(), [200, 400]);
    c = sb.counters();
    assert.equal(c.samePairConcurrentRefreshes, 1);
    assert.equal(c.byMall.overlap!.samePairConcurrentRefreshes, 1);
    assert.equal(c.concurrentRefreshViolations, 2);
    assert.equal(c.deadTokenReuses, 1);

    // Faults still leave every pair as it was.
    sb.clearFaults();
    sb.queueFaults("overlap", ["server_error"]);
    const before = sb.livePairs("overlap").map((p) => p.refreshToken);
    assert.ok((await refresh(sb, "overlap", before[0]!)).status >= 500);
    assert.deepEqual(sb.livePairs("overlap").map((p) => p.refreshToken), before);
  }, { newGrantRevokesOlderPairs: false });
});

Deno.test("revoke: Basic auth, either half ends the pair, counted and logged", async () => {
  await withSandbox(async (sb) => {
    const byRefresh = sb.issueTokens("revmall");
    const revoked = await revoke(sb, "revmall", {
      token: byRefresh.refreshToken,
      token_hint: "refresh_token",
    });
    assert.equal(revoked.status, 200);
    assert.equal(revoked.text, "");
    assert.equal((await shops(sb, "revmall", byRefresh.accessToken)).status, 401);
    const rejected = await refresh(sb, "revmall", byRefresh.refreshToken);
    assert.equal(rejected.status, 400);
    assert.equal(rejected.json.error, "invalid_grant");

    const byAccess = sb.issueTokens("revmall");
    assert.equal(
      (await revoke(
        sb,
        "revmall",
        { token: byAccess.accessToken, token_hint: "access_token" },
        "body",
      ))
        .status,
      200,
    );
    assert.equal((await refresh(sb, "revmall", byAccess.refreshToken)).status, 400);
    assert.equal(sb.liveRefreshToken("revmall"), undefined);

    // A wrong hint is recorded as sent; the token is still found.
    const wrongHint = sb.issueTokens("revmall");
    await revoke(sb, "revmall", { token: wrongHint.accessToken, token_hint: "refresh_token" });
    // Control revocations are logged, not counted as the app's.
    const viaControl = sb.issueTokens("revmall");
    sb.revokeRefreshToken("revmall", viaControl.refreshToken);

    assert.deepEqual(
      sb.revocationLog().map((e) => [e.pairId, e.grantId, e.via, e.hint, e.matched]),
      [
        [byRefresh.pairId, byRefresh.grantId, "revoke_endpoint", "refresh_token", "refresh_token"],
        [byAccess.pairId, byAccess.grantId, "revoke_endpoint", "access_token", "access_token"],
        [wrongHint.pairId, wrongHint.grantId, "revoke_endpoint", "refresh_token", "access_token"],
        [viaControl.pairId, viaControl.grantId, "control", null, null],
      ],
    );
    const log = JSON.stringify(sb.revocationLog());
    for (const t of [byRefresh, byAccess, wrongHint, viaControl]) {
      assert.ok(!log.includes(t.refreshToken) && !log.includes(t.accessToken));
    }
    assert.deepEqual(
      sb.refreshLog().map((e) => [e.presented, e.pairId]),
      [["revoked", byRefresh.pairId], ["revoked", byAccess.pairId]],
    );
    const c = sb.counters();
    assert.equal(c.requests.revoke, 3);
    assert.equal(c.revokedPairs, 3);
    assert.equal(c.byMall.revmall!.revokedPairs, 3);
    assert.equal(c.deadTokenReuses, 0);
    assert.equal((await control(sb, "GET", "revocations")).json.entries.length, 4);
  });
});

Deno.test("revoke: refusals and no-ops change nothing", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("revedge");
    const params = { token: tokens.refreshToken, token_hint: "refresh_token" };
    const wrongSecret = await revoke(sb, "revedge", params, { secret: "nope" });
    assert.equal(wrongSecret.status, 401);
    assert.deepEqual(wrongSecret.json, {
      error: "invalid_grant",
      error_description: "Invalid client_secret",
    });
    assert.equal((await revoke(sb, "revedge", params, "none")).status, 401);
    const noToken = await revoke(sb, "revedge", { token_hint: "access_token" });
    assert.equal(noToken.status, 400);
    assert.equal(noToken.json.error, "invalid_request");
    const badHint = await revoke(sb, "revedge", { ...params, token_hint: "token_type_hint" });
    assert.equal(badHint.status, 400);
    assert.equal(sb.liveRefreshToken("revedge"), tokens.refreshToken);

    const unknown = await revoke(sb, "revedge", { token: "never-issued-token-xxxx" });
    assert.equal(unknown.status, 200);
    assert.equal(unknown.text, "");

    // The access token of a pair that already rotated dies alone; the live pair stays.
    const next = await refresh(sb, "revedge", tokens.refreshToken);
    assert.equal((await shops(sb, "revedge", tokens.accessToken)).status, 200);
    await revoke(sb, "revedge", { token: tokens.accessToken, token_hint: "access_token" });
    assert.equal((await shops(sb, "revedge", tokens.accessToken)).status, 401);
    assert.equal(sb.liveRefreshToken("revedge"), next.json.refresh_token);

    assert.deepEqual(
      sb.requestLog().filter((e) => e.kind === "revoke").map((e) => [e.status, e.outcome]),
      [
        [401, "client_auth_failed"],
        [401, "client_auth_failed"],
        [400, "invalid_request"],
        [400, "invalid_request"],
        [200, "no_match"],
        [200, "access_token_revoked"],
      ],
    );
    assert.deepEqual(sb.revocationLog(), []);
    assert.equal(sb.counters().revokedPairs, 0);
    assert.equal(sb.counters().clientAuthFailures, 2);
  });
});

function consentForm(html: string): { action: string; consent: string } {
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
  const consent = /name="consent" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(action && consent, html);
  return { action, consent };
}

async function decide(
  sb: Cafe24Sandbox,
  action: string,
  fields: Record<string, string>,
): Promise<{ status: number; location: URL | null; answer: Answer }> {
  const response = await fetch(`${sb.url}${action}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
    redirect: "manual",
  });
  const location = response.headers.get("location");
  return {
    status: response.status,
    location: location === null ? null : new URL(location),
    answer: await answer(response),
  };
}

Deno.test("consent page: mall, client id and scopes; unframeable; Approve gives a code", async () => {
  await withSandbox(async (sb) => {
    sb.addMall("consenting");
    const page = await authorize(sb, "consenting", { scope: "mall.read_store,<b>x</b>" });
    assert.equal(page.status, 200, page.answer.text);
    assert.equal(page.location, null);
    const headers = page.answer.headers;
    assert.match(headers.get("content-type")!, /^text\/html/);
    assert.match(headers.get("content-security-policy")!, /frame-ancestors 'none'/);
    assert.match(headers.get("content-security-policy")!, /default-src 'none'/);
    assert.equal(headers.get("x-frame-options"), "DENY");
    const html = page.answer.text;
    assert.match(html, /<span id="mall">consenting<\/span>/);
    assert.match(html, new RegExp(`<code id="client-id">${CLIENT_ID}</code>`));
    assert.match(html, /<li>mall\.read_store<\/li><li>&lt;b&gt;x&lt;\/b&gt;<\/li>/);
    assert.ok(!html.includes("<b>x</b>"), "scopes are escaped");
    assert.match(html, /<button type="submit" id="approve"[^>]*>Approve<\/button>/);
    assert.match(html, /<button type="submit" id="deny"[^>]*>Deny<\/button>/);
    assert.ok(!/\b(src|href)=|<script|https?:/.test(html), "no external resources");

    const { action, consent } = consentForm(html);
    assert.equal(action, "/consenting/api/v2/oauth/authorize");
    const approved = await decide(sb, action, { consent, decision: "approve" });
    assert.equal(approved.status, 302);
    assert.equal(`${approved.location!.origin}${approved.location!.pathname}`, REDIRECT);
    assert.equal(approved.location!.searchParams.get("state"), "st@te 1/2");
    const code = approved.location!.searchParams.get("code")!;
    const exchanged = await answer(
      await tokenFetch(sb, "consenting", {
        grant_type: "authorization_code",
        code,
        redirect_uri: REDIRECT,
      }),
    );
    assert.equal(exchanged.status, 200, exchanged.text);
    assert.deepEqual(exchanged.json.scopes, ["mall.read_store", "<b>x</b>"]);

    // A decision is used once.
    const replay = await decide(sb, action, { consent, decision: "approve" });
    assert.equal(replay.status, 400);
    assert.equal(replay.location, null);
    assert.equal(replay.answer.json.error, "invalid_request");
    const c = sb.counters().requests;
    assert.equal(c.authorize, 1);
    assert.equal(c.consent, 2);
  }, { consentPage: true });
});

Deno.test("consent page: Deny redirects with access_denied; validation still comes first", async () => {
  await withSandbox(async (sb) => {
    sb.addMall("refusing");
    const mismatch = await authorize(sb, "refusing", { redirect_uri: `${REDIRECT}/` });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.answer.json.error, "invalid_request");
    assert.equal((await authorize(sb, "refusing", { client_id: "someone" })).status, 400);

    const page = await authorize(sb, "refusing");
    const { action, consent } = consentForm(page.answer.text);
    const denied = await decide(sb, action, { consent, decision: "deny" });
    assert.equal(denied.status, 302);
    assert.equal(`${denied.location!.origin}${denied.location!.pathname}`, REDIRECT);
    assert.equal(denied.location!.searchParams.get("error"), "access_denied");
    assert.ok(denied.location!.searchParams.get("error_description"));
    assert.equal(denied.location!.searchParams.get("state"), "st@te 1/2");
    assert.equal(denied.location!.searchParams.get("code"), null);

    // Unknown decision, unknown consent, a consent left too long.
    const other = consentForm((await authorize(sb, "refusing")).answer.text);
    assert.equal(
      (await decide(sb, action, { consent: other.consent, decision: "maybe" })).status,
      400,
    );
    assert.equal((await decide(sb, action, { consent: "nope", decision: "approve" })).status, 400);
    sb.clock.advance(10 * 60_000);
    assert.equal(
      (await decide(sb, action, { consent: other.consent, decision: "approve" })).status,
      400,
    );

    // A mall configured to deny skips the page; switching the page off restores instant codes.
    sb.addMall("denier", { denyAuthorization: true });
    const instantDeny = await authorize(sb, "denier");
    assert.equal(instantDeny.status, 302);
    assert.equal(instantDeny.location!.searchParams.get("error"), "access_denied");
    await control(sb, "POST", "settings", { consent_page: false });
    const instant = await authorize(sb, "refusing");
    assert.equal(instant.status, 302);
    assert.ok(instant.location!.searchParams.get("code"));
    assert.deepEqual(
      sb.requestLog().filter((e) => e.mallId === "refusing").map((e) => [e.kind, e.outcome]),
      [
        ["authorize", "invalid_request"],
        ["authorize", "invalid_request"],
        ["authorize", "consent_page"],
        ["consent", "denied"],
        ["authorize", "consent_page"],
        ["consent", "invalid_request"],
        ["consent", "invalid_request"],
        ["consent", "invalid_request"],
        ["authorize", "code"],
      ],
    );
  }, { consentPage: true });
});

Deno.test("app deleted: Admin API 403 told apart from a missing scope; refresh invalid_grant", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("gonemall");
    const set = await control(sb, "POST", "malls/gonemall/config", { app_deleted: true });
    assert.equal(set.status, 200, set.text);

    const gone = await shops(sb, "gonemall", tokens.accessToken);
    assert.equal(gone.status, 403);
    assert.deepEqual(gone.json, { error: { code: 403, message: APP_DELETED_MESSAGE } });
    sb.addMall("narrow", { scopes: ["mall.read_product"] });
    const scope = await shops(sb, "narrow", sb.issueTokens("narrow").accessToken);
    assert.equal(scope.status, 403);
    assert.deepEqual(scope.json, { error: { code: 403, message: INSUFFICIENT_SCOPE_MESSAGE } });
    assert.notEqual(APP_DELETED_MESSAGE, INSUFFICIENT_SCOPE_MESSAGE);
    // Any Admin API path, not only shops; an invalid token is still a 401 first.
    const products = await answer(
      await fetch(`${sb.url}/gonemall/api/v2/admin/products`, {
        headers: { authorization: `Bearer ${tokens.accessToken}` },
      }),
    );
    assert.equal(products.status, 403);
    assert.equal(products.json.error.message, APP_DELETED_MESSAGE);
    assert.equal((await shops(sb, "gonemall", "not-a-token")).status, 401);

    const refused = await refresh(sb, "gonemall", tokens.refreshToken);
    assert.equal(refused.status, 400);
    assert.deepEqual(refused.json, {
      error: "invalid_grant",
      error_description: "Invalid refresh_token",
    });
    assert.equal(sb.liveRefreshToken("gonemall"), tokens.refreshToken, "nothing rotated");
    assert.deepEqual(sb.refreshLog().map((e) => [e.presented, e.outcome]), [
      ["live", "app_deleted"],
    ]);
    assert.equal(sb.counters().invalidGrants, 1);

    // Reinstalling (a completed authorization) ends the 403s.
    const reconnected = await connect(sb, "gonemall");
    assert.equal(reconnected.status, 200, reconnected.text);
    assert.equal((await shops(sb, "gonemall", reconnected.json.access_token)).status, 200);
    const unknownPath = await answer(
      await fetch(`${sb.url}/gonemall/api/v2/admin/orders`, {
        headers: { authorization: `Bearer ${reconnected.json.access_token}` },
      }),
    );
    assert.equal(unknownPath.status, 404);
    assert.deepEqual(
      sb.requestLog().filter((e) => e.mallId === "gonemall").map((e) => [e.kind, e.outcome]),
      [
        ["shops", "app_deleted"],
        ["other", "app_deleted"],
        ["shops", "invalid_token"],
        ["token_refresh", "app_deleted"],
        ["authorize", "code"],
        ["token_code", "issued"],
        ["shops", "ok"],
        ["other", "not_found"],
      ],
    );
  });
});

Deno.test("app deleted: the token endpoint's answer is configurable", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("gonetwo", {});
    sb.addMall("gonetwo", { appDeleted: true });
    const forbidden = await refresh(sb, "gonetwo", tokens.refreshToken);
    assert.equal(forbidden.status, 403);
    assert.deepEqual(forbidden.json, { error: { code: 403, message: APP_DELETED_MESSAGE } });
    assert.equal(sb.liveRefreshToken("gonetwo"), tokens.refreshToken);

    sb.configure({ appDeletedRefresh: "issued" });
    const issued = await refresh(sb, "gonetwo", tokens.refreshToken);
    assert.equal(issued.status, 200, issued.text);
    assert.equal((await shops(sb, "gonetwo", issued.json.access_token)).status, 403);
    // A rotated-out token is still reuse while the app is gone.
    sb.configure({ appDeletedRefresh: "invalid_grant" });
    assert.equal((await refresh(sb, "gonetwo", tokens.refreshToken)).status, 401);
    assert.equal(sb.counters().deadTokenReuses, 1);
    assert.deepEqual(sb.refreshLog().map((e) => e.outcome), [
      "app_deleted",
      "issued",
      "app_deleted",
    ]);
    assert.throws(() => sb.configure({ appDeletedRefresh: "nope" as never }));
    assert.equal(sb.settings().appDeletedRefresh, "invalid_grant");
  }, { appDeletedRefresh: "forbidden", invalidGrantStatus: 401 });
});

Deno.test("request log: every mall request in order, after a sequence number", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("seqmall");
    await shops(sb, "seqmall", tokens.accessToken);
    const first = sb.requestLog();
    assert.equal(first.length, 1);
    const mark = first[0]!.seq;
    const before = sb.clock.now();
    await refresh(sb, "seqmall", tokens.refreshToken);
    await answer(await fetch(`${sb.url}/nosuchmall/api/v2/admin/shops`));
    await answer(await fetch(`${sb.url}/seqmall/api/v2/oauth/token`));
    await control(sb, "GET", "counters"); // control requests are not logged
    const later = sb.requestLog(mark);
    assert.deepEqual(
      later.map((e) => [e.seq - mark, e.kind, e.mallId, e.method, e.status, e.outcome]),
      [
        [1, "token_refresh", "seqmall", "POST", 200, "issued"],
        [2, "other", null, "GET", 404, "unknown_mall"],
        [3, "other", "seqmall", "GET", 405, "method_not_allowed"],
      ],
    );
    for (const entry of later) assert.ok(entry.atMs >= before);
    assert.ok(!JSON.stringify(sb.requestLog()).includes(tokens.refreshToken));

    const overHttp = await control(sb, "GET", `requests?since=${mark + 1}`);
    assert.deepEqual(overHttp.json.entries.map((e: { seq: number }) => e.seq), [
      mark + 2,
      mark + 3,
    ]);
    assert.equal(overHttp.json.last_seq, mark + 3);
    assert.equal((await control(sb, "GET", "requests?since=-1")).status, 400);

    // A reset empties the log but the sequence goes on, so `since` stays meaningful.
    sb.resetCounters();
    assert.deepEqual(sb.requestLog(), []);
    await shops(sb, "seqmall", tokens.accessToken);
    assert.deepEqual(sb.requestLog(mark + 3).map((e) => e.seq), [mark + 4]);
  });
});

Deno.test("request log: a waiting reader wakes on the next request, or times out empty", async () => {
  await withSandbox(async (sb) => {
    const tokens = sb.issueTokens("waitmall");
    const idle = await control(sb, "GET", "requests?since=0&wait_ms=50");
    assert.deepEqual(idle.json, { entries: [], last_seq: 0 });

    const started = performance.now();
    const waiting = control(sb, "GET", "requests?since=0&wait_ms=20000");
    // Give the long poll time to register before the request it waits for.
    const first = await sb.waitForRequests(0, 100);
    assert.deepEqual(first, []);
    await shops(sb, "waitmall", tokens.accessToken);
    const woke = await waiting;
    assert.ok(performance.now() - started < 10_000);
    assert.deepEqual(woke.json.entries.map((e: { kind: string }) => e.kind), ["shops"]);
    assert.equal(woke.json.last_seq, 1);

    // In process, the same wait.
    const pending = sb.waitForRequests(1, 20_000);
    await refresh(sb, "waitmall", tokens.refreshToken);
    assert.deepEqual((await pending).map((e) => [e.seq, e.outcome]), [[2, "issued"]]);
  });
});

Deno.test("close() releases a reader waiting on the request log", async () => {
  const sb = await startCafe24Sandbox({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    quiet: true,
  });
  const pending = sb.waitForRequests(0, 60_000);
  const started = performance.now();
  await sb.close();
  assert.deepEqual(await pending, []);
  assert.ok(performance.now() - started < 5_000);
});
