/**
 * A Cafe24 mall id is the host label of `{mall_id}.cafe24api.com`, so it is an SSRF vector:
 * `evil.example/x#` would send the client secret to another host. It is validated before any
 * URL is built, and the built URL's host is checked again.
 */

// Cafe24: lowercase letters and digits, not starting with a digit; operator ids are 4-16 long.
const MALL_ID_PATTERN = /^[a-z][a-z0-9]{3,15}$/;

export function isValidMallId(value: unknown): value is string {
  return typeof value === "string" && MALL_ID_PATTERN.test(value);
}

/**
 * The mall's API base URL from a template such as `https://{mall_id}.cafe24api.com` or, for the
 * local sandbox, `http://127.0.0.1:54329/{mall_id}`. Throws RangeError for an invalid mall id or
 * when the result does not point where the template says.
 */
export function mallBaseUrl(template: string, mallId: string): URL {
  if (!isValidMallId(mallId)) {
    throw new RangeError("Invalid mall_id");
  }
  const url = new URL(template.replaceAll("{mall_id}", mallId));
  const expectedHost = new URL(template.replaceAll("{mall_id}", "mallidplaceholder")).host
    .replace("mallidplaceholder", mallId);
  if (url.host !== expectedHost || url.username !== "" || url.password !== "") {
    throw new RangeError("Invalid mall_id: the API URL would leave the expected host");
  }
  return url;
}

/** An endpoint under the mall's API base, e.g. `api/v2/oauth/token`. */
export function mallApiUrl(template: string, mallId: string, path: string): URL {
  const base = mallBaseUrl(template, mallId);
  const url = new URL(base.href.replace(/\/?$/, "/") + path.replace(/^\//, ""));
  if (url.host !== base.host) {
    throw new RangeError("Invalid API path");
  }
  return url;
}
