import { presentsSecretApiKey } from "./api_keys.ts";
import {
  configRules,
  type FunctionName,
  loadConfig,
  USER_AUTH_CONFIG_REQUIRED,
  userAuthSettings,
} from "./config.ts";
import { RequestError } from "./errors.ts";
import { database } from "./db.ts";
import { bearerToken, readBodyText } from "./http.ts";
import { countUnauthenticated, logEvent } from "./log.ts";
import { secretsMatch } from "./secrets.ts";
import { verifyCronCall } from "./signature.ts";
import { looksLikeJwt, verifyUserJwt } from "./user_auth.ts";

/**
 * Who is calling a function, told apart here and nowhere else. A function names the kinds it
 * accepts; everything else is UNAUTHORIZED, counted for the periodic `unauthenticated_requests`
 * line rather than logged one by one (a flood of bad credentials must not flood the log).
 *   - `secret`: the holder of CRON_SECRET. The scheduler signs its calls with it
 *     (`x-cron-timestamp`, `x-cron-nonce`, `x-cron-signature`: HMAC-SHA256 over
 *     `<function>.<timestamp>.<nonce>.<body>`, see signCronCall in signature.ts), so that pg_net's
 *     queue, which other database roles can read, never holds the secret itself. Whoever reads
 *     the queue holds a valid signature, though, so a signature is taken once: its nonce is
 *     recorded in the database (cafe24_private.cron_nonces) and a nonce seen before is refused;
 *     a call whose nonce cannot be recorded is not run (DATABASE_UNAVAILABLE). A signed call
 *     carries no query string (it would not be signed) and is `signed: true`: the function
 *     answers it 202 at once, so a copy of one never reads a run's summary. An operator may send
 *     the secret itself in `x-cron-secret` or as the bearer token. CRON_SECRET must be set
 *     wherever it is accepted: without it the function is misconfigured, and saying so beats
 *     quietly serving only half of its callers.
 *   - `app`: the project's secret API key (api_keys.ts), the app's backend acting for every user.
 *   - `user`: a signed-in user of the app, by their Supabase access token (user_auth.ts).
 * The variables authentication itself needs are the only configuration checked before the caller
 * is known: CRON_SECRET for `secret`, SUPABASE_URL and a public key for `user`.
 */
export type Caller =
  | { kind: "secret"; signed?: true }
  | { kind: "app" }
  | { kind: "user"; userId: string };
export type CallerKind = Caller["kind"];

/**
 * Records a signed call's nonce; false when it was recorded before (a replay). Throws when the
 * database cannot be reached.
 */
export type TakeCronNonce = (nonce: string) => Promise<boolean>;

/**
 * Throws RequestError: CRON_SECRET_NOT_CONFIGURED, UNAUTHORIZED, CONFIG_MISSING/INVALID,
 * DATABASE_UNAVAILABLE. `takeNonce` replaces the database for tests.
 */
