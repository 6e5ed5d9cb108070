/**
 * The refresh stack for integration tests, all real parts over real connections: a throwaway
 * PostgreSQL with pg_cron and the migrations, the Cafe24 sandbox over HTTP, and the functions
 * served over HTTP by a child process. `stop()` tears everything down, also after a failure.
 */
import {
  type Cafe24Sandbox,
  type Cafe24SandboxOptions,
  startCafe24Sandbox,
} from "../../local/cafe24_sandbox.ts";
import { startTestDatabase, type TestDatabase } from "../../local/postgres/database.ts";
import {
  configuredTokenSeal,
  connectionPlace,
  type TokenSeal,
} from "../../supabase/functions/_shared/platform/token_seal.ts";
import type { TokenField } from "../../supabase/functions/_shared/platform/token_crypto.ts";
import {
  type FunctionsServer,
  sandboxFunctionEnv,
  startFunctionsServer,
} from "../../local/functions/server.ts";

export const CLIENT_ID = "test-client-id";
export const CLIENT_SECRET = "test-client-secret-0123456789";
export const CRON_SECRET = "test-cron-secret-abcdefghijklmnop";
const TEST_APP = { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, cronSecret: CRON_SECRET };

/** The project's secret API keys in tests: the default one and a second, rotated-in one. */
export const SECRET_KEY = "sb_secret_test_0123456789abcdefghijklmn";
export const OTHER_SECRET_KEY = "sb_secret_test_rotated_9876543210zyxw";
/** Shaped like the legacy service_role JWT (HS256); only ever compared, never verified. */
export const SERVICE_ROLE_KEY =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.dGVzdC1zZXJ2aWNlLXJvbGU";
/** The keys as Supabase gives them to the functions. */
export const API_KEYS_ENV = {
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY, rotated: OTHER_SECRET_KEY }),
  SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE_KEY,
};

/**
 * The connect flow's settings in tests. Cafe24 only redirects to a registered HTTPS URL, so the
 * callback is registered under a public-looking address that the tests map to the local server.
 */
export const CONNECT_SETTINGS = {
  publicFunctionsUrl: "https://functions.test/functions/v1",
  redirectUri: "https://functions.test/functions/v1/cafe24-callback",
  returnUrl: "https://app.test/settings/integrations?tab=cafe24",
  stateSecret: "test-oauth-state-secret-0123456789",
  apiVersion: "2025-12-01",
  scopes: "mall.read_store,mall.read_product",
} as const;

/** A refresh stack that can also run the connect flow, verifying users against `auth`. */
export function connectStackOptions(auth: { url: string; anonKey: string }): StackOptions {
  return {
    env: {
      SUPABASE_URL: auth.url,
      SUPABASE_ANON_KEY: auth.anonKey,
      CAFE24_REDIRECT_URI: CONNECT_SETTINGS.redirectUri,
      CAFE24_OAUTH_STATE_SECRET: CONNECT_SETTINGS.stateSecret,
      CAFE24_SCOPES: CONNECT_SETTINGS.scopes,
      CAFE24_APP_RETURN_URL: CONNECT_SETTINGS.returnUrl,
      CAFE24_API_VERSION: CONNECT_SETTINGS.apiVersion,
    },
    sandbox: { redirectUri: CONNECT_SETTINGS.redirectUri },
  };
}

export interface RefreshStack {
  db: TestDatabase;
  sandbox: Cafe24Sandbox;
  functions: FunctionsServer;
  env: Record<string, string>;
  /** Calls cafe24-refresh with the cron secret unless `headers` say otherwise. */
  refresh(query?: Record<string, string>, init?: RequestInit): Promise<Response>;
  /** Starts another functions process (e.g. with other env or TZ); stopped with the stack. */
  startFunctions(extraEnv?: Record<string, string>): Promise<FunctionsServer>;
  stop(): Promise<void>;
}

export interface StackOptions {
  env?: Record<string, string>;
  sandbox?: Partial<Cafe24SandboxOptions>;
}

