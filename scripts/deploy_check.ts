/**
 * `npm run deploy:check`: verifies a deployment piece by piece, the way pg_cron and the app will
 * use it, and says what to fix for each piece that is not right:
 *
 *   settings → database → extensions → migrations → Vault secrets → each pg_cron job → JWT
 *   signing keys → each function answering → a refresh with CRON_SECRET → the cron path (Vault → pg_net →
 *   cafe24-refresh), as a dry run for a mall that does not exist, so no token is touched
 *
 * A warning (!) names a setting that works but should be changed; it does not fail the check.
 *
 * Reads SUPABASE_URL (or SUPABASE_PROJECT_REF), SUPABASE_DB_URL (the session pooler's URL),
 * CRON_SECRET and optionally SUPABASE_ANON_KEY from the environment, then the env file
 * (default supabase/functions/.env.production). `--local` checks the running `npm start`
 * instead, which has the same shape. Exit 0 when every check passed, 1 when one failed, 2 when
 * settings are missing. Never prints a secret.
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import { z } from "zod";
import { secretsMatch } from "../supabase/functions/_shared/platform/secrets.ts";
import { readEnvFile } from "../local/stack/env_file.ts";
import { colourWanted, paint } from "../local/stack/report.ts";
import { redactUrl } from "../local/stack/database_target.ts";
import { usageError } from "../local/stack/usage.ts";
import { loadTokenRing } from "../local/stack/token_ring.ts";
import { readKeyRing } from "../supabase/functions/_shared/platform/token_crypto.ts";
import { connectionPlace, tokenSeal } from "../supabase/functions/_shared/platform/token_seal.ts";

/** token_keys_in_use's names for rows whose tokens are not sealed, and for dotted values that are
 * not sealed either (altered: the functions never open them). */
const PLAINTEXT_KID = "plaintext";
const UNREADABLE_KID = "unreadable";
import {
  absolutePath,
  DEFAULT_DATA_DIR,
  processAlive,
  PROJECT_ROOT,
  readStackInfo,
} from "../local/stack/stack_info.ts";

const USAGE = `npm run deploy:check -- [options]

Checks a deployed project piece by piece and says what to fix.

  --env-file PATH   settings (default: supabase/functions/.env.production); the environment wins
  --local           check the running npm start instead (its stack file)
  --data-dir DIR    the local stack for --local (default: .local)
  -h, --help        this text

Settings: SUPABASE_URL (or SUPABASE_PROJECT_REF), SUPABASE_DB_URL (session pooler URL),
CRON_SECRET, and SUPABASE_ANON_KEY if the JWKS needs an API key. With SUPABASE_SECRET_KEYS
set, it warns while the legacy service_role key is still accepted
(CAFE24_ACCEPT_SERVICE_ROLE_KEY, default true).`;

/** A mall id no project has connected: the dry runs touch nothing. */
export const DRY_RUN_MALL = "deploycheck";
const MIGRATIONS = new URL("../supabase/migrations/", import.meta.url);

export interface Verdict {
  ok: boolean;
  detail: string;
  /** What to do, when not ok or a warning. */
  fix?: string;
  /** Works, but should be changed: shown with its fix, not counted as a failure. */
  warning?: boolean;
}

const pass = (detail: string): Verdict => ({ ok: true, detail });
const fail = (detail: string, fix: string): Verdict => ({ ok: false, detail, fix });
const warn = (detail: string, fix: string): Verdict => ({ ok: true, warning: true, detail, fix });

export interface Probe {
  status: number;
  body: unknown;
}

function errorCode(body: unknown): string {
  return body !== null && typeof body === "object" && "error" in body
    ? String((body as { error: unknown }).error)
    : "";
}

function configNames(body: unknown): string {
  const names = body !== null && typeof body === "object"
    ? ((body as { missing?: unknown }).missing ?? (body as { invalid?: unknown }).invalid)
    : undefined;
  return Array.isArray(names) ? names.join(", ") : "the variables it names";
}

/** Writes both Vault secrets from the same settings this check reads. */
export const VAULT_FIX = "npm run deploy:vault (writes cafe24_project_url and cafe24_cron_secret)";
const DEPLOY_FIX = "deploy the functions: npx supabase functions deploy --use-api";
const SECRETS_FIX = "npx supabase secrets set --env-file supabase/functions/.env.production";

