import { z } from "zod";
import { type Cafe24App, cafe24App } from "../cafe24/app.ts";
import { parseScopeList } from "../cafe24/scopes.ts";
import { KEEP_ALIVE_WINDOW_MS, REFRESH_POLICIES, type RefreshPolicy } from "../refresh/scope.ts";
import type { ConfigWarningCode } from "./errors.ts";
import { SECRET_MIN_LENGTH } from "./secrets.ts";
import { isKeyRingObject, KID_PATTERN, readKeyRing } from "./token_crypto.ts";
import { configuredTokenSeal, type TokenSeal } from "./token_seal.ts";

/**
 * Every environment variable the functions read, in one schema. Each function names the ones it
 * cannot work without; `loadConfig` reports all of those that are missing at once.
 * Durations carry their unit in the name.
 *
 * Each variable's rule is said once, in words, with `.describe()`: configuration errors quote it
 * ("CAFE24_REFRESH_CONCURRENCY must be an integer from 1 to 64"), so an operator learns what to
 * fix without being shown the value.
 */
const DEFAULT_API_BASE_URL = "https://{mall_id}.cafe24api.com";

/**
 * A run stops claiming connections once the CPU it has used since it started, plus what its
 * requests in flight will cost to finish (priced at its CPU per finished connection so far), reaches
 * this budget. Supabase gives two figures for a hosted invocation's CPU limit: 2 s on its limits
 * page, 200 ms in its troubleshooting pages, which also describe a soft limit (the worker is
 * retired) and a hard one (it is killed). The run keeps under the lower figure: killed mid-request,
 * a worker loses the answers in flight, and with them possibly the malls' only valid refresh
 * tokens. 150 ms leaves 50 ms for what an invocation spends before its run starts and after it
 * ends (the summary), and for a collection or a slow answer the estimate did not foresee. At the
 * measured 3-4 ms per refresh with HTTPS (bench/SCALE.md) that is some 40 refreshes per
 * invocation; on a plan where the 2 s figure holds, 1000 allows about 300.
 */
export const RUN_CPU_BUDGET_DEFAULT_MS = 150;

/**
 * A run's database calls (one per refresh: store the pair and claim the next connection) take a
 * few milliseconds against the tens to hundreds of a token request, so one connection serves the
 * run's CAFE24_REFRESH_CONCURRENCY workers: bench/SCALE.md measured the same refreshes per second
 * with 1, 2 and 3 connections at 8 workers. One per invocation keeps the schedule's 15 parallel
 * invocations at 15 connections, a quarter of the smallest compute size's direct connections.
 */
export const REFRESH_POOL_SIZE_DEFAULT = 1;

const integer = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback)
    .describe(`an integer from ${min} to ${max}`);

const text = (what: string) => z.string().min(1).optional().describe(what);
const url = (what: string) => z.url().optional().describe(`an absolute URL: ${what}`);

