/**
 * cafe24-token: a connection's access token for the app's trusted server code.
 *   GET or POST /functions/v1/cafe24-token   mall_id=… or auth_settings_id=…, min_valid_s=300
 * → 200 {"access_token","expires_at","mall_id","shop_no","scopes"} valid for at least
 * min_valid_s seconds (refreshed first when needed; `refresh_failed` when that failed and the
 * stored token is still valid). Errors: see getCafe24AccessToken.
 *
 * Only the project's secret API key is accepted (`apikey` or Bearer; see
 * _shared/platform/api_keys.ts): never CRON_SECRET, never a user's session. verify_jwt is off in
 * config.toml because an sb_secret_… key is not a JWT; this code is the only gate.
 */
import { runVerificationsAfterRefresh } from "../_shared/connect/app_uninstalled.ts";
import { continueAfterResponse } from "../_shared/platform/background.ts";
import { refreshSettings } from "../_shared/platform/config.ts";
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
import { getCafe24AccessToken } from "../_shared/tokens/get_token.ts";
import { parseTokenRequest } from "../_shared/tokens/request.ts";

const FUNCTION = "cafe24-token";

async function handle(request: Request): Promise<Response> {
  // Every answer may carry a token or say something about one: no cache keeps it.
  const entered = await enter(request, FUNCTION, {
    callers: { GET: ["app"], POST: ["app"] },
    headers: { "Cache-Control": "no-store" },
  });
  if (entered instanceof Response) return entered;
  const { config, headers } = entered;

  try {
    const { authSettingsId, mallId, minValidS } = parseTokenRequest(
      await requestParameters(request),
    );
    const sql = database(config.SUPABASE_DB_URL);
    const settings = refreshSettings(config);
    const token = await getCafe24AccessToken(
      sql,
      {
        ...(authSettingsId === null ? {} : { authSettingsId }),
        ...(mallId === null ? {} : { mallId }),
        minValidS,
      },
      settings,
      // A verification that waited for this mall's refresh (an app notice that found its access
      // token dead) runs now, after the answer.
      (refreshedMall) =>
        continueAfterResponse(runVerificationsAfterRefresh(sql, settings, refreshedMall)),
    );
    return jsonResponse(token, 200, headers);
  } catch (error) {
    if (error instanceof RequestError) return requestErrorResponse(error, headers);
    return errorResponse(reportFailure("cafe24_token_crashed", error), {}, headers);
  }
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
