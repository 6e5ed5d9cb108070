import assert from "node:assert/strict";
import {
  eventWebhookSettings,
  loadConfig,
} from "../../../supabase/functions/_shared/platform/config.ts";

const SECRET = "s".repeat(32);

Deno.test("eventWebhookSettings(): off without a URL, the secret required with one", () => {
  const off = loadConfig({ CAFE24_EVENTS_WEBHOOK_SECRET: SECRET }, []);
  assert.ok(off.ok);
  assert.equal(eventWebhookSettings(off.config), null);
  const half = loadConfig({ CAFE24_EVENTS_WEBHOOK_URL: "https://app.example/hooks/cafe24" }, []);
  assert.ok(half.ok);
  assert.deepEqual(eventWebhookSettings(half.config), {
    missing: ["CAFE24_EVENTS_WEBHOOK_SECRET"],
  });
  const on = loadConfig({
    CAFE24_EVENTS_WEBHOOK_URL: "https://app.example/hooks/cafe24",
    CAFE24_EVENTS_WEBHOOK_SECRET: SECRET,
  }, []);
  assert.ok(on.ok);
  assert.deepEqual(eventWebhookSettings(on.config), {
    url: "https://app.example/hooks/cafe24",
    secret: SECRET,
  });
});

Deno.test("the webhook secret has at least 32 characters; the URL is http(s)", () => {
  const short = loadConfig({ CAFE24_EVENTS_WEBHOOK_SECRET: "s".repeat(31) }, []);
  assert.deepEqual(short, {
    ok: false,
    code: "CONFIG_INVALID",
    names: ["CAFE24_EVENTS_WEBHOOK_SECRET"],
    rules: [
      "CAFE24_EVENTS_WEBHOOK_SECRET must be a secret of at least 32 characters (openssl rand -base64 32)",
    ],
  });
  for (const url of ["ftp://app.example/x", "javascript:alert(1)", "not a url"]) {
    const bad = loadConfig({ CAFE24_EVENTS_WEBHOOK_URL: url }, []);
    assert.deepEqual(bad, {
      ok: false,
      code: "CONFIG_INVALID",
      names: ["CAFE24_EVENTS_WEBHOOK_URL"],
      rules: ["CAFE24_EVENTS_WEBHOOK_URL must be an http(s) URL: where connection events are sent"],
    }, url);
  }
});

Deno.test("CAFE24_ACCEPT_SERVICE_ROLE_KEY defaults to true and reads true/false", () => {
  const cases: [Record<string, string>, boolean][] = [
    [{}, true],
    [{ CAFE24_ACCEPT_SERVICE_ROLE_KEY: "true" }, true],
    [{ CAFE24_ACCEPT_SERVICE_ROLE_KEY: "false" }, false],
    [{ CAFE24_ACCEPT_SERVICE_ROLE_KEY: "" }, true],
  ];
  for (const [env, expected] of cases) {
    const loaded = loadConfig(env, []);
    assert.ok(loaded.ok);
    assert.equal(loaded.config.CAFE24_ACCEPT_SERVICE_ROLE_KEY, expected, JSON.stringify(env));
  }
  assert.equal(loadConfig({ CAFE24_ACCEPT_SERVICE_ROLE_KEY: "maybe" }, []).ok, false);
});
