import assert from "node:assert/strict";
import { presentsSecretApiKey } from "../../../supabase/functions/_shared/platform/api_keys.ts";
import { loadConfig } from "../../../supabase/functions/_shared/platform/config.ts";

const KEYS = JSON.stringify({ default: "sb_secret_primary_0123", rotated: "sb_secret_next_4567" });
const SERVICE_ROLE = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2ln";
const CRON = "cron-secret-abcdefghijklmnopqrstuvwxyz";

function config(env: Record<string, string> = {}) {
  const loaded = loadConfig({
    SUPABASE_SECRET_KEYS: KEYS,
    SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE,
    CRON_SECRET: CRON,
    ...env,
  }, []);
  if (!loaded.ok) throw new Error(loaded.names.join(","));
  return loaded.config;
}

function request(headers: Record<string, string>): Request {
  return new Request("https://functions.example/cafe24-disconnect", { method: "POST", headers });
}

Deno.test("presentsSecretApiKey() accepts every secret key, in apikey or as the bearer", () => {
  for (const key of ["sb_secret_primary_0123", "sb_secret_next_4567", SERVICE_ROLE]) {
    assert.equal(presentsSecretApiKey(request({ apikey: key }), config()), true, key);
    assert.equal(
      presentsSecretApiKey(request({ authorization: `Bearer ${key}` }), config()),
      true,
      key,
    );
  }
  // supabase-js sends the publishable key as apikey beside a secret bearer, and the other way.
  assert.equal(
    presentsSecretApiKey(
      request({ apikey: "sb_publishable_x", authorization: "Bearer sb_secret_primary_0123" }),
      config(),
    ),
    true,
  );
});

Deno.test("presentsSecretApiKey() refuses anything else", () => {
  for (
    const headers of [
      {},
      { apikey: "" },
      { apikey: "sb_secret_primary_012" },
      { apikey: "sb_secret_primary_01234" },
      { authorization: "sb_secret_primary_0123" },
      { authorization: "Basic sb_secret_primary_0123" },
      { "x-api-key": "sb_secret_primary_0123" },
      { apikey: KEYS },
      { apikey: "default" },
    ]
  ) {
    assert.equal(presentsSecretApiKey(request(headers), config()), false, JSON.stringify(headers));
  }
});

Deno.test("presentsSecretApiKey(): CAFE24_ACCEPT_SERVICE_ROLE_KEY=false closes the legacy key", () => {
  const strict = config({ CAFE24_ACCEPT_SERVICE_ROLE_KEY: "false" });
  assert.equal(presentsSecretApiKey(request({ apikey: SERVICE_ROLE }), strict), false);
  assert.equal(presentsSecretApiKey(request({ apikey: "sb_secret_next_4567" }), strict), true);
});

Deno.test("presentsSecretApiKey() never takes CRON_SECRET, even when a key equals it", () => {
  const confused = config({
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: CRON }),
    SUPABASE_SERVICE_ROLE_KEY: CRON,
  });
  assert.equal(presentsSecretApiKey(request({ apikey: CRON }), confused), false);
  assert.equal(presentsSecretApiKey(request({ authorization: `Bearer ${CRON}` }), config()), false);
});

Deno.test("presentsSecretApiKey() with no keys configured, or unreadable JSON, accepts nothing", () => {
  const none = loadConfig({}, []);
  assert.ok(none.ok);
  assert.equal(presentsSecretApiKey(request({ apikey: "anything" }), none.config), false);
  for (const json of ["not json", '["sb_secret_x"]', '"sb_secret_x"', "null", '{"a":1}']) {
    const odd = config({ SUPABASE_SECRET_KEYS: json, SUPABASE_SERVICE_ROLE_KEY: "" });
    assert.equal(presentsSecretApiKey(request({ apikey: "sb_secret_x" }), odd), false, json);
    assert.equal(presentsSecretApiKey(request({ apikey: "1" }), odd), false, json);
  }
});
