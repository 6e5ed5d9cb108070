/**
 * cafe24-webhook: receives Cafe24's app notices (event 90077, app deleted from the shop; 90078,
 * app expired), registered as the app's webhook URL in Cafe24 Developers.
 *   POST /functions/v1/cafe24-webhook   {"event_no":90077,"resource":{"mall_id":"…","client_id":"…",…}}
 * Always `200 {"received":true}` at once, whatever the body and whether or not the mall is
 * connected here: the answer tells a sender nothing. A notice for this app's client id then
 * starts one verification of the mall at Cafe24, after the answer (see
 * _shared/connect/app_uninstalled.ts); only Cafe24's own answer to that changes anything.
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
  loadConfig,
  REFRESH_CONFIG_REQUIRED,
  refreshSettings,
} from "../_shared/platform/config.ts";
import { database } from "../_shared/platform/db.ts";
import { jsonResponse, openRequest } from "../_shared/platform/http.ts";
import { logEvent } from "../_shared/platform/log.ts";
import { beginRefreshRun } from "../_shared/refresh/run.ts";
import { createRefreshStore } from "../_shared/refresh/store.ts";

const FUNCTION = "cafe24-webhook";

/** A notice is a few hundred bytes; anything past this is not read. */
const MAX_BODY_BYTES = 16 * 1024;

type WebhookConfig = Config<(typeof REFRESH_CONFIG_REQUIRED)[number]>;

async function handle(request: Request): Promise<Response> {
  const env = Deno.env.toObject();
  const { cors, early } = openRequest(request, env, ["POST"]);
  if (early !== null) return early;
  const received = () => jsonResponse({ received: true }, 200, cors);

  const body = await readBody(request);
  if (body === null) return received();
  const loaded = loadConfig(env, REFRESH_CONFIG_REQUIRED);
  if (!loaded.ok) {
    logEvent("error", "config_missing", { function: FUNCTION, names: loaded.names });
    return received();
  }
  const notice = parseAppNotice(body, loaded.config.CAFE24_CLIENT_ID);
  if (notice !== null) continueAfterResponse(verify(loaded.config, notice));
  return received();
}

async function verify(config: WebhookConfig, notice: AppNotice): Promise<void> {
  const settings = refreshSettings(config);
  const sql = database(config.SUPABASE_DB_URL);
  try {
    await verifyAfterNotice({
      store: createLifecycleStore(sql),
      settings: {
        apiBaseUrl: settings.apiBaseUrl,
        apiVersion: config.CAFE24_API_VERSION ?? null,
        requestTimeoutMs: settings.requestTimeoutMs,
      },
      refreshMall: async (mallId) => {
        const run = await beginRefreshRun({ store: createRefreshStore(sql), settings }, {
          trigger: "manual",
          mode: "sync",
          force: true,
          mallId,
          userId: null,
        });
        await run.execute();
      },
    }, notice);
  } catch {
    logEvent("error", "cafe24_app_notice_failed", {
      event_no: notice.eventNo,
      mall_id: notice.mallId,
    });
  }
}

/** The body as text, or null when it is larger than MAX_BODY_BYTES (then it is not read on). */
async function readBody(request: Request): Promise<string | null> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (!Number.isFinite(declared) || declared > MAX_BODY_BYTES) return null;
  const reader = request.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_BODY_BYTES) {
        await reader.cancel().catch(() => {});
        return null;
      }
      chunks.push(value);
    }
  } catch {
    return null;
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