/** What a status/body pair says about a deployed function, for answers every function shares. */
function commonProbe(name: string, probe: Probe): Verdict | null {
  if (probe.status === 404) return fail(`${name} is not deployed (404)`, DEPLOY_FIX);
  const code = errorCode(probe.body);
  if (code === "CONFIG_MISSING" || code === "CONFIG_INVALID") {
    return fail(
      `${name} lacks configuration: ${code} ${configNames(probe.body)}`,
      `set them: ${SECRETS_FIX}`,
    );
  }
  if (probe.status === 401 && code !== "UNAUTHORIZED") {
    return fail(
      `${name} was refused by the platform before its code ran (verify_jwt is on)`,
      "deploy with this project's supabase/config.toml (verify_jwt = false for every function)",
    );
  }
  return null;
}

/** cafe24-refresh without a secret must refuse with our own 401. */
export function refreshWithoutSecret(probe: Probe): Verdict {
  const common = commonProbe("cafe24-refresh", probe);
  if (common !== null) return common;
  const code = errorCode(probe.body);
  if (probe.status === 401) return pass("deployed, refuses calls without the secret");
  if (code === "CRON_SECRET_NOT_CONFIGURED") {
    return fail("cafe24-refresh has no CRON_SECRET", `set it: ${SECRETS_FIX}`);
  }
  return fail(
    `cafe24-refresh answered ${probe.status} ${code} without a secret`,
    "redeploy it; see its logs in the Dashboard",
  );
}

/** cafe24-refresh with CRON_SECRET, for a mall that does not exist: a run that scans nothing. */
export function refreshWithSecret(probe: Probe): Verdict {
  const common = commonProbe("cafe24-refresh", probe);
  if (common !== null) return common;
  const body = probe.body as { run_id?: unknown; scanned?: unknown; warnings?: unknown } | null;
  if (probe.status === 200 && typeof body?.run_id === "string") {
    const warnings = Array.isArray(body.warnings) ? body.warnings.map(String) : [];
    if (warnings.length > 0) {
      // The runs go on (a warning never stops them), so the check passes, saying what to fix.
      return pass(
        `CRON_SECRET accepted; a run reached the database; WARNINGS ${warnings.join(", ")}: ` +
          "see the run's summary and the functions' log line config_value_ignored",
      );
    }
    return pass(`CRON_SECRET accepted; a run reached the database (scanned ${body.scanned})`);
  }
  if (probe.status === 401) {
    return fail(
      "the function's CRON_SECRET differs from the CRON_SECRET given here",
      `set the same value in both: ${SECRETS_FIX}`,
    );
  }
  return fail(
    `cafe24-refresh answered ${probe.status} ${errorCode(probe.body)}`,
    errorCode(probe.body) === "REFRESH_RUN_FAILED"
      ? "the function cannot use the database: check the migrations and its logs"
      : "see the function's logs in the Dashboard",
  );
}

/** cafe24-authorize without a user token must refuse with our own 401 (CORS and all). */
export function authorizeWithoutUser(probe: Probe): Verdict {
  const common = commonProbe("cafe24-authorize", probe);
  if (common !== null) return common;
  if (probe.status === 401) return pass("deployed, refuses calls without a user token");
  return fail(
    `cafe24-authorize answered ${probe.status} ${errorCode(probe.body)}`,
    "see the function's logs",
  );
}

/** A function that must refuse a call without its credential with this project's own 401. */
export function refusesWithoutCredential(name: string, probe: Probe): Verdict {
  const common = commonProbe(name, probe);
  if (common !== null) return common;
  if (probe.status === 401 && errorCode(probe.body) === "UNAUTHORIZED") {
    return pass("deployed, refuses calls without credentials");
  }
  return fail(
    `${name} answered ${probe.status} ${errorCode(probe.body)}`,
    "see the function's logs",
  );
}

/**
 * cafe24-webhook with a body that is no notice and no `X-API-Key`: our own 401 means
 * CAFE24_WEBHOOK_API_KEY is set; `200 {"received":true}` means it is unset, which works (every
 * notice is still verified at Cafe24) but lets anyone make the function do database work, hence
 * the warning.
 */
export function webhookWithoutKey(probe: Probe): Verdict {
  const common = commonProbe("cafe24-webhook", probe);
  if (common !== null) return common;
  if (probe.status === 401 && errorCode(probe.body) === "UNAUTHORIZED") {
    return pass("deployed, refuses notices without the WebHook key");
  }
  if (probe.status === 200) {
    return pass(
      "deployed; WARNING CAFE24_WEBHOOK_API_KEY is unset: notices without Cafe24's WebHook key " +
        "are accepted (set it to the key shown in Cafe24 Developers → WebHook)",
    );
  }
  return fail(
    `cafe24-webhook answered ${probe.status} ${errorCode(probe.body)}`,
    "see the function's logs",
  );
}

