/**
 * cafe24-webhook: receives Cafe24's app notices (event 90077, app deleted from the shop; 90078,
 * app expired), registered as the app's webhook URL in Cafe24 Developers.
 *   POST /functions/v1/cafe24-webhook   {"event_no":90077,"resource":{"mall_id":"…","client_id":"…",…}}
 * With CAFE24_WEBHOOK_API_KEY set, a notice without that key in `X-API-Key` is refused (401) before
 * any database work and only counted (unauthenticated_requests). Otherwise always
 * `200 {"received":true}` at once, whatever the body and whether or not the mall is connected
 * here: the answer tells a sender nothing. A notice for this app's client id then starts one
 * verification of the mall at Cafe24, after the answer (see _shared/connect/app_uninstalled.ts);
 * only Cafe24's own answer to that changes anything, and nothing here ever refreshes a mall.
 * verify_jwt is off in config.toml: Cafe24 sends no JWT.
 */
import {
  type AppNotice,
  parseAppNotice,
  verifyAfterNotice,
} from "../_shared/connect/app_uninstalled.ts";
import { createLifecycleStore } from "../_shared/connect/lifecycle_store.ts";
import { continueAfterResponse } from "../_shared/platform/background.ts";
import {
  type Config,
  REFRESH_CONFIG_REQUIRED,
  refreshSettings,
} from "../_shared/platform/config.ts";
import { database } from "../_shared/platform/db.ts";
import { RequestError } from "../_shared/platform/errors.ts";
import { reportFailure } from "../_shared/platform/failure.ts";
import { enter } from "../_shared/platform/handler.ts";
import {
  errorResponse,
  jsonResponse,
  readBodyText,
  requestErrorResponse,
} from "../_shared/platform/http.ts";
import { countUnauthenticated, logEvent } from "../_shared/platform/log.ts";
import { secretsMatch } from "../_shared/platform/secrets.ts";

const FUNCTION = "cafe24-webhook";

type WebhookConfig = Config<(typeof REFRESH_CONFIG_REQUIRED)[number]>;

async function handle(request: Request): Promise<Response> {
  const received = (headers: Record<string, string>) =>
    jsonResponse({ received: true }, 200, headers);
  const entered = await enter(request, FUNCTION, {
    callers: { POST: ["anyone"] },
    // A notice is answered the same whatever the configuration: it tells a sender nothing.
    configError: (_code, names, headers) => {
      logEvent("error", "config_missing", { function: FUNCTION, names });
      return received(headers);
    },
  });
  if (entered instanceof Response) return entered;
  const { config, headers: cors } = entered;

  const expectedKey = config.CAFE24_WEBHOOK_API_KEY;
  if (expectedKey !== undefined) {
    const presented = request.headers.get("x-api-key");
    if (presented === null || !secretsMatch(presented, expectedKey)) {
      // Counted, not logged one line each: anyone can send these, as often as they like.
      countUnauthenticated(FUNCTION, presented === null ? "missing_api_key" : "wrong_api_key");
      await request.body?.cancel().catch(() => {});
      return errorResponse("UNAUTHORIZED", {}, cors);
    }
  }

  let body: string;
  try {
    body = await readBodyText(request);
  } catch (error) {
    // Over 16 KiB is refused like everywhere; a body that breaks off is just not a notice.
    if (error instanceof RequestError && error.code === "BODY_TOO_LARGE") {
      return requestErrorResponse(error, cors);
    }
    return received(cors);
  }
  const notice = parseAppNotice(body, config.CAFE24_CLIENT_ID);
  if (notice !== null) continueAfterResponse(verify(config, notice));
  return received(cors);
}

async function verify(config: WebhookConfig, notice: AppNotice): Promise<void> {
  const settings = refreshSettings(config);
  try {
    const verified = await verifyAfterNotice({
      store: createLifecycleStore(database(config.SUPABASE_DB_URL), settings.tokenSeal),
      settings,
    }, notice);
    // No connection here, or verified lately: what a forged notice gets. Counted like the other
    // requests nobody vouches for, so that no sender decides how much is logged.
    if (verified === null) countUnauthenticated(FUNCTION, "notice_not_verified");
  } catch (error) {
    reportFailure("cafe24_app_notice_failed", error, {
      fields: { event_no: notice.eventNo, mall_id: notice.mallId },
    });
  }
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
