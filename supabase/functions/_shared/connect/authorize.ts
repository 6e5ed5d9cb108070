import { CAFE24_SCOPE_PATTERN } from "../platform/config.ts";
import type { ConnectStore } from "./store.ts";
import { RequestError } from "../platform/errors.ts";
import { isValidMallId, mallApiUrl } from "../cafe24/mall_id.ts";
import { createState } from "./state.ts";

/**
 * cafe24-authorize's logic: validate what the signed-in user asked for, issue a state bound to
 * the user and the mall, record its nonce, and build Cafe24's authorize URL.
 */

export interface AuthorizeRequest {
  mallId: string;
  /** Comma-separated, as Cafe24's working clients send them. */
  scope: string;
  /** `json`: answer `{url}`; `redirect`: answer 302 to it. */
  mode: "json" | "redirect";
}

export interface AuthorizeSettings {
  apiBaseUrl: string;
  clientId: string;
  redirectUri: string;
  stateSecret: string;
}

const MAX_SCOPES = 50;

/** Reads `mall_id`, `scope` (default CAFE24_SCOPES) and `mode`; throws RequestError. */
export function parseAuthorizeRequest(
  parameters: Record<string, unknown>,
  defaultScopes: string | null,
): AuthorizeRequest {
  const mallId = parameters.mall_id;
  if (!isValidMallId(mallId)) throw new RequestError("INVALID_MALL_ID");

  const mode = parameters.mode ?? "redirect";
  if (mode !== "json" && mode !== "redirect") {
    throw new RequestError("INVALID_REQUEST", { detail: "mode must be json or redirect" });
  }

  const requested = parameters.scope;
  if (requested !== undefined && typeof requested !== "string") {
    throw new RequestError("INVALID_SCOPE");
  }
  const scopeText = requested ?? defaultScopes;
  if (scopeText === null) {
    throw new RequestError("CONFIG_MISSING", { missing: ["CAFE24_SCOPES"] });
  }
  return { mallId, scope: parseScopes(scopeText).join(","), mode };
}

/** `mall.read_product, mall.write_product` → the names, trimmed and deduplicated, in order. */
export function parseScopes(text: string): string[] {
  const names = text.split(",").map((name) => name.trim());
  if (
    names.length > MAX_SCOPES || names.some((name) => !CAFE24_SCOPE_PATTERN.test(name))
  ) {
    throw new RequestError("INVALID_SCOPE");
  }
  return [...new Set(names)];
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
    { userId, mallId: request.mallId },
    (deps.now ?? Date.now)(),
  );
  await deps.store.recordState(state);
  return authorizeUrl(settings, request.mallId, value, request.scope);
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
