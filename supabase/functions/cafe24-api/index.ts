/**
 * cafe24-api: the Cafe24 Admin API for the app's server code elsewhere, through the connector.
 *   POST /functions/v1/cafe24-api
 *   {"mall_id": "…" | "auth_settings_id": "…", "method": "GET", "path": "/api/v2/admin/products",
 *    "query": {"limit": 10}, "body": {…}, "shop_no": 1, "deadline_ms": 10000}
 * → Cafe24's status, body and rate-limit headers, plus `X-Cafe24-Connector` and
 * `X-Cafe24-Connector-Waited-Ms`; or the connector's own error (see
 * _shared/api/admin_api.ts). An `X-Cafe24-Api-Version` header on this request is sent instead of
 * CAFE24_API_VERSION for this call. Request bodies up to 1 MiB.
 *
 * Only the project's secret API key is accepted, as for cafe24-token: the answer is the mall's
 * data. verify_jwt is off in config.toml because an sb_secret_… key is not a JWT; this code is the
 * only gate.
 */
import { callAdminApi, parseApiCall } from "../_shared/api/admin_api.ts";
import { adminApiSettings } from "../_shared/platform/config.ts";
import { database } from "../_shared/platform/db.ts";
import { RequestError } from "../_shared/platform/errors.ts";
import { reportFailure } from "../_shared/platform/failure.ts";
import { enter } from "../_shared/platform/handler.ts";
import {
  errorResponse,
  MAX_API_REQUEST_BODY_BYTES,
  readBodyText,
  requestErrorResponse,
} from "../_shared/platform/http.ts";

const FUNCTION = "cafe24-api";

async function handle(request: Request): Promise<Response> {
  const entered = await enter(request, FUNCTION, {
    callers: { POST: ["app"] },
    maxBodyBytes: MAX_API_REQUEST_BODY_BYTES,
    headers: { "Cache-Control": "no-store" },
  });
  if (entered instanceof Response) return entered;
  const { config, headers } = entered;

  try {
    const call = parseApiCall(
      await jsonObject(request),
      request.headers.get("x-cafe24-api-version"),
    );
    const answer = await callAdminApi(
      { sql: database(config.SUPABASE_DB_URL), settings: adminApiSettings(config) },
      call,
    );
    for (const [name, value] of Object.entries(headers)) answer.headers.set(name, value);
    return answer;
  } catch (error) {
    if (error instanceof RequestError) {
      const answer = requestErrorResponse(error, headers);
      answer.headers.set("X-Cafe24-Connector", error.code.toLowerCase());
      answer.headers.set("X-Cafe24-Connector-Waited-Ms", "0");
      return answer;
    }
    return errorResponse(reportFailure("cafe24_api_crashed", error), {}, headers);
  }
}

async function jsonObject(request: Request): Promise<Record<string, unknown>> {
  const text = await readBodyText(request, MAX_API_REQUEST_BODY_BYTES);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RequestError("INVALID_REQUEST", { detail: "body is not JSON" });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new RequestError("INVALID_REQUEST", { detail: "body must be a JSON object" });
  }
  return parsed as Record<string, unknown>;
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