export async function identifyCaller(
  request: Request,
  env: Record<string, string | undefined>,
  functionName: FunctionName,
  accepts: readonly CallerKind[],
  takeNonce?: TakeCronNonce,
): Promise<Caller> {
  const unauthorized = (reason: string) => {
    countUnauthenticated(functionName, reason);
    return new RequestError("UNAUTHORIZED");
  };
  const cronSecret = !accepts.includes("secret")
    ? null
    : isUserCall(request, accepts)
    ? cronSecretIfSet(env)
    : requireCronSecret(env, functionName);

  if (cronSecret !== null) {
    const signature = request.headers.get("x-cron-signature");
    if (signature !== null) {
      if (new URL(request.url).search !== "") throw unauthorized("signed_call_with_query");
      let body: string;
      try {
        body = await readBodyText(request.clone());
      } catch {
        throw unauthorized("unreadable_signed_body");
      }
      const nonce = request.headers.get("x-cron-nonce");
      const signed = verifyCronCall(
        cronSecret,
        functionName,
        { timestamp: request.headers.get("x-cron-timestamp"), nonce, signature },
        body,
        Math.floor(Date.now() / 1000),
      );
      if (!signed) throw unauthorized("bad_cron_signature");
      const take = takeNonce ?? databaseNonceTaker(env, functionName);
      let fresh: boolean;
      try {
        fresh = await take(nonce!);
      } catch (error) {
        if (error instanceof RequestError) throw error;
        // Unverified freshness is no freshness: the call is not run.
        logEvent("error", "cron_nonce_not_recorded", { function: functionName });
        throw new RequestError("DATABASE_UNAVAILABLE");
      }
      if (!fresh) throw unauthorized("replayed_nonce");
      return { kind: "secret", signed: true };
    }
    // A caller that names the secret header means the secret: no second guess as a user.
    const secretHeader = request.headers.get("x-cron-secret");
    if (secretHeader !== null) {
      if (secretsMatch(secretHeader, cronSecret)) return { kind: "secret" };
      throw unauthorized("wrong_cron_secret");
    }
  }

  if (accepts.includes("app")) {
    const keys = loadConfig(env, [], [
      "SUPABASE_SECRET_KEYS",
      "SUPABASE_SERVICE_ROLE_KEY",
      "CAFE24_ACCEPT_SERVICE_ROLE_KEY",
      "CRON_SECRET",
    ]);
    if (keys.ok && presentsSecretApiKey(request, keys.config)) return { kind: "app" };
  }

  const bearer = bearerToken(request);
  if (bearer === null) {
    const presented = request.headers.get("apikey") !== null;
    throw unauthorized(presented ? "wrong_api_key" : "no_credentials");
  }
  if (cronSecret !== null && secretsMatch(bearer, cronSecret)) return { kind: "secret" };
  if (!accepts.includes("user") || !looksLikeJwt(bearer)) {
    throw unauthorized(cronSecret !== null ? "wrong_cron_secret" : "wrong_api_key");
  }

  const loaded = loadConfig(env, USER_AUTH_CONFIG_REQUIRED, [
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_PUBLISHABLE_KEYS",
  ]);
  if (!loaded.ok) refuseConfig(functionName, loaded);
  const auth = userAuthSettings(loaded.config);
  if ("missing" in auth) {
    refuseConfig(functionName, {
      code: "CONFIG_MISSING",
      names: auth.missing,
      rules: configRules("CONFIG_MISSING", auth.missing),
    });
  }
  const user = await verifyUserJwt(bearer, auth);
  if (user === null) throw unauthorized("invalid_jwt");
  return { kind: "user", userId: user.id };
}

/**
 * The nonces taken, in the database every instance shares: one statement, which inserts the
 * nonce unless it is there. cafe24_private.trim_histories deletes them once no signature that
 * carries them can be fresh.
 */
function databaseNonceTaker(
  env: Record<string, string | undefined>,
  functionName: FunctionName,
): TakeCronNonce {
  const loaded = loadConfig(env, ["SUPABASE_DB_URL"], ["SUPABASE_DB_URL"]);
  if (!loaded.ok) refuseConfig(functionName, loaded);
  const sql = database(loaded.config.SUPABASE_DB_URL);
  return async (nonce) => {
    const rows = await sql`
      insert into cafe24_private.cron_nonces (nonce) values (${nonce})
      on conflict (nonce) do nothing
      returning 1`;
    return rows.length === 1;
  };
}

/**
 * A signed-in user's call, where users are callers: a JWT as the bearer token and none of the
 * scheduler's headers. It needs no CRON_SECRET: an unset one stops the scheduler, not the users.
 */
function isUserCall(request: Request, accepts: readonly CallerKind[]): boolean {
  if (!accepts.includes("user")) return false;
  if (request.headers.has("x-cron-signature") || request.headers.has("x-cron-secret")) return false;
  const bearer = bearerToken(request);
  return bearer !== null && looksLikeJwt(bearer);
}

function cronSecretIfSet(env: Record<string, string | undefined>): string | null {
  const loaded = loadConfig(env, ["CRON_SECRET"], ["CRON_SECRET"]);
  return loaded.ok ? loaded.config.CRON_SECRET : null;
}

function requireCronSecret(
  env: Record<string, string | undefined>,
  functionName: FunctionName,
): string {
  const loaded = loadConfig(env, ["CRON_SECRET"], ["CRON_SECRET"]);
  if (loaded.ok) return loaded.config.CRON_SECRET;
  logEvent("error", "config_missing", {
    function: functionName,
    missing: loaded.names,
    rules: loaded.rules,
  });
  throw new RequestError("CRON_SECRET_NOT_CONFIGURED");
}

/** A setting authentication needs is missing or invalid: logged, then answered (names, rules). */
function refuseConfig(
  functionName: FunctionName,
  refusal: { code: "CONFIG_MISSING" | "CONFIG_INVALID"; names: string[]; rules: string[] },
): never {
  logEvent("error", "config_missing", {
    function: functionName,
    names: refusal.names,
    rules: refusal.rules,
  });
  const key = refusal.code === "CONFIG_MISSING" ? "missing" : "invalid";
  throw new RequestError(refusal.code, { [key]: refusal.names, rules: refusal.rules });
}