const EnvSchema = z.object({
  SUPABASE_URL: url("the project URL (injected by Supabase)"),
  SUPABASE_DB_URL: text("a postgresql:// URL of the database (injected by Supabase)"),
  /** Sent as `apikey` when fetching the project's JWKS. Injected by Supabase. */
  SUPABASE_ANON_KEY: text("the project's anon key (injected by Supabase)"),
  /** JSON `{"default":"sb_publishable_…"}`, injected by Supabase; used without SUPABASE_ANON_KEY. */
  SUPABASE_PUBLISHABLE_KEYS: text('JSON {"default":"sb_publishable_…"} (injected by Supabase)'),
  /**
   * Any length works: a shorter secret is reported (CRON_SECRET_WEAK, see configWarnings) but
   * never refused, because refusing it would stop every refresh and disconnect every mall once
   * its refresh token runs out.
   */
  CRON_SECRET: z.string().min(1).optional()
    .describe(`a secret of at least ${SECRET_MIN_LENGTH} characters (openssl rand -base64 32)`),
  CAFE24_CLIENT_ID: text("the app's client ID from Cafe24 Developers"),
  CAFE24_CLIENT_SECRET_KEY: text("the app's client secret key from Cafe24 Developers"),
  CAFE24_REDIRECT_URI: url("the redirect URI registered at Cafe24, character for character"),
  CAFE24_OAUTH_STATE_SECRET: z.string().min(SECRET_MIN_LENGTH).optional()
    .describe(`a secret of at least ${SECRET_MIN_LENGTH} characters (openssl rand -base64 32)`),
  /**
   * The scopes this app may ask a mall for, comma-separated. cafe24-authorize requests all of them
   * unless the app asks for fewer; it never requests one outside this list.
   */
  CAFE24_SCOPES: z.string()
    .refine((v) => parseScopeList(v) !== null)
    .optional()
    .describe("comma-separated Cafe24 scope names, e.g. mall.read_store,mall.read_product"),
  CAFE24_APP_RETURN_URL: url("the app page the callback returns to"),
  CAFE24_API_VERSION: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).optional()
    .describe("a date written YYYY-MM-DD"),
  /** Base URL template of a mall's API; `{mall_id}` is replaced. The sandbox uses a path form. */
  CAFE24_API_BASE_URL: z.string()
    .refine((v) => v.includes("{mall_id}"))
    .refine((v) => URL.canParse(v.replaceAll("{mall_id}", "mall")))
    .default(DEFAULT_API_BASE_URL)
    .describe("a URL template containing {mall_id}, e.g. https://{mall_id}.cafe24api.com"),
  /** Refresh an access token this long before it expires. Must stay well under its 2 h life. */
  CAFE24_REFRESH_MARGIN_SECONDS: integer(30 * 60, 60, 90 * 60),
  /** Token requests in flight at once within one run. */
  CAFE24_REFRESH_CONCURRENCY: integer(8, 1, 64),
  /**
   * Database connections one cafe24-refresh invocation opens (see REFRESH_POOL_SIZE_DEFAULT).
   * The schedule starts up to max_parallel_invocations invocations at once, each with its own
   * pool: their product is what the refresher may hold of the database's connections.
   */
  CAFE24_REFRESH_POOL_SIZE: integer(REFRESH_POOL_SIZE_DEFAULT, 1, 64),
  /** Abort a token request after this long. The lease outlives it by LEASE_SLACK_MS. */
  CAFE24_REQUEST_TIMEOUT_MS: integer(15_000, 1_000, 60_000),
  /** Stop claiming new connections after this long; hosted functions stop at 150 s. */
  CAFE24_RUN_BUDGET_MS: integer(100_000, 1_000, 3_600_000),
  /** Stop claiming before the run's CPU time would pass this (see RUN_CPU_BUDGET_DEFAULT_MS). */
  CAFE24_RUN_CPU_BUDGET_MS: integer(RUN_CPU_BUDGET_DEFAULT_MS, 10, 3_600_000),
  /** eager: keep every access token fresh; keep_alive: keep refresh tokens alive (scope.ts). */
  CAFE24_REFRESH_POLICY: z.enum(REFRESH_POLICIES).default("eager").describe("eager or keep_alive"),
  /**
   * keep_alive refreshes a connection once its refresh token expires within this many seconds
   * (default KEEP_ALIVE_WINDOW_MS, a week). It must stay well above the time between runs; short
   * values are for tests that compress time.
   */
  CAFE24_KEEP_ALIVE_WINDOW_S: integer(KEEP_ALIVE_WINDOW_MS / 1000, 1, 14 * 24 * 60 * 60),
  /**
   * At most this many connections per run; the rest is reported as `remaining`. Measured at
   * 1.5-2.1 ms of function CPU per refresh (bench/RESULTS.md), 500 keeps a run near half of a
   * hosted invocation's 2 s CPU limit.
   */
  CAFE24_MAX_CONNECTIONS_PER_RUN: integer(500, 1, 1_000_000),
  /**
   * A signed-in user ("refresh now") starts at most one refresh per this many seconds, counted
   * in the database so that it holds across function instances. Cron and admin callers are not
   * limited.
   */
  CAFE24_USER_REFRESH_INTERVAL_S: integer(30, 1, 3_600),
  /**
   * The Admin API calls a mall's bucket holds at Cafe24 (X-Api-Call-Limit's denominator; 40 for
   * most malls). Only the first call of a mall uses it: every answer's X-Api-Call-Limit replaces it.
   */
  CAFE24_API_BUCKET_CAPACITY: integer(40, 1, 10_000),
  /** How many calls a second a mall's bucket drains at Cafe24 (2 for most malls). */
  CAFE24_API_BUCKET_DRAIN_PER_S: z.coerce.number().min(0.1).max(1_000).default(2)
    .describe("a number from 0.1 to 1000"),
  /**
   * At most this many Admin API calls a second per mall, however much room its bucket has: Cafe24
   * may treat 10 or more a second from one address to one mall as abuse.
   */
  CAFE24_API_MAX_PER_S: integer(5, 1, 9),
  /** Comma-separated origins allowed to call the functions from a browser; `*` for any. */
  CORS_ALLOWED_ORIGINS: z.string().default("*").describe("* or comma-separated origins"),
  /** JSON `{"default":"sb_secret_…"}`, injected by Supabase: the project's secret API keys. */
  SUPABASE_SECRET_KEYS: text('JSON {"default":"sb_secret_…"} (injected by Supabase)'),
  /** The legacy service_role key (a JWT), injected by Supabase. */
  SUPABASE_SERVICE_ROLE_KEY: text("the legacy service_role key (injected by Supabase)"),
  /** `false` stops accepting SUPABASE_SERVICE_ROLE_KEY as the project's secret key. */
  CAFE24_ACCEPT_SERVICE_ROLE_KEY: z.stringbool().default(true).describe("true or false"),
  /** Where cafe24-events POSTs connection events; unset, events are kept but not sent. */
  CAFE24_EVENTS_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional()
    .describe("an http(s) URL: where connection events are sent"),
  /** HMAC-SHA256 key that signs every event delivery; required with the URL. */
  CAFE24_EVENTS_WEBHOOK_SECRET: z.string().min(SECRET_MIN_LENGTH).optional()
    .describe(`a secret of at least ${SECRET_MIN_LENGTH} characters (openssl rand -base64 32)`),
  /**
   * The static "WebHook 인증정보" key Cafe24 Developers shows for the app, which Cafe24 is said to
   * send as `X-API-Key` with every notice (unconfirmed). Set, cafe24-webhook drops a notice without
   * it before any database work; the notice is still verified at Cafe24, since the key is static
   * and replayable.
   */
  CAFE24_WEBHOOK_API_KEY: text("the WebHook key from Cafe24 Developers (sent as X-API-Key)"),
  /**
   * The key ring tokens are encrypted with at rest (token_crypto.ts). Only "not a JSON object" is
   * refused here: an entry with a bad key id or key is set aside and reported
   * (TOKEN_KEYS_INVALID, tokenKeyWarnings) while the other entries stay usable, because refusing
   * the whole ring would leave every value written with its good keys unreadable.
   */
  CAFE24_TOKEN_KEYS: z.string().refine(isKeyRingObject).optional()
    .describe(
      'a JSON object of key ids (1-32 letters, digits, _ or -) to base64 of 32 random bytes, e.g. {"k2025":"<openssl rand 32 | base64>"}',
    ),
  /** The key id of CAFE24_TOKEN_KEYS that new values are written with; older ids still decrypt. */
  CAFE24_TOKEN_KEY_ID: z.string().regex(KID_PATTERN).optional()
    .describe("a key id of CAFE24_TOKEN_KEYS (1-32 letters, digits, _ or -)"),
  /**
   * `true` also copies each new access token (connect and refresh) and its expiry, never the
   * refresh token, into public.auth_settings.providers.cafe24, for apps that still read them
   * there. Off, the tokens live only in the connection's private row.
   */
  CAFE24_PLAINTEXT_TOKEN_COPY: z.stringbool().default(false).describe("true or false"),
});

