/**
 * The settings page's server hands a session for any demo user to a browser that opened the page
 * from npm start's link: /demo-session wants the cookie that only the link's key (the stack's
 * control token) buys, besides the page's own Origin — a header any local process can forge.
 */
import assert from "node:assert/strict";
import {
  demoCookieName,
  type DemoUser,
  type SettingsPage,
  startSettingsPage,
} from "../../../local/settings_page/server.ts";
import { newControlToken } from "../../../local/local_access.ts";

const OWNER: DemoUser = {
  key: "owner",
  id: "00000000-0000-4000-b000-000000000001",
  email: "owner@demo.local",
  label: "owner@demo.local",
};

async function withPage(
  fn: (page: SettingsPage, token: string, minted: string[]) => Promise<void>,
): Promise<void> {
  const token = newControlToken();
  const minted: string[] = [];
  const page = startSettingsPage({
    port: 0,
    supabaseUrl: "http://127.0.0.1:9",
    anonKey: "anon",
    demoUsers: [OWNER],
    mintAccessToken: (user) => {
      minted.push(user.key);
      return Promise.resolve(`token-for-${user.key}`);
    },
    controlToken: token,
  });
  try {
    await fn(page, token, minted);
  } finally {
    await page.close();
  }
}

/** POST as the page's own script sends it, Origin included unless `origin` says otherwise. */
function post(
  page: SettingsPage,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${page.origin}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: page.origin, ...headers },
    body: JSON.stringify(body),
  });
}

async function exchange(page: SettingsPage, key: string): Promise<Response> {
  return await post(page, "/demo-key", { key });
}

Deno.test("/demo-session with a forged Origin but without the key's cookie is refused", async () => {
  await withPage(async (page, _token, minted) => {
    // What any local process can send: the page's Origin, no cookie, or a made-up one.
    for (
      const cookie of [
        undefined,
        `${demoCookieName(page.port)}=guess`,
        `${demoCookieName(page.port)}=`,
        `${demoCookieName(page.port + 1)}=guess`,
      ]
    ) {
      const refused = await post(
        page,
        "/demo-session",
        { user: OWNER.key },
        cookie === undefined ? {} : { cookie },
      );
      assert.equal(refused.status, 403, cookie);
      assert.deepEqual(await refused.json(), { error: "DEMO_KEY_REQUIRED" });
    }
    assert.deepEqual(minted, [], "no session was minted");
  });
});

Deno.test("/demo-key: the stack's token buys an HttpOnly, SameSite=Strict cookie; anything else nothing", async () => {
  await withPage(async (page, token, minted) => {
    for (const key of ["", "wrong", `${token}x`, token.slice(1)]) {
      const refused = await exchange(page, key);
      assert.equal(refused.status, 403, key);
      assert.deepEqual(await refused.json(), { error: "DEMO_KEY_INVALID" });
      assert.equal(refused.headers.get("set-cookie"), null);
    }
    const notJson = await fetch(`${page.origin}/demo-key`, {
      method: "POST",
      headers: { origin: page.origin },
      body: token,
    });
    assert.equal(notJson.status, 403);
    await notJson.body?.cancel();
    // From another origin, even with the right key: a page elsewhere cannot plant the cookie.
    const elsewhere = await post(page, "/demo-key", { key: token }, {
      origin: "http://rebind.example:54330",
    });
    assert.equal(elsewhere.status, 403);
    assert.equal(elsewhere.headers.get("set-cookie"), null);
    await elsewhere.body?.cancel();

    const granted = await exchange(page, token);
    assert.equal(granted.status, 204);
    const setCookie = granted.headers.get("set-cookie") ?? "";
    const [pair = "", ...attributes] = setCookie.split(";").map((part) => part.trim());
    const [name, value = ""] = pair.split("=");
    assert.equal(name, demoCookieName(page.port));
    assert.ok(value.length >= 32, "a random session key");
    assert.ok(!setCookie.includes(token), "the cookie is not the control token");
    assert.deepEqual(attributes.sort(), ["HttpOnly", "Path=/", "SameSite=Strict"]);

    // With the cookie: a session, but still only for the page's own Origin.
    const cookie = { cookie: `other=1; ${name}=${value}` };
    const foreign = await post(page, "/demo-session", { user: OWNER.key }, {
      ...cookie,
      origin: "http://rebind.example:54330",
    });
    assert.equal(foreign.status, 403);
    await foreign.body?.cancel();
    assert.deepEqual(minted, []);
    const session = await post(page, "/demo-session", { user: OWNER.key }, cookie);
    assert.equal(session.status, 200);
    const body = await session.json();
    assert.equal(body.access_token, "token-for-owner");
    assert.equal(body.user.id, OWNER.id);
    assert.deepEqual(minted, ["owner"]);
  });
});

Deno.test("the launch link carries the key in its fragment only", async () => {
  await withPage((page, token) => {
    const launch = new URL(page.launchUrl);
    assert.equal(`${launch.origin}${launch.pathname}${launch.search}`, page.url);
    assert.equal(new URLSearchParams(launch.hash.slice(1)).get("key"), token);
    assert.ok(!page.url.includes(token));
    return Promise.resolve();
  });
  assert.throws(
    () =>
      startSettingsPage({
        port: 0,
        supabaseUrl: "http://127.0.0.1:9",
        anonKey: "anon",
        demoUsers: [],
        mintAccessToken: () => Promise.resolve(""),
        controlToken: "short",
      }),
    /controlToken must be at least 16 characters/,
  );
});
