/**
 * .env.example documents every variable the functions read: each name in config.ts's schema
 * appears there as `NAME=` (set or commented out), and the file parses as a .env.
 */
import assert from "node:assert/strict";
import { parseEnvFile } from "../../local/stack/env_file.ts";

const root = new URL("../../", import.meta.url);

Deno.test(".env.example documents every variable in the functions' config schema", async () => {
  const config = await Deno.readTextFile(
    new URL("supabase/functions/_shared/platform/config.ts", root),
  );
  const schema = config.slice(
    config.indexOf("const EnvSchema"),
    config.indexOf("});", config.indexOf("const EnvSchema")),
  );
  const names = [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 10, `found only ${names.join(", ")} in config.ts`);
  const example = await Deno.readTextFile(new URL(".env.example", root));
  const missing = names.filter((name) => !new RegExp(`^#? ?${name}=`, "m").test(example));
  assert.deepEqual(missing, [], `.env.example lacks ${missing.join(", ")}`);
});

Deno.test(".env.example parses as a .env file and sets no SUPABASE_ variable", async () => {
  const env = parseEnvFile(await Deno.readTextFile(new URL(".env.example", root)));
  assert.deepEqual(Object.keys(env).filter((name) => name.startsWith("SUPABASE_")), []);
});