export type Env = z.infer<typeof EnvSchema>;
export type EnvName = keyof Env;

/** Every variable the functions read. */
export const ENV_NAMES = Object.keys(EnvSchema.shape) as EnvName[];

export type Config<K extends EnvName> = Env & { [P in K]-?: NonNullable<Env[P]> };

export type ConfigResult<K extends EnvName> =
  | {
    ok: true;
    config: Config<K>;
    /** Tolerated variables whose invalid value was set aside for the default (see loadConfig). */
    ignored: string[];
  }
  | {
    ok: false;
    code: "CONFIG_MISSING" | "CONFIG_INVALID";
    names: string[];
    /** One sentence per name saying what it must be, e.g. "X must be an integer from 1 to 64". */
    rules: string[];
  };

/**
 * One sentence per name saying what it must be, from the schema's descriptions:
 * "CAFE24_REFRESH_CONCURRENCY must be an integer from 1 to 64" for an invalid value,
 * "CAFE24_CLIENT_ID must be set to the app's client ID from Cafe24 Developers" for a missing one.
 */
export function configRules(
  code: "CONFIG_MISSING" | "CONFIG_INVALID",
  names: readonly string[],
): string[] {
  return names.map((name) => {
    const rule = (EnvSchema.shape as Record<string, z.ZodType | undefined>)[name]?.description;
    if (rule === undefined) return `${name} must be set`;
    return code === "CONFIG_MISSING" ? `${name} must be set to ${rule}` : `${name} must be ${rule}`;
  });
}

