/**
 * What an Admin API answer says about the app's access to a mall. Cafe24 answers 403 both when a
 * token lacks a scope and when the app has been deleted from the shop; only the error message tells
 * them apart. Cafe24's guide names the case ("쇼핑몰에서 해당 앱이 삭제된 경우", the app deleted
 * from the shop) but no captured answer shows its exact message yet, so only a message that plainly
 * says the app is gone counts: "삭제" (deleted), deleted, not installed, uninstalled or removed.
 * Words other 403s also use ("expired", "disabled") do not count, and a 403 that names a scope or
 * says nothing recognisable proves nothing: nothing is disconnected for it.
 *
 * Resource API errors look like {"error":{"code":403,"message":"…","more_info":{}}}.
 */

export type AppAccess =
  /** 2xx: the token works, so the app is installed. */
  | "installed"
  /** 403 saying the app was deleted from the shop (삭제, deleted, not installed, uninstalled, removed). */
  | "app_deleted"
  /** 403 about a missing scope: this token cannot tell either way. */
  | "missing_scope"
  /** 401: the access token is invalid or expired. */
  | "unauthorized"
  /** Anything else (429, 5xx, an unreadable 403): no conclusion. */
  | "unknown";

const SCOPE_MESSAGE = /\bscopes?\b/i;
// `\b` does not work next to Hangul, so 삭제 is matched on its own.
const DELETED_MESSAGE = /삭제|\b(deleted|not installed|uninstalled|removed)\b/i;

export function classifyAppAccess(status: number, body: string): AppAccess {
  if (status >= 200 && status < 300) return "installed";
  if (status === 401) return "unauthorized";
  if (status !== 403) return "unknown";
  const message = errorMessage(body);
  if (message === null) return "unknown";
  if (SCOPE_MESSAGE.test(message)) return "missing_scope";
  return DELETED_MESSAGE.test(message) ? "app_deleted" : "unknown";
}

function errorMessage(body: string): string | null {
  try {
    const parsed: unknown = JSON.parse(body);
    const error = (parsed as { error?: unknown } | null)?.error;
    if (typeof error === "string") return error;
    const message = (error as { message?: unknown } | null)?.message;
    return typeof message === "string" ? message : null;
  } catch {
    return null;
  }
}
