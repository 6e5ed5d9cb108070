/**
 * cafe24-authorize: starts connecting a Cafe24 mall for the signed-in user.
 *   GET /functions/v1/cafe24-authorize?mall_id=…[&scope=…][&mode=json]
 *   Authorization: Bearer <the user's Supabase access token>
 * `mode=json` answers `{"url": …}` for the app to navigate to; otherwise 302 to that URL.
 * `scope` may narrow CAFE24_SCOPES (the app's allow-list), never widen it.
 * verify_jwt is off in config.toml: this code verifies the token itself (see user_auth.ts), so
 * that every answer, 401 included, carries CORS headers and the project's error body.
 */
import { configuredTokenSeal } from "../_shared/platform/token_seal.ts";
import { parseAuthorizeRequest, startAuthorization } from "../_shared/connect/authorize.ts";
import { createConnectStore } from "../_shared/connect/store.ts";
import { database } from "../_shared/platform/db.ts";
import { RequestError } from "../_shared/platform/errors.ts";
import { enter } from "../_shared/platform/handler.ts";
import { reportFailure } from "../_shared/platform/failure.ts";
import {
  errorResponse,
  jsonResponse,
  redirectResponse,
  requestErrorResponse,
  requestParameters,
} from "../_shared/platform/http.ts";
import { countAuthorizeStarted } from "../_shared/platform/log.ts";

const FUNCTION = "cafe24-authorize";

async function handle(request: Request): Promise<Response> {
  const entered = await enter(request, FUNCTION, { callers: { GET: ["user"], POST: ["user"] } });
  if (entered instanceof Response) return entered;
  const { config, headers, caller } = entered;
  const user = { id: caller.userId };

  let url: URL;
  try {
    const parsed = parseAuthorizeRequest(
      await requestParameters(request),
      config.CAFE24_SCOPES,
    );
    url = await startAuthorization(
      {
        store: createConnectStore(database(config.SUPABASE_DB_URL), configuredTokenSeal(config)),
        settings: {
          apiBaseUrl: config.CAFE24_API_BASE_URL,
          clientId: config.CAFE24_CLIENT_ID,
          redirectUri: config.CAFE24_REDIRECT_URI,
          stateSecret: config.CAFE24_OAUTH_STATE_SECRET,
        },
      },
      user.id,
      parsed,
    );
    countAuthorizeStarted(parsed.mode);
    if (parsed.mode === "redirect") return redirectResponse(url, headers);
  } catch (error) {
    if (error instanceof RequestError) return requestErrorResponse(error, headers);
    const failure = reportFailure("cafe24_authorize_failed", error, {
      fields: { user_id: user.id },
    });
    return errorResponse(failure, {}, headers);
  }
  return jsonResponse({ url: url.href }, 200, { ...headers, "Cache-Control": "no-store" });
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