/**
 * Parses the environment (a plain object, so tests pass their own). Empty strings count as
 * unset. Returns the names that are missing, or invalid, with the rule each breaks; never their
 * values.
 *
 * `uses` names the variables the calling function reads (FUNCTION_SETTINGS): only those can make
 * it refuse. Any other variable that is set with an invalid value counts as unset (its default
 * applies), so a setting of one function never stops another: a connect-flow secret of the wrong
 * length must not stop the refreshes that keep every mall's grant alive. Without `uses`, every
 * variable counts (for tools that check a whole configuration).
 *
 * `tolerates` names used variables whose invalid value falls back to the default instead of
 * refusing, reported in `ignored`: the refresh's tuning, which must never cost a mall its grant.
 */
export function loadConfig<K extends EnvName>(
  env: Record<string, string | undefined>,
  required: readonly K[],
  uses?: readonly EnvName[],
  tolerates: readonly EnvName[] = [],
): ConfigResult<K> {
  const counted = uses === undefined ? null : new Set<string>([...uses, ...required]);
  const shape = EnvSchema.shape as Record<string, z.ZodType>;
  const present: Record<string, string> = {};
  const invalid: string[] = [];
  const ignored: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    const rule = shape[name];
    if (rule === undefined || value === "" || value === undefined) continue;
    if (rule.safeParse(value).success) present[name] = value;
    else if ((tolerates as readonly string[]).includes(name)) ignored.push(name);
    else if (counted === null || counted.has(name)) invalid.push(name);
  }
  if (invalid.length > 0) {
    const names = [...new Set(invalid)].sort();
    return {
      ok: false,
      code: "CONFIG_INVALID",
      names,
      rules: configRules("CONFIG_INVALID", names),
    };
  }
  const parsed = EnvSchema.parse(present);
  const missing = [...required.filter((name) => parsed[name] === undefined)].sort();
  if (missing.length > 0) {
    return {
      ok: false,
      code: "CONFIG_MISSING",
      names: missing,
      rules: configRules("CONFIG_MISSING", missing),
    };
  }
  // A ring that is set but unreadable is not "no ring": tokens must not be written in plaintext
  // then. It stands as an empty ring, so the TokenSeal writes nothing (TOKEN_KEYS_INVALID).
  if (ignored.includes("CAFE24_TOKEN_KEYS")) parsed.CAFE24_TOKEN_KEYS = "{}";
  return { ok: true, config: parsed as Config<K>, ignored: ignored.sort() };
}

/**
 * Settings that work but should be changed, reported with every run instead of refused. Codes
 * and messages are in CONFIG_WARNINGS (errors.ts).
 */
export function configWarnings(config: Env, ignored: readonly string[] = []): ConfigWarningCode[] {
  const warnings: ConfigWarningCode[] = [];
  if (ignored.length > 0) warnings.push("CONFIG_VALUE_IGNORED");
  if (config.CRON_SECRET !== undefined && config.CRON_SECRET.length < SECRET_MIN_LENGTH) {
    warnings.push("CRON_SECRET_WEAK");
  }
  if (config.CAFE24_PLAINTEXT_TOKEN_COPY) warnings.push("PLAINTEXT_TOKEN_COPY");
  return warnings;
}

