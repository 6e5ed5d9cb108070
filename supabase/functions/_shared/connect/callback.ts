import {
  processTokenResponse,
  sendAuthorizationCodeRequest,
  storedTokenFields,
  TokenRequestError,
  type TokenSet,
} from "../cafe24/token.ts";
import {
  processShopsResponse,
  sendShopsRequest,
  ShopsRequestError,
  type ShopSummary,
} from "../cafe24/shops.ts";
import type { ConnectStore } from "./store.ts";
import {
  CONNECT_WARNINGS,
  type ConnectWarningCode,
  type RefreshFailureCode,
  type RequestErrorCode,
} from "../platform/errors.ts";
import { countUnauthenticated, logEvent } from "../platform/log.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { type OAuthState, verifyState } from "./state.ts";

/**
 * cafe24-callback's logic. In order: the state (signature, expiry, mall), Cafe24's own error,
 * the code, the nonce (used up atomically), the code exchange, the write, the shop lookup.
 * Every check that can fail before the exchange fails before anything is written or sent.
 */

export interface CallbackParameters {
  code: string | null;
  state: string | null;
  error: string | null;
  /** Only when Cafe24 adds it; it must then name the state's mall. */
  mallId: string | null;
}

export interface ConnectSettings {
  apiBaseUrl: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  stateSecret: string;
  apiVersion: string | null;
  requestTimeoutMs: number;
}

export interface ConnectDeps {
  store: ConnectStore;
  settings: ConnectSettings;
  fetch?: typeof fetch;
  now?: () => number;
}

export type ConnectOutcome =
  | {
    ok: true;
    userId: string;
    mallId: string;
    authSettingsId: string;
    shops: number;
    warning: ConnectWarningCode | null;
  }
  | { ok: false; reason: RequestErrorCode };

const MAX_CODE_LENGTH = 512;
const STORE_ATTEMPTS = 4;
const STORE_RETRY_BASE_MS = 250;

export function callbackParameters(url: URL): CallbackParameters {
  const get = (name: string) => {
    const value = url.searchParams.get(name);
    return value === null || value === "" ? null : value;
  };
  return { code: get("code"), state: get("state"), error: get("error"), mallId: get("mall_id") };
}

export async function completeConnection(
  deps: ConnectDeps,
  parameters: CallbackParameters,
): Promise<ConnectOutcome> {
  const now = deps.now ?? Date.now;
  const { settings } = deps;

  const check = await verifyState(settings.stateSecret, parameters.state, now());
  if (!check.ok) return failed(check.code, null);
  const state = check.state;
  if (parameters.mallId !== null && parameters.mallId !== state.mallId) {
    return failed("STATE_MALL_MISMATCH", state);
  }
  if (parameters.error !== null) {
    return failed(parameters.error === "access_denied" ? "ACCESS_DENIED" : "AUTHORIZATION_FAILED", {
      ...state,
      detail: /^[a-z_]{1,64}$/.test(parameters.error) ? parameters.error : "(unreadable)",
    });
  }
  if (parameters.code === null || parameters.code.length > MAX_CODE_LENGTH) {
    return failed("MISSING_CODE", state);
  }

  // From here on the state is spent, whatever happens next: its code is about to be used.
  let consumed;
  try {
    consumed = await deps.store.consumeState(state);
  } catch {
    return failed("DATABASE_UNAVAILABLE", state);
  }
  if (consumed !== "consumed") {
    const reason = consumed === "expired"
      ? "STATE_EXPIRED"
      : consumed === "mismatch"
      ? "STATE_INVALID"
      : "STATE_REPLAYED";
    return failed(reason, { ...state, detail: consumed });
  }

  // The code dies one minute after it was issued: exchange it before anything else.
  let tokens: TokenSet;
  try {
    const response = await sendAuthorizationCodeRequest({
      apiBaseUrl: settings.apiBaseUrl,
      mallId: state.mallId,
      credentials: { clientId: settings.clientId, clientSecret: settings.clientSecret },
      code: parameters.code,
      redirectUri: settings.redirectUri,
      timeoutMs: settings.requestTimeoutMs,
      ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
    });
    tokens = await processTokenResponse(response, now());
  } catch (error) {
    if (error instanceof TokenRequestError) {
      return failed(exchangeFailure(error.code), { ...state, detail: error.code });
    }
    // mallApiUrl refuses a mall id that would leave the expected host (the state was checked).
    if (error instanceof RangeError) {
      return failed("STATE_INVALID", { ...state, detail: "unusable mall_id" });
    }
    throw error;
  }

  const connectedAt = new Date(now());
  const authSettingsId = await storeWithRetries(deps.store, state, tokens, connectedAt);
  if (authSettingsId === null) {
    // Cafe24 issued a pair that is now lost; the owner has to connect again.
    logEvent("error", "cafe24_connect_store_failed", {
      user_id: state.userId,
      mall_id: state.mallId,
    });
    return failed("CONNECTION_STORE_FAILED", state);
  }

  const shops = await lookUpShops(deps, state, authSettingsId, tokens.accessToken);
  logEvent("info", "cafe24_connected", {
    user_id: state.userId,
    mall_id: state.mallId,
    auth_settings_id: authSettingsId,
    shops: shops.count,
    ...(shops.warning === null ? {} : { warning: shops.warning }),
  });
  return {
    ok: true,
    userId: state.userId,
    mallId: state.mallId,
    authSettingsId,
    shops: shops.count,
    warning: shops.warning,
  };
}

