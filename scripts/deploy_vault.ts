/**
 * `npm run deploy:vault`: writes the two Vault secrets the pg_cron jobs read, from the same
 * settings `npm run deploy:check` reads:
 *
 *   cafe24_project_url   SUPABASE_URL (or https://<SUPABASE_PROJECT_REF>.supabase.co)
 *   cafe24_cron_secret   CRON_SECRET
 *
 * over SUPABASE_DB_URL (the session pooler's URL). Each is created, or updated when it exists:
 * safe to run again. The values travel as bound parameters of the statement, never in its text
 * nor on a command line, and the session turns statement logging off first where the role may
 * (log_statement, log_parameter_max_length, pgaudit.log), so a server that logs every statement
 * with its parameters does not log them.
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

/** Session settings that keep the statements and their parameters out of the server's log. */
const QUIET_SETTINGS = [
  "log_statement = 'none'",
  "log_parameter_max_length = 0",
  "log_min_duration_statement = -1",
  "pgaudit.log = 'none'",
];

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

/** Creates or updates one Vault secret; the value is a bound parameter. */
async function upsertSecret(
  tx: postgres.TransactionSql,
  name: string,
  value: string,
): Promise<"created" | "updated"> {
  const [existing] = await tx<{ id: string }[]>`select id from vault.secrets where name = ${name}`;
  if (existing !== undefined) {
    await tx`select vault.update_secret(${existing.id}::uuid, ${value})`;
    return "updated";
  }
  await tx`select vault.create_secret(${value}, ${name})`;
  return "created";
}

export async function writeVaultSecrets(
  dbUrl: string,
  values: { projectUrl: string; cronSecret: string },
): Promise<{ results: Record<string, string>; logged: boolean }> {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {}, connect_timeout: 15 });
  try {
    return await sql.begin(async (tx) => {
      for (const setting of QUIET_SETTINGS) {
        // A role that may not change a setting keeps the server's; the write goes on.
        await tx.savepoint((sp) => sp.unsafe(`set local ${setting}`)).catch(() => {});
      }
      const [logging] = await tx<{ statement: string; parameters: string }[]>`
        select current_setting('log_statement') as statement,
          current_setting('log_parameter_max_length') as parameters`;
      const results: Record<string, string> = {};
      results.cafe24_project_url = await upsertSecret(tx, "cafe24_project_url", values.projectUrl);
      results.cafe24_cron_secret = await upsertSecret(tx, "cafe24_cron_secret", values.cronSecret);
      return {
        results,
        logged: logging!.statement === "all" && logging!.parameters !== "0",
      };
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
    const { results, logged } = await writeVaultSecrets(dbUrl, {
      projectUrl: supabaseUrl!,
      cronSecret: get("CRON_SECRET")!,
    });
    console.log(`✓ cafe24_project_url  ${results.cafe24_project_url} (${supabaseUrl})`);
    console.log(`✓ cafe24_cron_secret  ${results.cafe24_cron_secret} (CRON_SECRET)`);
    if (logged) {
      console.log(
        "! the server logs every statement with its parameters (log_statement = all) and this " +
          "role may not turn that off: the secret is in the database's log",
      );
    }
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
