import {
  configRules,
  loadConfig,
  USER_AUTH_CONFIG_REQUIRED,
  userAuthSettings,
} from "../platform/config.ts";
import { RequestError } from "../platform/errors.ts";
import { countUnauthenticated, logEvent } from "../platform/log.ts";
import { secretsMatch } from "../platform/secrets.ts";
import { bearerToken, readBodyText } from "../platform/http.ts";
import { verifySignedBody } from "../platform/signature.ts";
import { looksLikeJwt, verifyUserJwt } from "../platform/user_auth.ts";

/**
 * Who is calling cafe24-refresh (and cafe24-events). Two kinds of caller, told apart here and
 * nowhere else:
 *   - the scheduler: a request signed with CRON_SECRET (`x-cron-timestamp`, `x-cron-signature`:
 *     HMAC-SHA256 over `<timestamp>.<body>`, see platform/signature.ts), so that pg_net's queue,
 *     which other database roles can read, never holds the secret itself. A signed call carries no
 *     query string (it would not be signed), and a replay within the 5-minute window repeats the
 *     very same request: a scheduled run, which the leases make harmless;
 *   - an operator: CRON_SECRET itself in `x-cron-secret` or as the bearer token;
 *   - either way every connection is in scope;
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
