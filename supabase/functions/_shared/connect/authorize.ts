import type { ConnectStore } from "./store.ts";
import { RequestError } from "../platform/errors.ts";
import { isValidMallId, mallApiUrl } from "../cafe24/mall_id.ts";
import { parseScopeList } from "../cafe24/scopes.ts";
import { createState } from "./state.ts";

/**
 * cafe24-authorize's logic: validate what the signed-in user asked for, issue a state bound to
 * the user, the mall and the scopes, record its nonce, and build Cafe24's authorize URL.
 */

export interface AuthorizeRequest {
  mallId: string;
  /** From the server's allow-list (CAFE24_SCOPES), in the order asked for. */
  scopes: string[];
  /** `json`: answer `{url}`; `redirect`: answer 302 to it. */
  mode: "json" | "redirect";
}

export interface AuthorizeSettings {
  apiBaseUrl: string;
  clientId: string;
  redirectUri: string;
  stateSecret: string;
}

/**
 * Reads `mall_id`, `scope` and `mode`; throws RequestError. The scopes come from the server:
 * `allowedScopes` (CAFE24_SCOPES) whole when `scope` is absent, else the asked-for subset of it.
 * A scope outside the list is INVALID_SCOPE, so a caller cannot widen what the app requests.
 */
export function parseAuthorizeRequest(
  parameters: Record<string, unknown>,
  allowedScopes: string,
): AuthorizeRequest {
  const mallId = parameters.mall_id;
  if (!isValidMallId(mallId)) throw new RequestError("INVALID_MALL_ID");

  const mode = parameters.mode ?? "redirect";
  if (mode !== "json" && mode !== "redirect") {
    throw new RequestError("INVALID_REQUEST", { detail: "mode must be json or redirect" });
  }

  const allowed = parseScopeList(allowedScopes);
  if (allowed === null) throw new RequestError("CONFIG_INVALID", { invalid: ["CAFE24_SCOPES"] });
  const requested = parameters.scope;
  if (requested === undefined) return { mallId, scopes: allowed, mode };
  const scopes = typeof requested === "string" ? parseScopeList(requested) : null;
  if (scopes === null || scopes.some((scope) => !allowed.includes(scope))) {
    throw new RequestError("INVALID_SCOPE", { allowed });
  }
  return { mallId, scopes, mode };
}

/** Records a fresh state for the user and returns the URL to send the browser to. */
export async function startAuthorization(
  deps: { store: ConnectStore; settings: AuthorizeSettings; now?: () => number },
  userId: string,
  request: AuthorizeRequest,
): Promise<URL> {
  const { settings } = deps;
  const { value, state } = await createState(
    settings.stateSecret,
    { userId, mallId: request.mallId, scopes: request.scopes },
    (deps.now ?? Date.now)(),
  );
  await deps.store.recordState(state);
  return authorizeUrl(settings, request.mallId, value, request.scopes.join(","));
}

export function authorizeUrl(
  settings: Pick<AuthorizeSettings, "apiBaseUrl" | "clientId" | "redirectUri">,
  mallId: string,
  state: string,
  scope: string,
): URL {
  const url = mallApiUrl(settings.apiBaseUrl, mallId, "api/v2/oauth/authorize");
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", settings.clientId);
  url.searchParams.set("state", state);
  url.searchParams.set("redirect_uri", settings.redirectUri);
  url.searchParams.set("scope", scope);
  return url;
}