/**
 * What is wrong with the token key ring, as configuration warnings: never a refusal, since a
 * function that refused would stop the refreshes of every connection, not only of those whose
 * values it cannot read. `ignored` is loadConfig's: a ring that is not JSON at all was set aside.
 */
export function tokenKeyWarnings(
  config: Env,
  ignored: readonly string[] = [],
): ConfigWarningCode[] {
  if (ignored.includes("CAFE24_TOKEN_KEYS")) return ["TOKEN_KEYS_INVALID", "TOKEN_KEY_ID_UNKNOWN"];
  const { problems } = readKeyRing(config.CAFE24_TOKEN_KEYS, config.CAFE24_TOKEN_KEY_ID);
  if (problems.some((problem) => problem.code === "keys_missing")) return ["TOKEN_KEYS_MISSING"];
  const warnings: ConfigWarningCode[] = [];
  if (problems.some((p) => p.code === "keys_not_object" || p.code.endsWith("_invalid"))) {
    warnings.push("TOKEN_KEYS_INVALID");
  }
  if (problems.some((p) => p.code === "active_missing" || p.code === "active_unknown")) {
    warnings.push("TOKEN_KEY_ID_UNKNOWN");
  }
  return warnings;
}

/** The settings of a refresh run, derived once from the config. */
export interface RefreshSettings {
  app: Cafe24App;
  refreshMarginMs: number;
  concurrency: number;
  runBudgetMs: number;
  runCpuBudgetMs: number;
  maxConnectionsPerRun: number;
  leaseMs: number;
  policy: RefreshPolicy;
  keepAliveWindowMs: number;
  /** Database connections of one invocation's pool. */
  poolSize: number;
  /** CAFE24_PLAINTEXT_TOKEN_COPY: also copy each new access token into providers.cafe24. */
  plaintextTokenCopy: boolean;
  /** Seals tokens before they are stored and opens them after they are read (the key ring). */
  tokenSeal: TokenSeal;
}

/**
 * A lease must outlive everything its holder may still do: the token request (aborted at the
 * timeout) and the retried write of a new pair. Otherwise a second worker could claim the row
 * and send the same refresh token while the first one's answer is still on its way.
 */
export const LEASE_SLACK_MS = 60_000;

export const REFRESH_CONFIG_REQUIRED = [
  "SUPABASE_DB_URL",
  "CAFE24_CLIENT_ID",
  "CAFE24_CLIENT_SECRET_KEY",
] as const;

export function refreshSettings(
  config: Config<(typeof REFRESH_CONFIG_REQUIRED)[number]>,
): RefreshSettings {
  return {
    app: cafe24App(config),
    refreshMarginMs: config.CAFE24_REFRESH_MARGIN_SECONDS * 1000,
    concurrency: config.CAFE24_REFRESH_CONCURRENCY,
    runBudgetMs: config.CAFE24_RUN_BUDGET_MS,
    runCpuBudgetMs: config.CAFE24_RUN_CPU_BUDGET_MS,
    maxConnectionsPerRun: config.CAFE24_MAX_CONNECTIONS_PER_RUN,
    leaseMs: config.CAFE24_REQUEST_TIMEOUT_MS + LEASE_SLACK_MS,
    policy: config.CAFE24_REFRESH_POLICY,
    keepAliveWindowMs: config.CAFE24_KEEP_ALIVE_WINDOW_S * 1000,
    poolSize: config.CAFE24_REFRESH_POOL_SIZE,
    plaintextTokenCopy: config.CAFE24_PLAINTEXT_TOKEN_COPY,
    tokenSeal: configuredTokenSeal(config),
  };
}

/** What an Admin API call through the connector needs: the token's path and the mall's bucket. */
export interface AdminApiSettings extends TokenPathSettings {
  bucketCapacity: number;
  bucketDrainPerS: number;
  maxPerS: number;
}

type TokenPathSettings = Pick<
  RefreshSettings,
  "app" | "leaseMs" | "keepAliveWindowMs" | "plaintextTokenCopy" | "tokenSeal"
>;

export const ADMIN_API_CONFIG_REQUIRED = REFRESH_CONFIG_REQUIRED;

