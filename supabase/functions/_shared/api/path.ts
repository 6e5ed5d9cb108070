import { mallBaseUrl } from "../cafe24/mall_id.ts";
import { RequestError } from "../platform/errors.ts";

/**
 * Where an Admin API call goes: only the connection's own mall, only under `/api/v2/admin/`. The
 * caller names a path, never a host: the host comes from CAFE24_API_BASE_URL and the mall id the
 * connection holds. A path that could leave the prefix once a server decodes or normalises it
 * (`..`, `%2e`, `%2f`, `\`, `//`, `@`, a fragment, a scheme) is refused as it is, before a URL is
 * built, and the built URL's origin and prefix are checked again after `new URL` normalised it.
 */
export const ADMIN_PATH_PREFIX = "/api/v2/admin/";

const MAX_PATH_LENGTH = 2048;
/** Characters and sequences that have no place in a plain resource path. */
const REFUSED = /[\\#?@\s]|\/\/|%(2e|2f|5c|00|40|23|3f)/i;
/** Control characters (U+0000-U+001F, U+007F): no path has them. */
const hasControl = (text: string) => [...text].some((c) => c < " " || c === "\x7f");

export type QueryValue = string | number | boolean;

/**
 * The URL of `path` on the mall's API with `query`, or RequestError INVALID_PATH. `shopNo` is
 * sent as `shop_no` when the query names none.
 */
export function adminApiUrl(
  apiBaseUrl: string,
  mallId: string,
  path: unknown,
  query: Record<string, QueryValue>,
  shopNo: number | null,
): URL {
  const plain = checkAdminPath(path);
  let base: URL;
  try {
    base = mallBaseUrl(apiBaseUrl, mallId);
  } catch {
    throw new RequestError("INVALID_PATH");
  }
  const root = base.pathname.replace(/\/+$/, "");
  const url = new URL(`${base.origin}${root}${plain}`);
  if (
    url.origin !== base.origin || !url.pathname.startsWith(`${root}${ADMIN_PATH_PREFIX}`) ||
    url.username !== "" || url.password !== "" || url.hash !== "" || url.search !== ""
  ) {
    throw new RequestError("INVALID_PATH");
  }
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, String(value));
  if (shopNo !== null && !url.searchParams.has("shop_no")) {
    url.searchParams.set("shop_no", String(shopNo));
  }
  return url;
}

/** `path` when it is a plain path under ADMIN_PATH_PREFIX; RequestError INVALID_PATH otherwise. */
export function checkAdminPath(path: unknown): string {
  if (
    typeof path !== "string" || path.length > MAX_PATH_LENGTH ||
    !path.startsWith(ADMIN_PATH_PREFIX) || path.length === ADMIN_PATH_PREFIX.length ||
    REFUSED.test(path) || hasControl(path) ||
    path.split("/").some((segment) => segment === "." || segment === "..")
  ) {
    throw new RequestError("INVALID_PATH");
  }
  return path;
}

/**
 * The path for a log line: every segment after the prefix that carries a digit (a product
 * number, an order id, a variant code) or an escape becomes `{id}`, so the log keeps which kind
 * of call it was and none of the shop's data.
 */
export function pathTemplate(path: string): string {
  if (!path.startsWith(ADMIN_PATH_PREFIX)) return "(invalid)";
  const rest = path.slice(ADMIN_PATH_PREFIX.length).split("/").map((segment) =>
    /^[a-z_]{1,40}$/i.test(segment) || segment === "" ? segment : "{id}"
  );
  return ADMIN_PATH_PREFIX + rest.join("/");
}
