/**
 * cafe24-callback: connecting a mall takes two requests.
 *   GET  ?code=…&state=… (or ?error=…): where Cafe24 sends the browser back. No JWT arrives with
 *        it (verify_jwt is off in config.toml); the signed, single-use state is the gate. The code
 *        is exchanged at once and the pair parked; 302 to
 *        CAFE24_APP_RETURN_URL#cafe24=pending&handle=…&mall_id=…, or ?cafe24=error&reason=CODE.
 *   POST {"handle": "…"} with Authorization: Bearer <the user's access token>: the app completes
 *        the connection. Only the user who started it succeeds; see _shared/connect/completion.ts.
 */
import { configuredTokenSeal } from "../_shared/platform/token_seal.ts";
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
import { CALLBACK_CONFIG_REQUIRED, type Config, configRules } from "../_shared/platform/config.ts";
import { database } from "../_shared/platform/db.ts";
import { RequestError } from "../_shared/platform/errors.ts";
import { enter } from "../_shared/platform/handler.ts";
import { reportFailure } from "../_shared/platform/failure.ts";
import {
  errorResponse,
  jsonResponse,
  requestErrorResponse,
  requestParameters,
} from "../_shared/platform/http.ts";
import { logEvent } from "../_shared/platform/log.ts";

const FUNCTION = "cafe24-callback";

function connectDeps(config: Config<(typeof CALLBACK_CONFIG_REQUIRED)[number]>): ConnectDeps {
  return {
    store: createConnectStore(database(config.SUPABASE_DB_URL), configuredTokenSeal(config)),
    settings: {
      app: cafe24App(config),
      redirectUri: config.CAFE24_REDIRECT_URI,
      stateSecret: config.CAFE24_OAUTH_STATE_SECRET,
      plaintextTokenCopy: config.CAFE24_PLAINTEXT_TOKEN_COPY,
    },
  };
}

async function handle(request: Request): Promise<Response> {
  const returnUrl = URL.canParse(Deno.env.get("CAFE24_APP_RETURN_URL") ?? "")
    ? Deno.env.get("CAFE24_APP_RETURN_URL")!
    : null;
  const entered = await enter(request, FUNCTION, {
    callers: { GET: ["anyone"], POST: ["user"] },
    // Cafe24 sends the browser here: a configuration error sends it back to the app, which
    // shows it (`?cafe24=error&reason=CONFIG_…`); the completion answers JSON like every call.
    configError: (code, names, headers) => {
      if (request.method !== "GET") return null;
      logEvent("error", "config_missing", {
        function: FUNCTION,
        names,
        rules: configRules(code, names),
      });
      return connectResponse({ ok: false, reason: code }, returnUrl, headers);
    },
  });
  if (entered instanceof Response) return entered;
  const { config, caller, headers: cors } = entered;
  if (caller.kind === "user") return await complete(request, caller.userId, config, cors);

  let outcome: CallbackOutcome;
  try {
    outcome = await finishAuthorization(
      connectDeps(config),
      callbackParameters(new URL(request.url)),
    );
  } catch (error) {
    outcome = { ok: false, reason: reportFailure("cafe24_connect_crashed", error) };
  }
  return connectResponse(outcome, returnUrl, cors);
}

async function complete(
  request: Request,
  userId: string,
  config: Config<(typeof CALLBACK_CONFIG_REQUIRED)[number]>,
  cors: Record<string, string>,
): Promise<Response> {
  try {
    // The handle travels in the body only: a query string ends up in access logs.
    if (new URL(request.url).searchParams.has("handle")) {
      throw new RequestError("INVALID_REQUEST", { detail: "send the handle in a JSON body" });
    }
    const { handle } = await requestParameters(request);
    const connected = await completeConnection(connectDeps(config), userId, handle);
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
      fields: { user_id: userId },
    });
    return errorResponse(failure, {}, cors);
  }
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