export function adminApiSettings(
  config: Config<(typeof ADMIN_API_CONFIG_REQUIRED)[number]>,
): AdminApiSettings {
  const refresh = refreshSettings(config);
  return {
    app: refresh.app,
    leaseMs: refresh.leaseMs,
    keepAliveWindowMs: refresh.keepAliveWindowMs,
    plaintextTokenCopy: refresh.plaintextTokenCopy,
    tokenSeal: refresh.tokenSeal,
    bucketCapacity: config.CAFE24_API_BUCKET_CAPACITY,
    bucketDrainPerS: config.CAFE24_API_BUCKET_DRAIN_PER_S,
    maxPerS: config.CAFE24_API_MAX_PER_S,
  };
}

/**
 * What verifying a user's JWT needs: the project URL (its JWKS is under it) and a public API key
 * to send along. Returns the names that are missing instead when there is no key.
 */
export const USER_AUTH_CONFIG_REQUIRED = ["SUPABASE_URL"] as const;

export interface UserAuthSettings {
  supabaseUrl: string;
  apiKey: string;
}

export function userAuthSettings(
  config: Config<(typeof USER_AUTH_CONFIG_REQUIRED)[number]>,
): UserAuthSettings | { missing: string[] } {
  const apiKey = config.SUPABASE_ANON_KEY ?? publishableKey(config.SUPABASE_PUBLISHABLE_KEYS);
  if (apiKey === null) return { missing: ["SUPABASE_ANON_KEY"] };
  return { supabaseUrl: config.SUPABASE_URL, apiKey };
}

function publishableKey(json: string | undefined): string | null {
  if (json === undefined) return null;
  try {
    const keys: unknown = JSON.parse(json);
    if (keys === null || typeof keys !== "object" || Array.isArray(keys)) return null;
    const values = keys as Record<string, unknown>;
    const key = values.default ?? Object.values(values)[0];
    return typeof key === "string" && key !== "" ? key : null;
  } catch {
    return null;
  }
}

/** cafe24-authorize: verifies the user, records a state nonce, builds Cafe24's authorize URL. */
export const AUTHORIZE_CONFIG_REQUIRED = [
  ...USER_AUTH_CONFIG_REQUIRED,
  "SUPABASE_DB_URL",
  "CAFE24_CLIENT_ID",
  "CAFE24_REDIRECT_URI",
  "CAFE24_OAUTH_STATE_SECRET",
  "CAFE24_SCOPES",
  // No new connection without a key ring to seal its tokens: connecting is refused
  // (CONFIG_MISSING) while existing connections keep refreshing (token_seal.ts, `plaintext`).
  "CAFE24_TOKEN_KEYS",
] as const;

/**
 * cafe24-callback: GET checks the state, exchanges the code and parks the pair, then sends the
 * browser back to the app; POST completes with the user's session (so it verifies users too).
 */
export const CALLBACK_CONFIG_REQUIRED = [
  ...USER_AUTH_CONFIG_REQUIRED,
  "SUPABASE_DB_URL",
  "CAFE24_CLIENT_ID",
  "CAFE24_CLIENT_SECRET_KEY",
  "CAFE24_REDIRECT_URI",
  "CAFE24_OAUTH_STATE_SECRET",
  "CAFE24_APP_RETURN_URL",
] as const;

/**
 * cafe24-disconnect: removes a connection's tokens and revokes them at Cafe24. User callers also
 * need USER_AUTH_CONFIG_REQUIRED; the app's secret key needs nothing more.
 */
export const DISCONNECT_CONFIG_REQUIRED = [
  "SUPABASE_DB_URL",
  "CAFE24_CLIENT_ID",
  "CAFE24_CLIENT_SECRET_KEY",
] as const;

/** cafe24-events: reads the outbox; sends it when CAFE24_EVENTS_WEBHOOK_URL is set. */
export const EVENTS_CONFIG_REQUIRED = ["SUPABASE_DB_URL"] as const;

export interface EventWebhookSettings {
  url: string;
  secret: string;
}

/**
 * The events webhook: null when no URL is set (delivery is off), the missing secret's name when
 * a URL is set without one.
 */
