/**
 * cafe24-callback: connecting a mall takes two requests.
 *   GET  ?code=…&state=… (or ?error=…): where Cafe24 sends the browser back. No JWT arrives with
 *        it (verify_jwt is off in config.toml); the signed, single-use state is the gate. The code
 *        is exchanged at once and the pair parked; 302 to
 *        CAFE24_APP_RETURN_URL#cafe24=pending&handle=…&mall_id=…, or ?cafe24=error&reason=CODE.
 *   POST {"handle": "…"} with Authorization: Bearer <the user's access token>: the app completes
 *        the connection. Only the user who started it succeeds; see _shared/connect/completion.ts.
 */
import { cafe24App } from "../_shared/cafe24/app.ts";
import {
  type CallbackOutcome,
  callbackParameters,
  type ConnectDeps,
  finishAuthorization,
} from "../_shared/connect/callback.ts";
import { completeConnection } from "../_shared/connect/completion.ts";
import { connectResponse } from "../_shared/connect/response.ts";
import { createConnectStore } from "../_shared/connect/store.ts";
import { CALLBACK_CONFIG_REQUIRED, type Config, loadConfig } from "../_shared/platform/config.ts";
import { database } from "../_shared/platform/db.ts";
import { RequestError } from "../_shared/platform/errors.ts";
import { reportFailure } from "../_shared/platform/failure.ts";
import { requireSignedInUser } from "../_shared/platform/handler.ts";
import {
  configErrorResponse,
  errorResponse,
  jsonResponse,
  openRequest,
  requestErrorResponse,
  requestParameters,
} from "../_shared/platform/http.ts";
import { logEvent } from "../_shared/platform/log.ts";

const FUNCTION = "cafe24-callback";

function connectDeps(config: Config<(typeof CALLBACK_CONFIG_REQUIRED)[number]>): ConnectDeps {
  return {
    store: createConnectStore(database(config.SUPABASE_DB_URL)),
    settings: {
      app: cafe24App(config),
      redirectUri: config.CAFE24_REDIRECT_URI,
      stateSecret: config.CAFE24_OAUTH_STATE_SECRET,
    },
  };
}

async function handle(request: Request): Promise<Response> {
  const env = Deno.env.toObject();
  const { cors, early } = openRequest(request, env, ["GET", "POST"]);
  if (early !== null) return early;

  const loaded = loadConfig(env, CALLBACK_CONFIG_REQUIRED);
  if (request.method === "POST") {
    if (!loaded.ok) return configErrorResponse(FUNCTION, loaded.code, loaded.names, cors);
    return await complete(request, loaded.config, cors);
  }

  const returnUrl = URL.canParse(env.CAFE24_APP_RETURN_URL ?? "")
    ? env.CAFE24_APP_RETURN_URL!
    : null;
  if (!loaded.ok) {
    logEvent("error", "config_missing", {
      function: FUNCTION,
      names: loaded.names,
      rules: loaded.rules,
    });
    return connectResponse({ ok: false, reason: loaded.code }, returnUrl, cors);
  }
  let outcome: CallbackOutcome;
  try {
    outcome = await finishAuthorization(
      connectDeps(loaded.config),
      callbackParameters(new URL(request.url)),
    );
  } catch (error) {
    outcome = { ok: false, reason: reportFailure("cafe24_connect_crashed", error) };
  }
  return connectResponse(outcome, returnUrl, cors);
}

async function complete(
  request: Request,
  config: Config<(typeof CALLBACK_CONFIG_REQUIRED)[number]>,
  cors: Record<string, string>,
): Promise<Response> {
  const user = await requireSignedInUser(request, config, FUNCTION, cors);
  if (user instanceof Response) return user;
  try {
    // The handle travels in the body only: a query string ends up in access logs.
    if (new URL(request.url).searchParams.has("handle")) {
      throw new RequestError("INVALID_REQUEST", { detail: "send the handle in a JSON body" });
    }
    const { handle } = await requestParameters(request);
    const connected = await completeConnection(connectDeps(config), user.id, handle);
    return jsonResponse(
      {
        connected: true,
        mall_id: connected.mallId,
        shop_no: connected.shopNo,
        ...(connected.warning === null ? {} : { warning: connected.warning }),
      },
      200,
      { ...cors, "Cache-Control": "no-store" },
    );
  } catch (error) {
    if (error instanceof RequestError) return requestErrorResponse(error, cors);
    const failure = reportFailure("cafe24_connect_crashed", error, {
      fields: { user_id: user.id },
    });
    return errorResponse(failure, {}, cors);
  }
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
