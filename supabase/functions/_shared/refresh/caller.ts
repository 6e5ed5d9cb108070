import {
  configRules,
  loadConfig,
  USER_AUTH_CONFIG_REQUIRED,
  userAuthSettings,
} from "../platform/config.ts";
import { RequestError } from "../platform/errors.ts";
import { countUnauthenticated, logEvent } from "../platform/log.ts";
import { secretsMatch } from "../platform/secrets.ts";
import { bearerToken } from "../platform/http.ts";
import { looksLikeJwt, verifyUserJwt } from "../platform/user_auth.ts";

/**
 * Who is calling cafe24-refresh. Two kinds of caller, told apart here and nowhere else:
 *   - the scheduler (or an operator): CRON_SECRET in `x-cron-secret` or as the bearer token;
 *     every connection is in scope;
 *   - a signed-in user of the app ("refresh now" on the settings page): their Supabase access
 *     token as the bearer token; only their own connections are in scope.
 * Everything else is UNAUTHORIZED, counted for the periodic `unauthenticated_requests` line
 * rather than logged one by one. CRON_SECRET must be set either way: without it the function is
 * misconfigured, and saying so beats quietly serving only half of its callers.
 */
export type RefreshCaller = { kind: "secret" } | { kind: "user"; userId: string };

const FUNCTION = "cafe24-refresh";

/** Throws RequestError: CRON_SECRET_NOT_CONFIGURED, UNAUTHORIZED, CONFIG_MISSING/INVALID. */
export async function identifyRefreshCaller(
  request: Request,
  env: Record<string, string | undefined>,
): Promise<RefreshCaller> {
  const cronSecret = env.CRON_SECRET;
  if (!cronSecret) {
    logEvent("error", "config_missing", {
      function: FUNCTION,
      missing: ["CRON_SECRET"],
      rules: configRules("CONFIG_MISSING", ["CRON_SECRET"]),
    });
    throw new RequestError("CRON_SECRET_NOT_CONFIGURED");
  }
  const unauthorized = (reason: string) => {
    countUnauthenticated(FUNCTION, reason);
    return new RequestError("UNAUTHORIZED");
  };

  // A caller that names the secret header means the secret: no second guess as a user.
  const secretHeader = request.headers.get("x-cron-secret");
  if (secretHeader !== null) {
    if (secretsMatch(secretHeader, cronSecret)) return { kind: "secret" };
    throw unauthorized("wrong_cron_secret");
  }
  const bearer = bearerToken(request);
  if (bearer === null) throw unauthorized("no_credentials");
  if (secretsMatch(bearer, cronSecret)) return { kind: "secret" };
  if (!looksLikeJwt(bearer)) throw unauthorized("wrong_cron_secret");

  const loaded = loadConfig(env, USER_AUTH_CONFIG_REQUIRED);
  if (!loaded.ok) {
    logEvent("error", "config_missing", {
      function: FUNCTION,
      names: loaded.names,
      rules: loaded.rules,
    });
    const key = loaded.code === "CONFIG_MISSING" ? "missing" : "invalid";
    throw new RequestError(loaded.code, { [key]: loaded.names, rules: loaded.rules });
  }
  const auth = userAuthSettings(loaded.config);
  if ("missing" in auth) {
    const rules = configRules("CONFIG_MISSING", auth.missing);
    logEvent("error", "config_missing", { function: FUNCTION, names: auth.missing, rules });
    throw new RequestError("CONFIG_MISSING", { missing: auth.missing, rules });
  }
  const user = await verifyUserJwt(bearer, auth);
  if (user === null) throw unauthorized("invalid_jwt");
  return { kind: "user", userId: user.id };
}