export function eventWebhookSettings(
  config: Env,
): EventWebhookSettings | null | { missing: string[] } {
  if (config.CAFE24_EVENTS_WEBHOOK_URL === undefined) return null;
  if (config.CAFE24_EVENTS_WEBHOOK_SECRET === undefined) {
    return { missing: ["CAFE24_EVENTS_WEBHOOK_SECRET"] };
  }
  return { url: config.CAFE24_EVENTS_WEBHOOK_URL, secret: config.CAFE24_EVENTS_WEBHOOK_SECRET };
}

/** What verifying a caller's credential reads: a user's JWT, the secret API key, CRON_SECRET. */
const USER_AUTH_VARIABLES = [
  "SUPABASE_URL",
  "SUPABASE_ANON_KEY",
  "SUPABASE_PUBLISHABLE_KEYS",
] as const satisfies readonly EnvName[];
const SECRET_KEY_VARIABLES = [
  "SUPABASE_SECRET_KEYS",
  "SUPABASE_SERVICE_ROLE_KEY",
  "CAFE24_ACCEPT_SERVICE_ROLE_KEY",
  "CRON_SECRET",
] as const satisfies readonly EnvName[];
const SCHEDULER_VARIABLES = ["CRON_SECRET"] as const satisfies readonly EnvName[];
/**
 * The token key ring (token_crypto.ts). Where a refresh runs it is tolerated: a malformed ring is
 * a warning (tokenKeyWarnings), never a refusal that would stop every mall's refreshes.
 */
const TOKEN_KEY_VARIABLES = [
  "CAFE24_TOKEN_KEYS",
  "CAFE24_TOKEN_KEY_ID",
] as const satisfies readonly EnvName[];

/** What calling Cafe24 as the app reads (token, revoke and shop requests). */
const CAFE24_APP_VARIABLES = [
  "CAFE24_API_BASE_URL",
  "CAFE24_CLIENT_ID",
  "CAFE24_CLIENT_SECRET_KEY",
  "CAFE24_REQUEST_TIMEOUT_MS",
  "CAFE24_API_VERSION",
] as const satisfies readonly EnvName[];

/**
 * What refreshSettings reads: a refresh run's settings. Apart from the database and the app's
 * credentials (REFRESH_CONFIG_REQUIRED), an invalid one falls back to its default with a warning
 * wherever a refresh runs: nothing but Cafe24's own answer may stop the refreshes.
 */
const REFRESH_TUNING = [
  "CAFE24_API_BASE_URL",
  "CAFE24_API_VERSION",
  "CAFE24_REQUEST_TIMEOUT_MS",
  "CAFE24_REFRESH_MARGIN_SECONDS",
  "CAFE24_REFRESH_CONCURRENCY",
  "CAFE24_REFRESH_POOL_SIZE",
  "CAFE24_RUN_BUDGET_MS",
  "CAFE24_RUN_CPU_BUDGET_MS",
  "CAFE24_REFRESH_POLICY",
  "CAFE24_KEEP_ALIVE_WINDOW_S",
  "CAFE24_MAX_CONNECTIONS_PER_RUN",
] as const satisfies readonly EnvName[];
const REFRESH_VARIABLES = [...REFRESH_TUNING, ...REFRESH_CONFIG_REQUIRED] as const;

/** The Admin API's per-mall rate limit (adminApiSettings). */
const ADMIN_API_VARIABLES = [
  "CAFE24_API_BUCKET_CAPACITY",
  "CAFE24_API_BUCKET_DRAIN_PER_S",
  "CAFE24_API_MAX_PER_S",
] as const satisfies readonly EnvName[];

/**
 * Each function's settings: the variables it cannot work without (`required`) and every variable
 * it reads (`uses`, the required ones included). What verifying a user reads is checked when a
 * user calls (caller.ts), so it stops no scheduled refresh. A function refuses (CONFIG_MISSING or
 * CONFIG_INVALID) only on its own variables; see loadConfig.
 */
