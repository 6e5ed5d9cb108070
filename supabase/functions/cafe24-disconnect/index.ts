/**
 * cafe24-disconnect: removes a connection's tokens, revokes them at Cafe24, keeps its settings.
 *   POST /functions/v1/cafe24-disconnect   {"mall_id": "…"} or {"auth_settings_id": "…"}
 *   - Authorization: Bearer <a signed-in user's access token>: one of that user's connections
 *     (status `disconnected`, code DISCONNECTED_BY_USER); anyone else's answers 404 like an
 *     unknown one, so nobody learns which malls are connected;
 *   - the project's secret API key (`apikey` or Bearer; see _shared/platform/api_keys.ts): any
 *     connection (DISCONNECTED_BY_APP).
 * → 200 {"disconnected":true,"mall_id":…,"revoked":true} ("revoked":false,"revoke_error":CODE when
 * Cafe24 could not revoke: the tokens are gone from the row all the same).
 * verify_jwt is off in config.toml: the secret key is not always a JWT, and every answer, 401
 * included, carries CORS headers and this project's error body.
 */
import { cafe24App } from "../_shared/cafe24/app.ts";
import {
  disconnect,
  type DisconnectCaller,
  parseDisconnectRequest,
} from "../_shared/connect/disconnect.ts";
import { createLifecycleStore } from "../_shared/connect/lifecycle_store.ts";
import { presentsSecretApiKey } from "../_shared/platform/api_keys.ts";
import {
  type Config,
  DISCONNECT_CONFIG_REQUIRED,
  loadConfig,
  USER_AUTH_CONFIG_REQUIRED,
} from "../_shared/platform/config.ts";
import { database } from "../_shared/platform/db.ts";
import { RequestError } from "../_shared/platform/errors.ts";
import { reportFailure } from "../_shared/platform/failure.ts";
import { openConfiguredRequest, requireSignedInUser } from "../_shared/platform/handler.ts";
import {
  bearerToken,
  configErrorResponse,
  errorResponse,
  jsonResponse,
  requestErrorResponse,
  requestParameters,
} from "../_shared/platform/http.ts";
import { looksLikeJwt } from "../_shared/platform/user_auth.ts";

const FUNCTION = "cafe24-disconnect";

type DisconnectConfig = Config<(typeof DISCONNECT_CONFIG_REQUIRED)[number]>;

async function handle(request: Request): Promise<Response> {
  const opened = openConfiguredRequest(request, FUNCTION, ["POST"], DISCONNECT_CONFIG_REQUIRED, {
    "Cache-Control": "no-store",
  });
  if (opened instanceof Response) return opened;
  const { env, config, headers } = opened;

  const caller = await identifyCaller(request, env, config, headers);
  if (caller instanceof Response) return caller;

  try {
    const target = parseDisconnectRequest(await requestParameters(request));
    const answer = await disconnect(
      {
        store: createLifecycleStore(database(config.SUPABASE_DB_URL)),
        settings: { app: cafe24App(config) },
      },
      caller,
      target,
    );
    return jsonResponse(answer, 200, headers);
  } catch (error) {
    if (error instanceof RequestError) return requestErrorResponse(error, headers);
    return errorResponse(reportFailure("cafe24_disconnect_crashed", error), {}, headers);
  }
}

/** The app's secret key, else a signed-in user; a 401 (or config error) response otherwise. */
async function identifyCaller(
  request: Request,
  env: Record<string, string | undefined>,
  config: DisconnectConfig,
  headers: Record<string, string>,
): Promise<DisconnectCaller | Response> {
  if (presentsSecretApiKey(request, config)) return { kind: "app" };
  const bearer = bearerToken(request);
  if (bearer === null || !looksLikeJwt(bearer)) return errorResponse("UNAUTHORIZED", {}, headers);
  const loaded = loadConfig(env, USER_AUTH_CONFIG_REQUIRED);
  if (!loaded.ok) return configErrorResponse(FUNCTION, loaded.code, loaded.names, headers);
  const user = await requireSignedInUser(request, loaded.config, FUNCTION, headers);
  return user instanceof Response ? user : { kind: "user", userId: user.id };
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
