/**
 * `npm run deploy:vault`: writes the two Vault secrets the pg_cron jobs read, from the same
 * settings `npm run deploy:check` reads:
 *
 *   cafe24_project_url   SUPABASE_URL (or https://<SUPABASE_PROJECT_REF>.supabase.co)
 *   cafe24_cron_secret   CRON_SECRET
 *
 * over SUPABASE_DB_URL (the session pooler's URL). Each is created, or updated when it exists:
 * safe to run again. The values travel as COPY data, never in a statement's text, as a bound
 * parameter (which log_statement = all records) or on a command line, so no statement log and no
 * query history holds them.
 *
 * `--generate-cron-secret` appends a random CRON_SECRET to the env file when the file has none
 * (creating it, mode 0600) and changes nothing otherwise; then exits.
 *
 * Exit 0 when written, 1 when the database refused, 2 when settings are missing. Never prints a
 * secret.
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import { readEnvFile } from "../local/stack/env_file.ts";
import { randomSecret } from "../local/stack/local_env.ts";
import { redactUrl } from "../local/stack/database_target.ts";
import { usageError } from "../local/stack/usage.ts";
import { absolutePath } from "../local/stack/stack_info.ts";
import { DEFAULT_ENV_FILE, readDeploySettings } from "./deploy_check.ts";

const USAGE = `npm run deploy:vault -- [options]

Writes the Vault secrets cafe24_project_url and cafe24_cron_secret (created or updated; safe to
run again) over SUPABASE_DB_URL, from SUPABASE_URL (or SUPABASE_PROJECT_REF) and CRON_SECRET.

  --env-file PATH          settings (default: supabase/functions/.env.production); the
                           environment wins
  --generate-cron-secret   append a random CRON_SECRET to the env file if it has none, then exit
  -h, --help               this text`;

export interface GeneratedSecret {
  added: boolean;
  file: string;
}

/** Appends `CRON_SECRET=<random>` to `file` unless the file already sets it. */
export async function ensureCronSecret(file: string): Promise<GeneratedSecret> {
  const existing = await readEnvFile(file);
  if ((existing.CRON_SECRET ?? "") !== "") return { added: false, file };
  let text = "";
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const separator = text === "" || text.endsWith("\n") ? "" : "\n";
  await Deno.writeTextFile(
    file,
    `${separator}# The pg_cron jobs' secret (npm run deploy:vault writes it to Vault)\n` +
      `CRON_SECRET=${randomSecret()}\n`,
    { append: true, create: true, mode: 0o600 },
  );
  return { added: true, file };
}

/** One value as a line field of COPY's text format. */
function copyField(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n")
    .replace(/\r/g, "\\r");
}

/**
 * Writes both secrets (created, or updated when they exist) in one transaction. The values reach
 * the server as COPY data, which no statement log records (log_statement = all logs a bound
 * parameter's value, not COPY's rows); the statements that follow read them from a temporary
 * table that ends with the transaction.
 */
export async function writeVaultSecrets(
  dbUrl: string,
  values: { projectUrl: string; cronSecret: string },
): Promise<{ results: Record<string, string> }> {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {}, connect_timeout: 15 });
  try {
    return await sql.begin(async (tx) => {
      await tx`create temporary table vault_input (name text primary key, value text not null)
        on commit drop`;
      const rows = [
        ["cafe24_project_url", values.projectUrl],
        ["cafe24_cron_secret", values.cronSecret],
      ];
      const copy = await tx`copy pg_temp.vault_input (name, value) from stdin`.writable();
      await new Promise<void>((resolve, reject) => {
        copy.on("error", reject);
        copy.on("finish", resolve);
        copy.end(rows.map((row) => row.map(copyField).join("\t")).join("\n") + "\n");
      });
      const written = await tx<{ name: string; action: string }[]>`
        with updated as (
          select i.name, vault.update_secret(s.id, i.value) as done
          from pg_temp.vault_input i join vault.secrets s on s.name = i.name
        ),
        created as (
          select i.name, vault.create_secret(i.value, i.name) as done
          from pg_temp.vault_input i
          where not exists (select from vault.secrets s where s.name = i.name)
        )
        select name, 'updated' as action from updated
        union all
        select name, 'created' from created`;
      return { results: Object.fromEntries(written.map((row) => [row.name, row.action])) };
    });
  } finally {
    await sql.end({ timeout: 5 }).catch(() => {});
  }
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        "env-file": { type: "string" },
        "generate-cron-secret": { type: "boolean" },
        "help": { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(
      usageError("npm run deploy:vault", error instanceof Error ? error.message : String(error)),
    );
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values["generate-cron-secret"]) {
    const file = absolutePath(values["env-file"] ?? DEFAULT_ENV_FILE);
    const { added } = await ensureCronSecret(file);
    console.log(
      added
        ? `added a new CRON_SECRET to ${file}\n` +
          `  → give it to the functions: npx supabase secrets set --env-file ${file}\n` +
          "  → then write it to Vault: npm run deploy:vault"
        : `${file} already has a CRON_SECRET: unchanged`,
    );
    return 0;
  }
  const { envFile, envFileExists, get, supabaseUrl } = await readDeploySettings(values["env-file"]);
  const missing = [
    supabaseUrl === null ? "SUPABASE_URL (or SUPABASE_PROJECT_REF)" : null,
    get("SUPABASE_DB_URL") === null ? "SUPABASE_DB_URL" : null,
    get("CRON_SECRET") === null ? "CRON_SECRET" : null,
  ].filter((name) => name !== null);
  if (missing.length > 0) {
    console.error(
      `missing: ${missing.join(", ")}\n` +
        `  → set them in the environment or in ${envFile}${
          envFileExists ? "" : " (it does not exist)"
        }` +
        (missing.includes("CRON_SECRET")
          ? "\n  → a new CRON_SECRET: npm run deploy:vault -- --generate-cron-secret"
          : ""),
    );
    return 2;
  }
  const dbUrl = get("SUPABASE_DB_URL")!;
  console.log(`Writing Vault secrets on ${redactUrl(dbUrl)}`);
  try {
    const { results } = await writeVaultSecrets(dbUrl, {
      projectUrl: supabaseUrl!,
      cronSecret: get("CRON_SECRET")!,
    });
    console.log(`✓ cafe24_project_url  ${results.cafe24_project_url} (${supabaseUrl})`);
    console.log(`✓ cafe24_cron_secret  ${results.cafe24_cron_secret} (CRON_SECRET)`);
    console.log("Next: npm run deploy:check");
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`✗ Vault not written: ${message}`);
    console.error(
      /vault|does not exist/i.test(message)
        ? "  → enable Vault: Dashboard → Database → Extensions → supabase_vault"
        : "  → check SUPABASE_DB_URL (the session pooler's URL, Dashboard → Connect)",
    );
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main());
