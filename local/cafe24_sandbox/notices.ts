// The sandbox's app-notice sender: POST /__sandbox/notices {mall_id, event_no, url, api_key,
// client_id?} makes it POST an app notice (90077 app deleted, 90078 app expired) to `url` the
// way Cafe24 is said to send one: a JSON body naming the mall, the static WebHook key in
// `X-API-Key` (unconfirmed, community evidence). Answers {status} with the receiver's status.
// Kept apart from control.ts so that its routes can change without touching this.

import { jsonResponse } from "./util.ts";

export interface AppNoticeRequest {
  mallId: string;
  eventNo: 90077 | 90078;
  url: string;
  /** Sent as X-API-Key; no header when null. */
  apiKey: string | null;
  /** The app's client id in the notice's resource; left out when null. */
  clientId: string | null;
}

/** Sends one notice and returns the receiver's status (its body is read and dropped). */
export async function sendAppNotice(notice: AppNoticeRequest): Promise<number> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (notice.apiKey !== null) headers["x-api-key"] = notice.apiKey;
  const response = await fetch(notice.url, {
    method: "POST",
    headers,
    body: JSON.stringify({
      event_no: notice.eventNo,
      resource: {
        mall_id: notice.mallId,
        ...(notice.clientId === null ? {} : { client_id: notice.clientId }),
        event_shop_no: 1,
        [notice.eventNo === 90077 ? "deleted_date" : "expiration_date"]: new Date().toISOString(),
      },
    }),
    signal: AbortSignal.timeout(15_000),
  });
  await response.body?.cancel();
  return response.status;
}

/** The control route: validates the body, sends, answers {status}. */
export async function handleNoticeControl(request: Request): Promise<Response> {
  let body: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(await request.text());
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error();
    body = parsed as Record<string, unknown>;
  } catch {
    return jsonResponse(400, { error: "body must be a JSON object" });
  }
  const { mall_id: mallId, event_no: eventNo, url, api_key: apiKey, client_id: clientId } = body;
  if (typeof mallId !== "string") return jsonResponse(400, { error: "mall_id is required" });
  if (eventNo !== 90077 && eventNo !== 90078) {
    return jsonResponse(400, { error: "event_no must be 90077 or 90078" });
  }
  if (typeof url !== "string" || !/^https?:\/\//.test(url) || !URL.canParse(url)) {
    return jsonResponse(400, { error: "url must be an http(s) URL" });
  }
  if (apiKey !== undefined && apiKey !== null && typeof apiKey !== "string") {
    return jsonResponse(400, { error: "invalid api_key" });
  }
  if (clientId !== undefined && clientId !== null && typeof clientId !== "string") {
    return jsonResponse(400, { error: "invalid client_id" });
  }
  try {
    const status = await sendAppNotice({
      mallId,
      eventNo,
      url,
      apiKey: apiKey ?? null,
      clientId: clientId ?? null,
    });
    return jsonResponse(200, { status });
  } catch (error) {
    return jsonResponse(502, { error: error instanceof Error ? error.name : "unreachable" });
  }
}