export const FUNCTION_SETTINGS = {
  "cafe24-api": {
    required: ADMIN_API_CONFIG_REQUIRED,
    tolerates: [...REFRESH_TUNING, ...TOKEN_KEY_VARIABLES, "CAFE24_PLAINTEXT_TOKEN_COPY"],
    uses: [
      ...REFRESH_VARIABLES,
      ...TOKEN_KEY_VARIABLES,
      ...ADMIN_API_VARIABLES,
      "CAFE24_PLAINTEXT_TOKEN_COPY",
      ...SECRET_KEY_VARIABLES,
      "CORS_ALLOWED_ORIGINS",
    ],
  },
  "cafe24-authorize": {
    required: AUTHORIZE_CONFIG_REQUIRED,
    uses: [
      ...AUTHORIZE_CONFIG_REQUIRED,
      ...USER_AUTH_VARIABLES,
      "CAFE24_API_BASE_URL",
      "CORS_ALLOWED_ORIGINS",
    ],
  },
  "cafe24-callback": {
    required: CALLBACK_CONFIG_REQUIRED,
    tolerates: [...TOKEN_KEY_VARIABLES, "CAFE24_PLAINTEXT_TOKEN_COPY"],
    uses: [
      ...CALLBACK_CONFIG_REQUIRED,
      ...TOKEN_KEY_VARIABLES,
      ...USER_AUTH_VARIABLES,
      ...CAFE24_APP_VARIABLES,
      "CAFE24_PLAINTEXT_TOKEN_COPY",
      "CORS_ALLOWED_ORIGINS",
    ],
  },
  "cafe24-connections": {
    required: [...USER_AUTH_CONFIG_REQUIRED, "SUPABASE_DB_URL"],
    uses: [...USER_AUTH_VARIABLES, "SUPABASE_DB_URL", "CORS_ALLOWED_ORIGINS"],
  },
  "cafe24-disconnect": {
    required: DISCONNECT_CONFIG_REQUIRED,
    tolerates: TOKEN_KEY_VARIABLES,
    uses: [
      ...DISCONNECT_CONFIG_REQUIRED,
      ...TOKEN_KEY_VARIABLES,
      ...CAFE24_APP_VARIABLES,
      ...SECRET_KEY_VARIABLES,
      "CORS_ALLOWED_ORIGINS",
    ],
  },
  "cafe24-events": {
    required: EVENTS_CONFIG_REQUIRED,
    uses: [
      ...EVENTS_CONFIG_REQUIRED,
      ...SCHEDULER_VARIABLES,
      "CAFE24_EVENTS_WEBHOOK_URL",
      "CAFE24_EVENTS_WEBHOOK_SECRET",
      "CORS_ALLOWED_ORIGINS",
    ],
  },
  "cafe24-refresh": {
    required: REFRESH_CONFIG_REQUIRED,
    tolerates: [
      ...REFRESH_TUNING,
      ...TOKEN_KEY_VARIABLES,
      "CAFE24_USER_REFRESH_INTERVAL_S",
      "CAFE24_PLAINTEXT_TOKEN_COPY",
    ],
    uses: [
      ...REFRESH_VARIABLES,
      ...TOKEN_KEY_VARIABLES,
      ...SCHEDULER_VARIABLES,
      "CAFE24_USER_REFRESH_INTERVAL_S",
      "CAFE24_PLAINTEXT_TOKEN_COPY",
      "CORS_ALLOWED_ORIGINS",
    ],
  },
  "cafe24-token": {
    required: REFRESH_CONFIG_REQUIRED,
    tolerates: [...REFRESH_TUNING, ...TOKEN_KEY_VARIABLES, "CAFE24_PLAINTEXT_TOKEN_COPY"],
    uses: [
      ...REFRESH_VARIABLES,
      ...TOKEN_KEY_VARIABLES,
      ...SECRET_KEY_VARIABLES,
      "CAFE24_PLAINTEXT_TOKEN_COPY",
      "CORS_ALLOWED_ORIGINS",
    ],
  },
  "cafe24-webhook": {
    required: REFRESH_CONFIG_REQUIRED,
    tolerates: [...REFRESH_TUNING, ...TOKEN_KEY_VARIABLES, "CAFE24_WEBHOOK_API_KEY"],
    uses: [
      ...REFRESH_VARIABLES,
      ...TOKEN_KEY_VARIABLES,
      "CAFE24_WEBHOOK_API_KEY",
      "CORS_ALLOWED_ORIGINS",
    ],
  },
} as const satisfies Record<
  string,
  { required: readonly EnvName[]; uses: readonly EnvName[]; tolerates?: readonly EnvName[] }
>;

export type FunctionName = keyof typeof FUNCTION_SETTINGS;
