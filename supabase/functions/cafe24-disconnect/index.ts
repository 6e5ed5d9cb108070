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
import { configuredTokenSeal } from "../_shared/platform/token_seal.ts";
import { cafe24App } from "../_shared/cafe24/app.ts";
import { disconnect } from "../_shared/connect/disconnect.ts";
import { parseConnectionTarget } from "../_shared/connect/target.ts";
import { createLifecycleStore } from "../_shared/connect/lifecycle_store.ts";
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

const FUNCTION = "cafe24-disconnect";

async function handle(request: Request): Promise<Response> {
  const entered = await enter(request, FUNCTION, {
    callers: { POST: ["app", "user"] },
    headers: { "Cache-Control": "no-store" },
  });
  if (entered instanceof Response) return entered;
  const { config, headers, caller } = entered;

  try {
    const target = parseConnectionTarget(await requestParameters(request));
    const answer = await disconnect(
      {
        store: createLifecycleStore(database(config.SUPABASE_DB_URL), configuredTokenSeal(config)),
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

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
