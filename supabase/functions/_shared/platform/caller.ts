import { presentsSecretApiKey } from "./api_keys.ts";
import {
  configRules,
  type FunctionName,
  loadConfig,
  USER_AUTH_CONFIG_REQUIRED,
  userAuthSettings,
} from "./config.ts";
import { RequestError } from "./errors.ts";
import { bearerToken, readBodyText } from "./http.ts";
import { countUnauthenticated, logEvent } from "./log.ts";
import { secretsMatch } from "./secrets.ts";
import { verifySignedBody } from "./signature.ts";
import { looksLikeJwt, verifyUserJwt } from "./user_auth.ts";

/**
 * Who is calling a function, told apart here and nowhere else. A function names the kinds it
 * accepts; everything else is UNAUTHORIZED, counted for the periodic `unauthenticated_requests`
 * line rather than logged one by one (a flood of bad credentials must not flood the log).
 *   - `secret`: the holder of CRON_SECRET. The scheduler signs its calls with it
 *     (`x-cron-timestamp`, `x-cron-signature`: HMAC-SHA256 over `<timestamp>.<body>`, see
 *     signature.ts), so that pg_net's queue, which other database roles can read, never holds the
 *     secret itself; a signed call carries no query string (it would not be signed). An operator
 *     may send the secret itself in `x-cron-secret` or as the bearer token. CRON_SECRET must be
 *     set wherever it is accepted: without it the function is misconfigured, and saying so beats
 *     quietly serving only half of its callers.
 *   - `app`: the project's secret API key (api_keys.ts), the app's backend acting for every user.
 *   - `user`: a signed-in user of the app, by their Supabase access token (user_auth.ts).
 * The variables authentication itself needs are the only configuration checked before the caller
 * is known: CRON_SECRET for `secret`, SUPABASE_URL and a public key for `user`.
 */
export type Caller = { kind: "secret" } | { kind: "app" } | { kind: "user"; userId: string };
export type CallerKind = Caller["kind"];

/** Throws RequestError: CRON_SECRET_NOT_CONFIGURED, UNAUTHORIZED, CONFIG_MISSING/INVALID. */
export async function identifyCaller(
  request: Request,
  env: Record<string, string | undefined>,
  functionName: FunctionName,
  accepts: readonly CallerKind[],
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
      const signed = verifySignedBody(
        cronSecret,
        { timestamp: request.headers.get("x-cron-timestamp"), signature },
        body,
        Math.floor(Date.now() / 1000),
      );
      if (signed) return { kind: "secret" };
      throw unauthorized("bad_cron_signature");
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
  if (!loaded.ok) {
    logEvent("error", "config_missing", {
      function: functionName,
      names: loaded.names,
      rules: loaded.rules,
    });
    const key = loaded.code === "CONFIG_MISSING" ? "missing" : "invalid";
    throw new RequestError(loaded.code, { [key]: loaded.names, rules: loaded.rules });
  }
  const auth = userAuthSettings(loaded.config);
  if ("missing" in auth) {
    const rules = configRules("CONFIG_MISSING", auth.missing);
    logEvent("error", "config_missing", { function: functionName, names: auth.missing, rules });
    throw new RequestError("CONFIG_MISSING", { missing: auth.missing, rules });
  }
  const user = await verifyUserJwt(bearer, auth);
  if (user === null) throw unauthorized("invalid_jwt");
  return { kind: "user", userId: user.id };
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