/** cafe24-callback without a code or state: it answers with its own error, page or redirect. */
export function callbackWithoutState(probe: Probe): Verdict {
  const common = commonProbe("cafe24-callback", probe);
  if (common !== null) return common;
  if (probe.status >= 500) {
    return fail(`cafe24-callback answered ${probe.status}`, "see the function's logs");
  }
  return pass(`deployed, answers a bare call with ${probe.status}`);
}

/** The project's JWKS must hold an asymmetric key: user tokens signed with the legacy HS256
 * secret are refused by cafe24-authorize and "refresh now". */
export function jwksVerdict(probe: Probe): Verdict {
  const keys = (probe.body as { keys?: { kty?: string; alg?: string }[] } | null)?.keys;
  const asymmetric = (keys ?? []).filter((key) => key.kty === "EC" || key.kty === "RSA");
  if (probe.status === 200 && asymmetric.length > 0) {
    return pass(
      `asymmetric signing keys published (${asymmetric.map((k) => k.alg ?? k.kty).join(", ")})`,
    );
  }
  return fail(
    probe.status === 200
      ? "no asymmetric JWT signing key: the project signs user tokens with the legacy HS256 secret"
      : `the JWKS did not answer (${probe.status})`,
    "Dashboard → Project Settings → JWT Keys: migrate the legacy secret, create an ECC (P-256) " +
      "signing key and rotate to it; users sign in again to get tokens the functions accept",
  );
}

/** The functions' reading of CAFE24_ACCEPT_SERVICE_ROLE_KEY (config.ts: a zod stringbool). */
const ACCEPT_SERVICE_ROLE_KEY = z.stringbool().default(true);

/**
 * The legacy service_role key next to the project's secret keys. cafe24-token and
 * cafe24-disconnect accept it while CAFE24_ACCEPT_SERVICE_ROLE_KEY is true, the default, so once
 * the project has secret keys (SUPABASE_SECRET_KEYS) a leaked legacy key still opens them, though
 * no caller needs it any more. null when SUPABASE_SECRET_KEYS is not set here: nothing to compare.
 */
export function legacyKeyVerdict(env: Record<string, string | undefined>): Verdict | null {
  if ((env.SUPABASE_SECRET_KEYS ?? "").trim() === "") return null;
  const raw = env.CAFE24_ACCEPT_SERVICE_ROLE_KEY;
  const accept = ACCEPT_SERVICE_ROLE_KEY.safeParse(raw === "" ? undefined : raw);
  if (!accept.success) {
    return fail(
      "CAFE24_ACCEPT_SERVICE_ROLE_KEY is neither true nor false",
      `set it to false (or true): ${SECRETS_FIX}`,
    );
  }
  if (!accept.data) return pass("only the keys of SUPABASE_SECRET_KEYS are accepted");
  return warn(
    "SUPABASE_SECRET_KEYS is set, yet the legacy service_role key is still accepted " +
      "(CAFE24_ACCEPT_SERVICE_ROLE_KEY is true, the default)",
    "once every caller of cafe24-token and cafe24-disconnect sends an sb_secret_… key, set " +
      `CAFE24_ACCEPT_SERVICE_ROLE_KEY=false: ${SECRETS_FIX}`,
  );
}

/** Local migration versions all recorded in supabase_migrations.schema_migrations. */
export function migrationsVerdict(local: string[], applied: string[]): Verdict {
  const missing = local.filter((version) => !applied.includes(version));
  if (missing.length === 0) return pass(`${local.length} applied`);
  return fail(`not applied: ${missing.join(", ")}`, "npx supabase db push");
}

/** What to say when the database cannot be reached. */
export function databaseAdvice(url: string, message: string): string {
  let host = "";
  try {
    host = new URL(url).hostname;
  } catch { /* not a URL */ }
  if (/^db\.[a-z0-9]+\.supabase\.co$/.test(host)) {
    return "the direct host is IPv6-only on many plans: use the session pooler's URL " +
      "(Dashboard → Connect → Session pooler), postgresql://postgres.<ref>:<password>@" +
      "aws-0-<region>.pooler.supabase.com:5432/postgres";
  }
  if (/ENOTFOUND|EAI_AGAIN|getaddrinfo/i.test(message)) {
    return `the name ${host} does not resolve: copy SUPABASE_DB_URL from Dashboard → Connect → ` +
      "Session pooler";
  }
  if (/ECONNREFUSED/i.test(message)) {
    return `nothing accepts connections at ${host}: check the port in SUPABASE_DB_URL (5432 for ` +
      "the session pooler)";
  }
  if (/password authentication failed/i.test(message)) {
    return "wrong database password (Dashboard → Project Settings → Database resets it)";
  }
  return "check SUPABASE_DB_URL (host, port, password) and that this machine can reach it";
}

