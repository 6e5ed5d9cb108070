import type { Cafe24App } from "./app.ts";
import { mallApiUrl } from "./mall_id.ts";

/**
 * Cafe24's shop list (`GET /api/v2/admin/shops`, scope mall.read_store), as a send/parse pair.
 * The answer's field set varies with the API version, so parsing is tolerant: what is kept is the
 * compact list the app needs, and a shop without a usable number is left out.
 */

export interface ShopSummary {
  shop_no: number;
  name: string | null;
  default: boolean;
}

export class ShopsRequestError extends Error {
  /** The HTTP status Cafe24 answered with; null when no answer arrived. */
  readonly status: number | null;

  constructor(detail: string, status: number | null = null) {
    super(detail);
    this.name = "ShopsRequestError";
    this.status = status;
  }
}

const MAX_SHOPS = 100;
const MAX_BODY_BYTES = 256 * 1024;

/** The shop list, with the mall's access token and the app's API version (when it has one). */
export async function sendShopsRequest(
  app: Cafe24App,
  request: { mallId: string; accessToken: string },
): Promise<Response> {
  const url = mallApiUrl(app.apiBaseUrl, request.mallId, "api/v2/admin/shops");
  const headers: Record<string, string> = {
    "Authorization": `Bearer ${request.accessToken}`,
    "Content-Type": "application/json",
  };
  if (app.apiVersion !== null) headers["X-Cafe24-Api-Version"] = app.apiVersion;
  try {
    return await (app.fetch ?? fetch)(url, {
      method: "GET",
      headers,
      signal: AbortSignal.timeout(app.requestTimeoutMs),
      redirect: "manual",
    });
  } catch {
    throw new ShopsRequestError("The shop list could not be fetched");
  }
}

export async function processShopsResponse(response: Response): Promise<ShopSummary[]> {
  let text: string;
  try {
    const bytes = new Uint8Array(await response.arrayBuffer());
    text = new TextDecoder().decode(bytes.subarray(0, MAX_BODY_BYTES));
  } catch {
    throw new ShopsRequestError("The shop list's body did not arrive", response.status);
  }
  if (response.status !== 200) {
    throw new ShopsRequestError(`HTTP ${response.status}`, response.status);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ShopsRequestError("200 without a JSON body", 200);
  }
  const list = (body as { shops?: unknown } | null)?.shops;
  if (!Array.isArray(list)) throw new ShopsRequestError("200 without a shops array", 200);

  const shops: ShopSummary[] = [];
  for (const item of list.slice(0, MAX_SHOPS)) {
    if (item === null || typeof item !== "object") continue;
    const raw = item as Record<string, unknown>;
    const shopNo = typeof raw.shop_no === "number"
      ? raw.shop_no
      : typeof raw.shop_no === "string" && /^\d{1,9}$/.test(raw.shop_no)
      ? Number(raw.shop_no)
      : NaN;
    if (!Number.isSafeInteger(shopNo) || shopNo < 1) continue;
    shops.push({
      shop_no: shopNo,
      name: typeof raw.shop_name === "string" ? raw.shop_name.slice(0, 200) : null,
      default: raw.default === "T" || raw.default === true,
    });
  }
  if (shops.length === 0) throw new ShopsRequestError("200 without a usable shop", 200);
  return shops;
}
