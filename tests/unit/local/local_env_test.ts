import assert from "node:assert/strict";
import { LocalEnv, randomSecret } from "../../../local/stack/local_env.ts";

Deno.test("LocalEnv lets the shell's variables win over the .env file", () => {
  const env = new LocalEnv({ A: "file", B: "file" }, { B: "shell" });
  assert.equal(env.get("A"), "file");
  assert.equal(env.get("B"), "shell");
});

Deno.test("LocalEnv uses the real Cafe24 only with an id, a secret and no other base URL", () => {
  const creds = { CAFE24_CLIENT_ID: "id", CAFE24_CLIENT_SECRET_KEY: "secret" };
  assert.equal(new LocalEnv(creds, {}).usesRealCafe24, true);
  assert.equal(
    new LocalEnv({ ...creds, CAFE24_API_BASE_URL: "https://{mall_id}.cafe24api.com" }, {})
      .usesRealCafe24,
    true,
  );
  assert.equal(
    new LocalEnv({ ...creds, CAFE24_API_BASE_URL: "http://127.0.0.1:1/{mall_id}" }, {})
      .usesRealCafe24,
    false,
  );
  assert.equal(new LocalEnv({ CAFE24_CLIENT_ID: "id" }, {}).usesRealCafe24, false);
  assert.equal(new LocalEnv({ ...creds, CAFE24_CLIENT_SECRET_KEY: "" }, {}).usesRealCafe24, false);
});

Deno.test("LocalEnv.fallback fills only unset (or empty) names and records generated ones", () => {
  const env = new LocalEnv({ CRON_SECRET: "", KEEP: "mine" }, {});
  env.fallback("CRON_SECRET", "generated", { generated: true });
  env.fallback("KEEP", "other", { generated: true });
  env.fallback("QUIET", "default");
  assert.equal(env.get("CRON_SECRET"), "generated");
  assert.equal(env.get("KEEP"), "mine");
  assert.equal(env.get("QUIET"), "default");
  assert.deepEqual(env.generated, ["CRON_SECRET"]);
});

Deno.test("LocalEnv.force overrides and reports names the user had set to something else", () => {
  const env = new LocalEnv({ SUPABASE_DB_URL: "postgresql://prod", SAME: "x" }, {});
  env.force("SUPABASE_DB_URL", "postgresql://local");
  env.force("SAME", "x");
  env.force("NEW", "y");
  assert.equal(env.get("SUPABASE_DB_URL"), "postgresql://local");
  assert.deepEqual(env.replaced, ["SUPABASE_DB_URL"]);
});

Deno.test("randomSecret() returns 43 base64url characters, different each time", () => {
  const a = randomSecret();
  assert.match(a, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, randomSecret());
});