/** The whole text of an error and its causes: Deno's fetch says "fetch failed", its cause why. */
function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(" | ");
}

/**
 * A request to the project that got no answer at all: what went wrong for this URL, and the one
 * thing to do. Each check says it for itself rather than pointing at another line.
 */
export function unreachableVerdict(url: string, error: unknown): Verdict {
  let host = url;
  try {
    host = new URL(url).host;
  } catch { /* not a URL */ }
  const text = errorText(error);
  const hosted = /\.supabase\.co$/.test(host.replace(/:\d+$/, ""));
  if (/dns error|failed to lookup|ENOTFOUND|Name or service not known|EAI_AGAIN/i.test(text)) {
    return fail(
      `no answer: the name ${host.replace(/:\d+$/, "")} does not resolve (DNS)`,
      hosted
        ? "check SUPABASE_URL or SUPABASE_PROJECT_REF (Dashboard → Project Settings → General → " +
          "Project ID) and that the project is not paused"
        : "check the host name in SUPABASE_URL",
    );
  }
  if (/connection refused|ECONNREFUSED/i.test(text)) {
    return fail(
      `no answer: nothing accepts connections at ${host}`,
      hosted
        ? "check that the project is running (Dashboard → Project overview)"
        : "start what serves SUPABASE_URL (for the local stack: npm start)",
    );
  }
  if (/TimeoutError|timed out|deadline/i.test(text)) {
    return fail(
      `no answer from ${host} within 30 s`,
      "check the project's status in the Dashboard and this machine's network",
    );
  }
  if (/certificate|tls|ssl/i.test(text)) {
    return fail(
      `no answer: TLS with ${host} failed`,
      "SUPABASE_URL must be the project's https:// URL, https://<ref>.supabase.co",
    );
  }
  const message = error instanceof Error
    ? (error.cause instanceof Error ? error.cause.message : error.message)
    : String(error);
  return fail(
    `no answer from ${host}: ${message}`,
    "check SUPABASE_URL and this machine's network",
  );
}

/** A check that threw while using the database (the connection itself was fine). */
export function queryFailedVerdict(error: unknown): Verdict {
  const message = error instanceof Error ? error.message : String(error);
  if (/does not exist/i.test(message)) {
    return fail(`the query failed: ${message}`, "apply the migrations: npx supabase db push");
  }
  if (/permission denied/i.test(message)) {
    return fail(
      `the query failed: ${message}`,
      "use the postgres user's session pooler URL as SUPABASE_DB_URL",
    );
  }
  return fail(`the query failed: ${message}`, "check the database's logs in the Dashboard");
}

/** The pg_cron jobs the migrations register, each with its command. */
export const CRON_JOBS = [
  { name: "cafe24-refresh", command: "select cafe24_private.invoke_cafe24_refresh()" },
  { name: "cafe24-events", command: "select cafe24_private.invoke_cafe24_events()" },
  { name: "cafe24-trim-histories", command: "select cafe24_private.trim_histories()" },
  { name: "cafe24-trim-events", command: "select cafe24_private.trim_connection_events()" },
  {
    name: "cafe24-oauth-states-cleanup",
    command: "select cafe24_private.delete_expired_oauth_states()",
  },
] as const;

export interface CronJobRow {
  jobname: string;
  schedule: string;
  command: string;
  active: boolean;
  /** The latest run's status and message, when it has run. */
  last_status: string | null;
  last_message: string | null;
}

/** One pg_cron job as the migrations registered it: present, active, its command, its last run. */
export function cronJobVerdict(
  expected: { name: string; command: string },
  job: CronJobRow | undefined,
): Verdict {
  const name = expected.name;
  if (job === undefined) {
    return fail(`no ${name} job`, "apply the migrations: npx supabase db push");
  }
  if (!job.active) {
    return fail(
      `${name} is paused`,
      `update cron.job set active = true where jobname = '${name}'`,
    );
  }
  if (job.command.trim() !== expected.command) {
    return fail(
      `${name} runs "${job.command.trim()}"`,
      `select cron.schedule('${name}', '${job.schedule}', '${expected.command}')`,
    );
  }
  if (job.last_status === "failed") {
    return fail(
      `its last run failed: ${job.last_message ?? "no message"}`,
      `run "${expected.command}" in the SQL editor to see why`,
    );
  }
  return pass(`'${job.schedule}', active${job.last_status === null ? ", not run yet" : ""}`);
}