function exchangeFailure(code: RefreshFailureCode): RequestErrorCode {
  switch (code) {
    case "CAFE24_MALFORMED_RESPONSE":
      return "TOKEN_RESPONSE_INVALID";
    case "CAFE24_SERVER_ERROR":
    case "CAFE24_RATE_LIMITED":
    case "CAFE24_TIMEOUT":
    case "CAFE24_NETWORK_ERROR":
      return "CAFE24_UNAVAILABLE";
    default:
      return "TOKEN_EXCHANGE_REJECTED";
  }
}

function failed(
  reason: RequestErrorCode,
  context: (OAuthState & { detail?: string }) | null,
): ConnectOutcome {
  // A state that fails its signature or shape check can come from anyone: counted, not logged
  // one line each.
  if (context === null && reason === "STATE_INVALID") {
    countUnauthenticated("cafe24-callback", reason);
    return { ok: false, reason };
  }
  logEvent("warn", "cafe24_connect_failed", {
    reason,
    ...(context === null ? {} : {
      user_id: context.userId,
      mall_id: isValidMallId(context.mallId) ? context.mallId : "(invalid)",
      ...(context.detail === undefined ? {} : { detail: context.detail }),
    }),
  });
  return { ok: false, reason };
}

async function storeWithRetries(
  store: ConnectStore,
  state: OAuthState,
  tokens: TokenSet,
  connectedAt: Date,
): Promise<string | null> {
  for (let attempt = 0; attempt < STORE_ATTEMPTS; attempt++) {
    try {
      return await store.storeConnection(
        state.userId,
        state.mallId,
        storedTokenFields(tokens),
        connectedAt,
      );
    } catch {
      await new Promise((resolve) => setTimeout(resolve, STORE_RETRY_BASE_MS * 2 ** attempt));
    }
  }
  return null;
}

/**
 * The shop list, then shop_no. Anything failing here leaves the connection in place and
 * records SHOPS_LOOKUP_FAILED on it.
 */
async function lookUpShops(
  deps: ConnectDeps,
  state: OAuthState,
  authSettingsId: string,
  accessToken: string,
): Promise<{ count: number; warning: ConnectWarningCode | null }> {
  const { settings } = deps;
  let shops: ShopSummary[];
  let detail: string;
  try {
    const response = await sendShopsRequest({
      apiBaseUrl: settings.apiBaseUrl,
      mallId: state.mallId,
      accessToken,
      apiVersion: settings.apiVersion,
      timeoutMs: settings.requestTimeoutMs,
      ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
    });
    shops = await processShopsResponse(response);
    await deps.store.storeShops(authSettingsId, state.mallId, shops);
    return { count: shops.length, warning: null };
  } catch (error) {
    detail = error instanceof ShopsRequestError
      ? error.message
      : "the shop list could not be stored";
  }
  const warning: ConnectWarningCode = "SHOPS_LOOKUP_FAILED";
  logEvent("warn", "cafe24_connect_shops_failed", {
    user_id: state.userId,
    mall_id: state.mallId,
    detail,
  });
  try {
    await deps.store.recordWarning(
      authSettingsId,
      state.mallId,
      warning,
      `${CONNECT_WARNINGS[warning].message} (${detail})`,
    );
  } catch {
    // The connection stands; only the note about the shops is missing.
  }
  return { count: 0, warning };
}