export async function startRefreshStack(options: StackOptions = {}): Promise<RefreshStack> {
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    cleanups.length = 0;
  };
  try {
    const db = await startTestDatabase();
    cleanups.push(() => db.stop());
    const sandbox = await startCafe24Sandbox({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      quiet: true,
      seed: 1,
      ...options.sandbox,
    });
    cleanups.push(() => sandbox.close());
    // A fresh token key ring per stack (sandboxFunctionEnv), shared by every functions process
    // this stack starts: they all read the one database.
    const env: Record<string, string> = {
      ...sandboxFunctionEnv(db.dbUrl, sandbox, TEST_APP),
      CAFE24_REQUEST_TIMEOUT_MS: "3000",
      ...options.env,
    };
    const startFunctions = async (extraEnv: Record<string, string> = {}) => {
      const server = await startFunctionsServer({ ...env, ...extraEnv });
      cleanups.push(() => server.stop());
      return server;
    };
    const functions = await startFunctions();
    sealOfDatabase.set(db, configuredTokenSeal(env));
    return {
      db,
      sandbox,
      functions,
      env,
      refresh: (query = {}, init = {}) => {
        const url = new URL(`${functions.url}/cafe24-refresh`);
        for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
        const headers = new Headers(init.headers);
        if (!headers.has("x-cron-secret") && !headers.has("authorization")) {
          headers.set("x-cron-secret", CRON_SECRET);
        }
        return fetch(url, { method: "POST", ...init, headers });
      },
      startFunctions,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface ConnectionSeed {
  mallId: string;
  refreshToken: string;
  accessToken?: string;
  expiresAt?: string | null;
  userId?: string;
  /** Extra keys under providers.cafe24 (settings such as scope, shop_no, board_no). */
  extra?: Record<string, unknown>;
  /** Other providers next to cafe24. */
  otherProviders?: Record<string, unknown>;
}

/** Inserts an auth_settings row for a connection and returns its id. */
export async function insertConnection(db: TestDatabase, seed: ConnectionSeed): Promise<string> {
  const cafe24: Record<string, unknown> = {
    mall_id: seed.mallId,
    refresh_token: seed.refreshToken,
    ...(seed.accessToken === undefined ? {} : { access_token: seed.accessToken }),
    ...(seed.expiresAt === undefined || seed.expiresAt === null
      ? {}
      : { expires_at: seed.expiresAt }),
    ...seed.extra,
  };
  const providers = { ...seed.otherProviders, cafe24 };
  const [row] = await db.sql<{ id: string }[]>`
    insert into public.auth_settings (user_id, providers)
    values (${seed.userId ?? crypto.randomUUID()}, ${db.sql.json(providers as never)})
    returning id`;
  return row!.id;
}

/** Connects `mallId` at the sandbox and stores its tokens, due now (no expiry stored). */
export async function connectMall(
  stack: Pick<RefreshStack, "db" | "sandbox">,
  mallId: string,
  seed: Partial<ConnectionSeed> = {},
): Promise<{ id: string; refreshToken: string }> {
  const tokens = stack.sandbox.issueTokens(mallId);
  const id = await insertConnection(stack.db, {
    mallId,
    refreshToken: tokens.refreshToken,
    accessToken: tokens.accessToken,
    expiresAt: null,
    ...seed,
  });
  return { id, refreshToken: tokens.refreshToken };
}

/**
 * Each stack's database and the seal of the ring its functions run with: the helpers below open
 * stored tokens as the functions do, so tests compare plaintext. (token_encryption_test.ts checks
 * that what is stored is ciphertext.)
 */
const sealOfDatabase = new WeakMap<TestDatabase, TokenSeal>();

/** A stored token opened with the stack's ring; the stored text when it does not open. */
export async function openStored(
  db: TestDatabase,
  id: string,
  field: TokenField,
  stored: string,
): Promise<string> {
  const seal = sealOfDatabase.get(db);
  if (seal === undefined) return stored;
  const opened = await seal.open(connectionPlace(id), field, stored);
  return opened.ok ? opened.value : stored;
}

/**
 * A connection as the original app kept it under providers.cafe24: the settings there, with the
 * pair and its expiries from the private row (cafe24_private.connections) where they live now.
 * Expiries read back as toISOString() writes them; null when there is no providers.cafe24.
 */
export async function cafe24Entry(db: TestDatabase, id: string): Promise<Record<string, unknown>> {
  const [row] = await db.sql<{ cafe24: Record<string, unknown> }[]>`
    select case when jsonb_typeof(s.providers -> 'cafe24') = 'object'
      then (s.providers -> 'cafe24') || jsonb_strip_nulls(jsonb_build_object(
        'access_token', c.access_token,
        'refresh_token', c.refresh_token,
        'expires_at', to_char(c.access_expires_at at time zone 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'refresh_token_expires_at', to_char(c.refresh_expires_at at time zone 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
      else s.providers -> 'cafe24' end as cafe24
    from public.auth_settings s
    left join cafe24_private.connections c on c.auth_settings_id = s.id
    where s.id = ${id}`;
  const entry = row!.cafe24;
  for (const field of ["access_token", "refresh_token"] as const) {
    if (typeof entry?.[field] === "string") {
      entry[field] = await openStored(db, id, field, entry[field] as string);
    }
  }
  return entry;
}

/**
 * Forgets every stored access token expiry, as removing providers.cafe24.expires_at did when the
 * pair lived there: every connection is due now.
 */
export async function forgetExpiries(db: TestDatabase): Promise<void> {
  await db.sql`
    update cafe24_private.connections
    set access_expires_at = null, due_at = '-infinity'
    where access_expires_at is not null or due_at <> '-infinity'`;
}

/** The refresh token each connection of malls matching `mallLike` holds (its private row). */
export async function storedRefreshTokens(
  db: TestDatabase,
  mallLike: string,
): Promise<{ mall: string; token: string }[]> {
  const rows = await db.sql<{ id: string; mall: string; token: string }[]>`
    select auth_settings_id as id, mall_id as mall, refresh_token as token
    from cafe24_private.connections where mall_id like ${mallLike}`;
  return await Promise.all(rows.map(async ({ id, mall, token }) => ({
    mall,
    token: token === null ? token : await openStored(db, id, "refresh_token", token),
  })));
}

/** providers.cafe24 itself: what the app reads there (no tokens unless copied). */
export async function providersEntry(
  db: TestDatabase,
  id: string,
): Promise<Record<string, unknown>> {
  const [row] = await db.sql<{ cafe24: Record<string, unknown> }[]>`
    select providers -> 'cafe24' as cafe24 from public.auth_settings where id = ${id}`;
  return row!.cafe24;
}

export async function connectionState(db: TestDatabase, id: string) {
  const [row] = await db.sql<{
    status: string;
    consecutive_failures: number;
    next_attempt_at: Date | null;
    last_error_code: string | null;
    lease_id: string | null;
    in_flight_since: Date | null;
    answer_possibly_lost_at: Date | null;
  }[]>`select * from cafe24_private.connections where auth_settings_id = ${id}`;
  return row!;
}
