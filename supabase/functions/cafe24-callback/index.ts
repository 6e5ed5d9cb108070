/**
 * cafe24-callback: where Cafe24 sends the browser back, `?code=…&state=…` (or `?error=…`).
 * The browser arrives from Cafe24 without a JWT, so verify_jwt is off in config.toml; the signed,
 * single-use state is what ties the request to the user who started it (see connect.ts).
 * Ends with a 302 to CAFE24_APP_RETURN_URL, or a small page when that is not set.
 */
import { CALLBACK_CONFIG_REQUIRED, loadConfig } from "../_shared/platform/config.ts";
import {
  callbackParameters,
  completeConnection,
  type ConnectOutcome,
} from "../_shared/connect/callback.ts";
import { connectResponse } from "../_shared/connect/response.ts";
import { createConnectStore } from "../_shared/connect/store.ts";
import { database } from "../_shared/platform/db.ts";
import { openRequest } from "../_shared/platform/http.ts";
import { logEvent } from "../_shared/platform/log.ts";

async function handle(request: Request): Promise<Response> {
  const env = Deno.env.toObject();
  const { cors, early } = openRequest(request, env, ["GET"]);
  if (early !== null) return early;

  const returnUrl = URL.canParse(env.CAFE24_APP_RETURN_URL ?? "")
    ? env.CAFE24_APP_RETURN_URL!
    : null;
  const loaded = loadConfig(env, CALLBACK_CONFIG_REQUIRED);
  if (!loaded.ok) {
    logEvent("error", "config_missing", {
      function: "cafe24-callback",
      names: loaded.names,
      rules: loaded.rules,
    });
    return connectResponse({ ok: false, reason: loaded.code }, returnUrl, cors);
  }
  const config = loaded.config;

  let outcome: ConnectOutcome;
  try {
    outcome = await completeConnection({
      store: createConnectStore(database(config.SUPABASE_DB_URL)),
      settings: {
        apiBaseUrl: config.CAFE24_API_BASE_URL,
        clientId: config.CAFE24_CLIENT_ID,
        clientSecret: config.CAFE24_CLIENT_SECRET_KEY,
        redirectUri: config.CAFE24_REDIRECT_URI,
        stateSecret: config.CAFE24_OAUTH_STATE_SECRET,
        apiVersion: config.CAFE24_API_VERSION ?? null,
        requestTimeoutMs: config.CAFE24_REQUEST_TIMEOUT_MS,
      },
    }, callbackParameters(new URL(request.url)));
  } catch {
    logEvent("error", "cafe24_connect_crashed", {});
    outcome = { ok: false, reason: "INTERNAL_ERROR" };
  }
  return connectResponse(outcome, returnUrl, cors);
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