/** What to say when settings are missing: where they are read, and that --local exists. */
export function missingSettingsMessage(
  missing: string[],
  envFile: string,
  envFileExists: boolean,
): string {
  return [
    `missing: ${missing.join(", ")}`,
    envFileExists
      ? `  → set them in the environment or in ${envFile}`
      : `  → set them in the environment, or create ${envFile} ` +
        `(from ${envFile.replace(/\.env\.production$/, ".env.production.example")})`,
    "  → or check the local stack instead: npm run deploy:check -- --local (with npm start running)",
  ].join("\n");
}

export function vaultVerdict(
  name: string,
  stored: string | null,
  expected: string,
  what: string,
): Verdict {
  if (stored === null) return fail(`Vault has no ${name}`, VAULT_FIX);
  if (!secretsMatch(stored, expected)) {
    return fail(`Vault's ${name} differs from ${what}`, VAULT_FIX);
  }
  return pass(`present and equal to ${what}`);
}

interface Settings {
  supabaseUrl: string;
  dbUrl: string;
  cronSecret: string;
  apiKey: string | null;
  /** The variables as read (environment over env file); none for --local. */
  env: Record<string, string>;
  source: string;
}

async function loadSettings(
  values: { "env-file"?: string; local?: boolean; "data-dir"?: string },
): Promise<Settings | string> {
  if (values.local) {
    const dataDir = absolutePath(values["data-dir"] ?? DEFAULT_DATA_DIR).replace(/\/$/, "");
    const stack = await readStackInfo(dataDir);
    if (stack === null || !processAlive(stack.pids.start)) {
      return `no running npm start in ${dataDir}: start it first`;
    }
    return {
      supabaseUrl: stack.supabase_url,
      dbUrl: stack.db_url,
      cronSecret: stack.cron_secret,
      apiKey: null,
      // The stack's key ring, kept beside its database.
      env: { ...await loadTokenRing(dataDir) },
      source: `the local stack (${dataDir}/stack.json)`,
    };
  }
  const read = await readDeploySettings(values["env-file"]);
  const { env, envFile, envFileExists, get, supabaseUrl } = read;
  const missing = [
    supabaseUrl === null ? "SUPABASE_URL (or SUPABASE_PROJECT_REF)" : null,
    get("SUPABASE_DB_URL") === null ? "SUPABASE_DB_URL" : null,
    get("CRON_SECRET") === null ? "CRON_SECRET" : null,
  ].filter((name) => name !== null);
  if (missing.length > 0) return missingSettingsMessage(missing, envFile, envFileExists);
  return {
    supabaseUrl: supabaseUrl!,
    dbUrl: get("SUPABASE_DB_URL")!,
    cronSecret: get("CRON_SECRET")!,
    apiKey: get("SUPABASE_ANON_KEY"),
    env,
    source: envFileExists
      ? `the environment and ${envFile}`
      : `the environment only: ${envFile} does not exist`,
  };
}

/** A key id in use: how many rows it protects and one of their stored refresh tokens. */
export interface KeyInUse {
  kid: string;
  connections: number;
  auth_settings_id: string;
  refresh_token: string;
}

/**
 * The token key ring against what the database holds: every key id in use must be in the
 * operator's copy of the ring (CAFE24_TOKEN_KEYS in the env file) and one value per key id must
 * open with it; rows still in plaintext are a warning (the scheduled run reseals them).
 */
export async function tokenKeysVerdict(
  inUse: KeyInUse[],
  env: { CAFE24_TOKEN_KEYS?: string; CAFE24_TOKEN_KEY_ID?: string },
): Promise<Verdict> {
  const counts = inUse.map((row) => `${row.kid} ${row.connections}`).join(", ") || "no tokens";
  const plaintext = inUse.find((row) => row.kid === PLAINTEXT_KID)?.connections ?? 0;
  const unreadable = inUse.find((row) => row.kid === UNREADABLE_KID)?.connections ?? 0;
  if (unreadable > 0) {
    return fail(
      `rows per key: ${counts}; ${unreadable} hold a value that is neither sealed nor a token`,
      "those values were altered in the database: their malls are set aside (key_unavailable) " +
        "until they connect again",
    );
  }
  const sealed = inUse.filter((row) => row.kid !== PLAINTEXT_KID);
  if (!env.CAFE24_TOKEN_KEYS) {
    return warn(
      `rows per key: ${counts}; CAFE24_TOKEN_KEYS is not in these settings`,
      sealed.length > 0
        ? "add your copy of CAFE24_TOKEN_KEYS to the env file so each key in use can be checked"
        : "set CAFE24_TOKEN_KEYS and CAFE24_TOKEN_KEY_ID (README: The key ring): tokens are stored in plaintext until then (TOKEN_KEYS_MISSING)",
    );
  }
  const seal = tokenSeal(env.CAFE24_TOKEN_KEYS, env.CAFE24_TOKEN_KEY_ID);
  const { keys } = readKeyRing(env.CAFE24_TOKEN_KEYS, env.CAFE24_TOKEN_KEY_ID);
  const missing = sealed.filter((row) => !keys.has(row.kid)).map((row) => row.kid);
  if (missing.length > 0) {
    return fail(
      `rows per key: ${counts}; the ring lacks ${missing.join(", ")}`,
      "restore those keys to CAFE24_TOKEN_KEYS from your copy and set the secrets: until then " +
        "their malls are not refreshed (key_unavailable) and cafe24-token answers 503",
    );
  }
  const wrong: string[] = [];
  for (const row of sealed) {
    const opened = await seal.open(
      connectionPlace(row.auth_settings_id),
      "refresh_token",
      row.refresh_token,
    );
    if (!opened.ok) wrong.push(row.kid);
  }
  if (wrong.length > 0) {
    return fail(
      `rows per key: ${counts}; a value under ${wrong.join(", ")} does not open with this ring`,
      "the key stored under that id is not the one that wrote the values: restore the right one",
    );
  }
  if (plaintext > 0) {
    return warn(
      `rows per key: ${counts}`,
      "rows in plaintext are resealed by the scheduled cafe24-refresh, up to 200 per invocation",
    );
  }
  return pass(`rows per key: ${counts}; each key opens its values`);
}

