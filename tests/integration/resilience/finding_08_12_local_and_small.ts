/**
 * Finding 8: the local stack. Every local server refuses a Host other than its own loopback
 * address (DNS rebinding), and the two routes that hand out something live — the settings page's
 * /demo-session and the sandbox's control API — want the per-start token.
 * Finding 12: the smaller ones. Only a 403 that says the app was deleted (`삭제`, deleted, not
 * installed, uninstalled, removed) disconnects; deploy:check warns while the legacy service_role
 * key is accepted beside secret keys; a signed-in user's authorize calls are counted, not logged
 * one line each.
 */
import assert from "node:assert/strict";
import { rawRequest } from "../../support/raw_http.ts";
import { startCafe24Sandbox } from "../../../local/cafe24_sandbox.ts";
import { startSettingsPage } from "../../../local/settings_page/server.ts";
import { newControlToken } from "../../../local/local_access.ts";
import { classifyAppAccess } from "../../../supabase/functions/_shared/cafe24/app_status.ts";
import { legacyKeyVerdict } from "../../../scripts/deploy_check.ts";
import { startTestAuth } from "../../support/auth.ts";
import { connectStackOptions, startRefreshStack } from "../../support/stack.ts";

export async function finding08(t: Deno.TestContext): Promise<void> {
  const sandbox = await startCafe24Sandbox({
    clientId: "client",
    clientSecret: "secret-0123456789",
    quiet: true,
  });
  const page = startSettingsPage({
    port: 0,
    supabaseUrl: "http://127.0.0.1:9",
    anonKey: "anon",
    demoUsers: [{ key: "owner", id: crypto.randomUUID(), email: "o@demo.local", label: "o" }],
    mintAccessToken: () => Promise.resolve("a-session"),
    controlToken: newControlToken(),
  });
  try {
    await t.step("a rebound Host is refused by the sandbox and the settings page", async () => {
      for (const url of [`${sandbox.url}/__sandbox/settings`, page.url]) {
        const port = new URL(url).port;
        const answer = await rawRequest(url, { host: `rebind.example:${port}` });
        assert.equal(answer.status, 421, url);
      }
    });
    await t.step("the sandbox's control API wants the per-start token", async () => {
      const without = await fetch(`${sandbox.url}/__sandbox/settings`);
      assert.equal(without.status, 401);
      await without.body?.cancel();
      const withToken = await fetch(`${sandbox.url}/__sandbox/settings`, {
        headers: { authorization: `Bearer ${sandbox.controlToken}` },
      });
      assert.equal(withToken.status, 200);
      await withToken.body?.cancel();
    });
    await t.step("/demo-session with a forged Origin and no key cookie mints nothing", async () => {
      const forged = await fetch(`${page.origin}/demo-session`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: page.origin },
        body: JSON.stringify({ user: "owner" }),
      });
      assert.equal(forged.status, 403);
      assert.deepEqual(await forged.json(), { error: "DEMO_KEY_REQUIRED" });
    });
  } finally {
    await page.close();
    await sandbox.close();
  }
}

export async function finding12(t: Deno.TestContext): Promise<void> {
  await t.step("only a deleted app's 403 disconnects; 'expired' and 'disabled' do not", () => {
    const body = (message: string) => JSON.stringify({ error: { code: 403, message } });
    assert.equal(
      classifyAppAccess(403, body("쇼핑몰에서 해당 앱이 삭제되었습니다.")),
      "app_deleted",
    );
    assert.equal(classifyAppAccess(403, body("The app was deleted from the shop.")), "app_deleted");
    assert.notEqual(classifyAppAccess(403, body("The trial has expired.")), "app_deleted");
    assert.notEqual(classifyAppAccess(403, body("This API is disabled.")), "app_deleted");
  });
  await t.step("deploy:check warns while the legacy key is accepted beside secret keys", () => {
    const verdict = legacyKeyVerdict({ SUPABASE_SECRET_KEYS: '{"default":"sb_secret_x"}' });
    assert.equal(verdict?.warning, true);
    assert.match(verdict!.fix!, /CAFE24_ACCEPT_SERVICE_ROLE_KEY=false/);
  });
  await t.step("a signed-in user's 40 authorize calls are counted, not logged each", async () => {
    const auth = await startTestAuth();
    const stack = await startRefreshStack(connectStackOptions(auth));
    try {
      stack.sandbox.addMall("shopcount");
      const jwt = await auth.mint({ sub: crypto.randomUUID() });
      for (let i = 0; i < 40; i++) {
        const response = await fetch(
          `${stack.functions.url}/cafe24-authorize?mall_id=shopcount&mode=json`,
          { headers: { authorization: `Bearer ${jwt}` } },
        );
        assert.equal(response.status, 200);
        await response.body?.cancel();
      }
      const lines = stack.functions.output.filter((line) =>
        line.includes('"event":"cafe24_authorize_started"')
      );
      assert.ok(lines.length >= 1 && lines.length <= 2, `${lines.length} lines for 40 calls`);
    } finally {
      await stack.stop();
      await auth.close();
    }
  });
}
