/**
 * `npm run deploy:vault` against a local database that logs every statement with its parameters:
 * both Vault secrets are written (created, then updated on a second run), and neither the secret
 * nor the statement log nor the output ever holds CRON_SECRET. `--generate-cron-secret` appends a
 * CRON_SECRET only when the env file has none.
 */
import assert from "node:assert/strict";
import { startTestDatabase } from "../../local/postgres/database.ts";
import { readEnvFile } from "../../local/stack/env_file.ts";
import { randomSecret } from "../../local/stack/local_env.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (/^(CAFE24_|CRON_SECRET$|SUPABASE_)/.test(name)) delete env[name];
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

async function deployVault(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "scripts/deploy_vault.ts", ...args],
    cwd: ROOT,
    env: cleanEnv(env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("deploy:vault writes both Vault secrets, re-runnable, never logging the secret", async () => {
  const db = await startTestDatabase({
    settings: { log_statement: "all", log_parameter_max_length: -1, log_min_duration_statement: 0 },
  });
  const dir = await Deno.makeTempDir({ prefix: "deploy-vault-" });
  try {
    const envFile = `${dir}/.env.production`;
    const first = `first-${randomSecret()}`;
    await Deno.writeTextFile(envFile, `CRON_SECRET=${first}\nSUPABASE_PROJECT_REF=abcdefgh\n`);
    const env = { SUPABASE_DB_URL: db.dbUrl };

    const created = await deployVault(["--env-file", envFile], env);
    assert.equal(created.code, 0, created.stdout + created.stderr);
    assert.match(created.stdout, /cafe24_project_url\s+created/);
    assert.match(created.stdout, /cafe24_cron_secret\s+created/);
    const read = async () =>
      Object.fromEntries(
        (await db.sql<{ name: string; value: string }[]>`
          select name, decrypted_secret as value from vault.decrypted_secrets
          where name in ('cafe24_project_url', 'cafe24_cron_secret')`).map((
          r,
        ) => [r.name, r.value]),
      );
    assert.deepEqual(await read(), {
      cafe24_project_url: "https://abcdefgh.supabase.co",
      cafe24_cron_secret: first,
    });

    // Again with a new secret (and the URL from the environment): updated, not duplicated.
    const second = `second-${randomSecret()}`;
    await Deno.writeTextFile(envFile, `CRON_SECRET=${second}\n`);
    const updated = await deployVault(["--env-file", envFile], {
      ...env,
      SUPABASE_URL: "https://abcdefgh.supabase.co/",
    });
    assert.equal(updated.code, 0, updated.stdout + updated.stderr);
    assert.match(updated.stdout, /cafe24_cron_secret\s+updated/);
    assert.deepEqual(await read(), {
      cafe24_project_url: "https://abcdefgh.supabase.co",
      cafe24_cron_secret: second,
    });
    const [count] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from vault.secrets where name = 'cafe24_cron_secret'`;
    assert.equal(count!.n, 1);

    // The server logged statements (the ones above included), but never a secret.
    const log = await Deno.readTextFile(db.logFile);
    assert.match(log, /statement: /, "log_statement = all is in effect");
    for (const secret of [first, second]) {
      assert.ok(!log.includes(secret), "the secret is not in the server's log");
      for (const output of [created, updated]) {
        assert.ok(!(output.stdout + output.stderr).includes(secret), "nor in the output");
      }
    }
    // Its own statements were logged too: the values stayed out because they came as COPY data.
    assert.match(log, /copy pg_temp\.vault_input/);
  } finally {
    await db.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy:vault: missing settings named; --generate-cron-secret adds one only when absent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deploy-vault-" });
  try {
    const envFile = `${dir}/.env.production`;
    const missing = await deployVault(["--env-file", envFile]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing: SUPABASE_URL .*SUPABASE_DB_URL, CRON_SECRET/);
    assert.match(missing.stderr, /--generate-cron-secret/);

    await Deno.writeTextFile(envFile, "SUPABASE_PROJECT_REF=abcdefgh");
    const added = await deployVault(["--env-file", envFile, "--generate-cron-secret"]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /added a new CRON_SECRET/);
    const after = await readEnvFile(envFile);
    assert.equal(after.SUPABASE_PROJECT_REF, "abcdefgh", "the file's other lines are kept");
    assert.ok((after.CRON_SECRET ?? "").length >= 32);
    assert.ok(!added.stdout.includes(after.CRON_SECRET!), "the new secret is not printed");

    const again = await deployVault(["--env-file", envFile, "--generate-cron-secret"]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already has a CRON_SECRET: unchanged/);
    assert.equal((await readEnvFile(envFile)).CRON_SECRET, after.CRON_SECRET);

    const usage = await deployVault(["--bogus"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr.trim().split("\n").at(-1)!, /--help/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