export const DEFAULT_ENV_FILE = `${PROJECT_ROOT}/supabase/functions/.env.production`;

/** The deploy settings as deploy:check and deploy:vault read them: the environment over the file. */
export async function readDeploySettings(envFileOption: string | undefined): Promise<{
  env: Record<string, string>;
  envFile: string;
  envFileExists: boolean;
  get: (name: string) => string | null;
  /** SUPABASE_URL, else https://<SUPABASE_PROJECT_REF>.supabase.co, without a trailing slash. */
  supabaseUrl: string | null;
}> {
  const envFile = absolutePath(envFileOption ?? DEFAULT_ENV_FILE);
  const envFileExists = await Deno.stat(envFile).then((s) => s.isFile, () => false);
  const env = { ...(await readEnvFile(envFile)), ...Deno.env.toObject() };
  const get = (name: string) => (env[name] ?? "") === "" ? null : env[name]!;
  const ref = get("SUPABASE_PROJECT_REF");
  const url = get("SUPABASE_URL") ?? (ref === null ? null : `https://${ref}.supabase.co`);
  return { env, envFile, envFileExists, get, supabaseUrl: url?.replace(/\/+$/, "") ?? null };
}

async function probe(url: string, init: RequestInit = {}): Promise<Probe> {
  const response = await fetch(url, {
    ...init,
    redirect: "manual",
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: response.status, body };
}

async function localMigrations(): Promise<string[]> {
  const versions: string[] = [];
  for await (const entry of Deno.readDir(MIGRATIONS)) {
    if (entry.name.endsWith(".sql")) versions.push(entry.name.split("_")[0]!);
  }
  return versions.sort();
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        "env-file": { type: "string" },
        "local": { type: "boolean" },
        "data-dir": { type: "string" },
        "help": { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(
      usageError("npm run deploy:check", error instanceof Error ? error.message : String(error)),
    );
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const p = paint(colourWanted(Deno.stdout));
  const settings = await loadSettings(values);
  if (typeof settings === "string") {
    console.error(settings);
    return 2;
  }
  console.log(`Checking ${settings.supabaseUrl} and ${redactUrl(settings.dbUrl)}`);
  console.log(p.dim(`(settings from ${settings.source})\n`));

  let failures = 0;
  let warnings = 0;
  const report = (name: string, verdict: Verdict) => {
    const mark = !verdict.ok ? p.red("✗") : verdict.warning ? p.yellow("!") : p.green("✓");
    console.log(`${mark} ${name.padEnd(22)} ${verdict.detail}`);
    if (!verdict.ok) failures++;
    if (verdict.warning) warnings++;
    if (!verdict.ok || verdict.warning) console.log(`  ${"".padEnd(22)} → ${verdict.fix}`);
  };
  /** A check; what it throws is explained by `explain` (a request, or a query). */
  const check = async (
    name: string,
    run: () => Promise<Verdict>,
    explain: (error: unknown) => Verdict = queryFailedVerdict,
  ) => {
    try {
      report(name, await run());
    } catch (error) {
      report(name, explain(error));
    }
  };
  /** A check of one HTTP request to `url`: no answer at all is said for that URL. */
  const checkUrl = (name: string, url: string, run: (url: string) => Promise<Verdict>) =>
    check(name, () => run(url), (error) => unreachableVerdict(url, error));
  const fn = (name: string) => `${settings.supabaseUrl}/functions/v1/${name}`;

  const legacyKey = legacyKeyVerdict(settings.env);
  if (legacyKey !== null) report("legacy service key", legacyKey);

  const sql = postgres(settings.dbUrl, {
    prepare: false,
    max: 1,
    onnotice: () => {},
    connect_timeout: 15,
  });
  let database = false;
  try {
    await check("database", async () => {
      try {
        const [row] = await sql<
          { version: string }[]
        >`select current_setting('server_version') as version`;
        database = true;
        return pass(`reachable, PostgreSQL ${row!.version}`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return fail(`cannot connect: ${message}`, databaseAdvice(settings.dbUrl, message));
      }
    });

    if (database) {
      await check("extensions", async () => {
        const rows = await sql<{ name: string; installed: boolean; functions: boolean }[]>`
          select x.name,
            exists (select 1 from pg_extension e where e.extname = x.name) as installed,
            to_regproc(x.probe) is not null as functions
          from (values ('pg_cron', 'cron.schedule'), ('pg_net', 'net.http_post'),
            ('supabase_vault', 'vault.create_secret')) as x(name, probe)`;
        const absent = rows.filter((row) => !row.installed && !row.functions).map((r) => r.name);
        if (absent.length > 0) {
          return fail(
            `missing: ${absent.join(", ")}`,
            "Dashboard → Database → Extensions: enable them (supabase db push enables pg_cron " +
              "and pg_net through the migrations)",
          );
        }
        const standIns = rows.filter((row) => !row.installed).map((r) => r.name);
        return pass(
          `pg_cron, pg_net, supabase_vault${
            standIns.length > 0 ? ` (${standIns.join(", ")} as local stand-ins)` : ""
          }`,
        );
      });
      await check("migrations", async () => {
        const [table] = await sql<{ present: boolean }[]>`
          select to_regclass('supabase_migrations.schema_migrations') is not null as present`;
        const applied = table!.present
          ? (await sql<{ version: string }[]>`
            select version from supabase_migrations.schema_migrations`).map((r) => r.version)
          : [];
        return migrationsVerdict(await localMigrations(), applied);
      });
      await check("vault project url", async () => {
        const [row] = await sql<{ value: string }[]>`
          select decrypted_secret as value from vault.decrypted_secrets
          where name = 'cafe24_project_url'`;
        const stored = row === undefined ? null : row.value.replace(/\/+$/, "");
        return vaultVerdict("cafe24_project_url", stored, settings.supabaseUrl, "SUPABASE_URL");
      });
      await check("token keys", async () => {
        const inUse = await sql<KeyInUse[]>`
          select distinct on (kid) kid, count(*) over (partition by kid)::int as connections,
            auth_settings_id, refresh_token
          from (
            select case when starts_with(c.refresh_token, 'v1.')
                then split_part(c.refresh_token, '.', 2)
                when strpos(c.refresh_token, '.') > 0 then ${UNREADABLE_KID}
                else ${PLAINTEXT_KID} end as kid,
              c.auth_settings_id, c.refresh_token
            from cafe24_private.connections c where c.refresh_token is not null
          ) t
          order by kid`;
        return await tokenKeysVerdict(inUse, settings.env);
      });
      await check("vault cron secret", async () => {
        const [row] = await sql<{ value: string }[]>`
          select decrypted_secret as value from vault.decrypted_secrets
          where name = 'cafe24_cron_secret'`;
        return vaultVerdict(
          "cafe24_cron_secret",
          row?.value ?? null,
          settings.cronSecret,
          "CRON_SECRET",
        );
      });
      const jobs = await sql<CronJobRow[]>`
        select j.jobname, j.schedule, j.command, j.active,
          last.status as last_status, last.return_message as last_message
        from cron.job j
        left join lateral (
          select d.status, d.return_message from cron.job_run_details d
          where d.jobid = j.jobid order by d.start_time desc limit 1
        ) last on true
        where j.jobname like 'cafe24-%'`.catch(() => null);
      for (const expected of CRON_JOBS) {
        await check(`job ${expected.name}`, () => {
          if (jobs === null) {
            return Promise.resolve(
              fail(
                "cron.job could not be read",
                "enable pg_cron: Dashboard → Database → Extensions",
              ),
            );
          }
          return Promise.resolve(
            cronJobVerdict(expected, jobs.find((job) => job.jobname === expected.name)),
          );
        });
      }
    }

    await checkUrl(
      "jwt signing keys",
      `${settings.supabaseUrl}/auth/v1/.well-known/jwks.json`,
      async (url) =>
        jwksVerdict(
          await probe(url, {
            headers: settings.apiKey === null ? {} : { apikey: settings.apiKey },
          }),
        ),
    );
    await checkUrl(
      "cafe24-refresh",
      fn("cafe24-refresh"),
      async (url) => refreshWithoutSecret(await probe(url, { method: "POST" })),
    );
    await checkUrl(
      "cafe24-authorize",
      `${fn("cafe24-authorize")}?mall_id=${DRY_RUN_MALL}&mode=json`,
      async (url) => authorizeWithoutUser(await probe(url)),
    );
    await checkUrl(
      "cafe24-callback",
      fn("cafe24-callback"),
      async (url) => callbackWithoutState(await probe(url)),
    );
    // The other functions, each called without its credential: our own 401 proves it is deployed,
    // configured and not behind the platform's JWT check.
    for (
      const [name, method] of [
        ["cafe24-connections", "GET"],
        ["cafe24-token", "GET"],
        ["cafe24-api", "POST"],
        ["cafe24-disconnect", "POST"],
        ["cafe24-events", "POST"],
      ] as const
    ) {
      await checkUrl(
        name,
        fn(name),
        async (url) => refusesWithoutCredential(name, await probe(url, { method })),
      );
    }
    // Cafe24 sends notices without a JWT: a body that is no notice is answered and ignored.
    await checkUrl(
      "cafe24-webhook",
      fn("cafe24-webhook"),
      async (url) =>
        webhookWithoutKey(
          await probe(url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: "{}",
          }),
        ),
    );
    await checkUrl(
      "refresh with secret",
      `${fn("cafe24-refresh")}?mall_id=${DRY_RUN_MALL}&trigger=manual`,
      async (url) =>
        refreshWithSecret(
          await probe(url, {
            method: "POST",
            headers: { "x-cron-secret": settings.cronSecret },
          }),
        ),
    );

    if (database) {
      // The schedule's own path: the Vault secrets, pg_net, the function, the database. A signed
      // call is answered 202 once its signature and nonce are taken (the nonce is recorded in the
      // database), so 202 proves the secret, the function and the database agree.
      await check("cron path (dry run)", async () => {
        // The job's own way out: the same SQL function, URL checks and signed headers.
        const [call] = await sql<{ ids: string[] | null; refusal: string | null }[]>`
          select c.request_ids::text[] as ids, c.refusal
          from cafe24_private.call_project_function('cafe24-refresh',
            jsonb_build_object('trigger', 'manual', 'mall_id', ${DRY_RUN_MALL}::text), 1) c`;
        const queued = { id: call?.ids?.[0] ?? null };
        if (call?.refusal) {
          return fail(`not sent: ${call.refusal}`, "fix what it names, then run this check again");
        }
        if (queued.id === null) {
          return fail("not tried: nothing was queued", VAULT_FIX);
        }
        const deadline = Date.now() + 45_000;
        while (Date.now() < deadline) {
          const [response] = await sql<
            {
              status_code: number | null;
              content: string | null;
              timed_out: boolean | null;
              error_msg: string | null;
            }[]
          >`select status_code, content, timed_out, error_msg from net._http_response
            where id = ${queued.id}::bigint`;
          if (response !== undefined) {
            if (response.status_code === null) {
              return fail(
                `pg_net got no answer: ${response.timed_out ? "timed out" : response.error_msg}`,
                "Vault's cafe24_project_url must be the project URL, reachable from the database",
              );
            }
            let body: unknown = response.content;
            try {
              body = JSON.parse(response.content ?? "");
            } catch { /* not JSON */ }
            if (response.status_code === 202) {
              return pass(
                "Vault → pg_net → cafe24-refresh: accepted (202), signed by the database",
              );
            }
            const verdict = refreshWithSecret({ status: response.status_code, body });
            if (response.status_code === 401) {
              return fail(
                "cafe24-refresh refused Vault's cafe24_cron_secret (401)",
                `set the Vault secret to the functions' CRON_SECRET: ${VAULT_FIX}`,
              );
            }
            return verdict.ok
              ? pass("Vault → pg_net → cafe24-refresh → database: answered 200")
              : verdict;
          }
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        return fail(
          "pg_net delivered nothing within 45 s",
          "is pg_net's worker running? (select net.wake())",
        );
      });
    }
  } finally {
    await sql.end({ timeout: 5 }).catch(() => {});
  }

  console.log(
    failures === 0
      ? p.green(
        `\nEverything checked is in place${
          warnings === 0 ? "" : ` (${warnings} warning${warnings === 1 ? "" : "s"} above)`
        }.`,
      )
      : p.red(
        `\n${failures} check${
          failures === 1 ? "" : "s"
        } failed: fix them in order, then run this again.`,
      ),
  );
  return failures === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
