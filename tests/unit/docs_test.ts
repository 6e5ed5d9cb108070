/**
 * The README and docs/ as a user and an operator read them: the two commands are there, every
 * variable the functions read is documented, every file or link they point at exists in the
 * repository, and the deploy steps agree with the env files.
 */
import assert from "node:assert/strict";
import { parseEnvFile } from "../../local/stack/env_file.ts";
import { pathExists } from "../../local/files.ts";

const root = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

async function docs(): Promise<Map<string, string>> {
  const files = new Map([["README.md", await read("README.md")]]);
  for await (const entry of Deno.readDir(new URL("docs/", root))) {
    if (entry.name.endsWith(".md")) {
      files.set(`docs/${entry.name}`, await read(`docs/${entry.name}`));
    }
  }
  return files;
}

async function configNames(): Promise<string[]> {
  const config = await read("supabase/functions/_shared/platform/config.ts");
  const schema = config.slice(
    config.indexOf("const EnvSchema"),
    config.indexOf("});", config.indexOf("const EnvSchema")),
  );
  return [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]!);
}

Deno.test("the README gives npm test and npm start, the install script and the docs", async () => {
  const readme = await read("README.md");
  for (const command of ["npm test", "npm start", "scripts/install-prerequisites"]) {
    assert.ok(readme.includes(command), command);
  }
  const ci = await read(".ci/run");
  assert.match(ci, /^scripts\/install-prerequisites$/m);
  assert.match(ci, /^npm test$/m);
});

Deno.test("every variable the functions read is documented in the README or docs/", async () => {
  const names = await configNames();
  assert.ok(names.length >= 10, names.join(", "));
  const text = [...(await docs()).values()].join("\n");
  const missing = names.filter((name) => !text.includes(`\`${name}\``));
  assert.deepEqual(missing, [], `undocumented: ${missing.join(", ")}`);
});

Deno.test("the README and docs/ point only at files that are in the repository", async () => {
  const missing: string[] = [];
  for (const [file, text] of await docs()) {
    const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "";
    // Markdown links to files.
    for (const [, target] of text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      const path = new URL(target!, new URL(dir, root)).pathname.slice(root.pathname.length);
      if (!(await pathExists(new URL(path, root)))) missing.push(`${file}: ${target}`);
    }
    // Paths in code spans that name a file of this repository.
    for (
      const [, path] of text.matchAll(/`((?:supabase|scripts|local|tests|bench|docs)\/[\w./-]+)`/g)
    ) {
      const clean = path!.replace(/\/$/, "");
      if (clean.includes("<") || /\.env\.production$/.test(clean)) continue; // made by the user
      if (!(await pathExists(new URL(clean, root)))) missing.push(`${file}: ${clean}`);
    }
    if (/shared\/docs|\.\.\/shared/.test(text)) missing.push(`${file}: refers to shared/`);
  }
  assert.deepEqual(missing, []);
});

Deno.test("one scope list, and one way to generate secrets, across README and env files", async () => {
  const local = parseEnvFile(await read(".env.example"));
  const hosted = parseEnvFile(await read("supabase/functions/.env.production.example"));
  assert.equal(hosted.CAFE24_SCOPES, local.CAFE24_SCOPES);
  const texts = [
    await read("README.md"),
    await read(".env.example"),
    await read("supabase/functions/.env.production.example"),
  ];
  for (const text of texts) {
    for (const [, scopes] of text.matchAll(/CAFE24_SCOPES=([\w.,]+)/g)) {
      assert.equal(scopes, local.CAFE24_SCOPES);
    }
    assert.doesNotMatch(text, /openssl rand -base64/);
  }
  // The hosted file sets nothing only a local stack wants, and nothing Supabase injects.
  assert.equal(hosted.CAFE24_API_BASE_URL, undefined);
  assert.deepEqual(Object.keys(hosted).filter((name) => name.startsWith("SUPABASE_")), []);
  assert.match(hosted.CAFE24_REDIRECT_URI!, /^https:\/\//);
});

Deno.test("the README deploys without Docker, logs in first and writes Vault with deploy:vault", async () => {
  const readme = await read("README.md");
  const deploy = readme.slice(
    readme.indexOf("## Deploy to Supabase"),
    readme.indexOf("## Operate"),
  );
  assert.ok(deploy.length > 0);
  assert.ok(deploy.indexOf("supabase login") < deploy.indexOf("supabase link"));
  assert.match(deploy, /supabase functions deploy --use-api/);
  assert.match(deploy, /pooler\.supabase\.com:5432/);
  assert.match(deploy, /JWT signing keys/);
  assert.match(deploy, /`CORS_ALLOWED_ORIGINS`/);
  // The cron secret is generated once, into the env file, and reaches Vault as a bound parameter.
  assert.match(deploy, /^npm run deploy:vault -- --generate-cron-secret/m);
  assert.match(deploy, /^npm run deploy:vault\b/m);
  assert.doesNotMatch(deploy, /openssl rand/);
  assert.doesNotMatch(
    deploy,
    /vault\.(create|update)_secret/,
    "no Vault SQL with the secret in it",
  );
  assert.doesNotMatch(deploy, /<the CRON_SECRET value>|v_secret/);
  assert.doesNotMatch(deploy, /asks for the database password/);
  assert.doesNotMatch(
    readme,
    /--db-url '?postgres(ql)?:\/\/[^'\s]*:[^@'\s]+@/,
    "no password in a --db-url",
  );
});

Deno.test("the hosted env example sets the CORS origin and names the callback's real answer", async () => {
  const text = await read("supabase/functions/.env.production.example");
  const hosted = parseEnvFile(text);
  assert.match(hosted.CORS_ALLOWED_ORIGINS ?? "", /^https:\/\//);
  assert.doesNotMatch(text, /cafe24=connected/);
  assert.match(text, /#cafe24=pending&handle=/);
  assert.match(text, /npm run deploy:vault -- --generate-cron-secret/);
});
