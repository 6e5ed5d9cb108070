import { scopesNotRequested } from "../cafe24/scopes.ts";
import type { Cafe24App } from "../cafe24/app.ts";
import {
  processTokenResponse,
  sendAuthorizationCodeRequest,
  storedTokenFields,
  TokenRequestError,
  type TokenSet,
} from "../cafe24/token.ts";
import { revokePair } from "../cafe24/revoke.ts";
import type { ConnectStore } from "./store.ts";
import { handleHash, newHandle } from "./handle.ts";
import type { RefreshFailureCode, RequestErrorCode } from "../platform/errors.ts";
import { reportFailure } from "../platform/failure.ts";
import { countUnauthenticated, logEvent } from "../platform/log.ts";
import { type RetryPolicy, withRetries } from "../platform/retry.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { type OAuthState, verifyState } from "./state.ts";

/**
 * cafe24-callback's first step (GET, Cafe24's redirect). In order: the state (signature, expiry,
 * mall), Cafe24's own error, the code, the nonce (used up atomically), the code exchange, and
 * parking the pair as a pending connection under a fresh handle. Nothing is attached to an
 * account here: the browser that arrives may not be the one that started the attempt (see
 * supabase/schemas/60_connect_and_custody.sql); the app completes with the user's session
 * (completion.ts).
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
  app: Cafe24App;
  redirectUri: string;
  stateSecret: string;
  /** CAFE24_PLAINTEXT_TOKEN_COPY: copy a new connection's access token into providers.cafe24. */
  plaintextTokenCopy?: boolean;
}

export interface ConnectDeps {
  store: ConnectStore;
  settings: ConnectSettings;
  now?: () => number;
}

export type CallbackOutcome =
  | { ok: true; mallId: string; handle: string }
  | { ok: false; reason: RequestErrorCode };

const MAX_CODE_LENGTH = 512;
/**
 * Parking the pair is tried again while the database is briefly unreachable: the user waits on
 * the redirect, so about 2 s in all. Safe to repeat: the handle is new, so the row is written
 * at most once (a repeat after a lost reply fails on the handle's key and ends as a store
 * failure, which revokes the pair).
 */
const STORE_RETRIES: RetryPolicy = { attempts: 4, firstDelayMs: 250 };

export function callbackParameters(url: URL): CallbackParameters {
  const get = (name: string) => {
    const value = url.searchParams.get(name);
    return value === null || value === "" ? null : value;
  };
  return { code: get("code"), state: get("state"), error: get("error"), mallId: get("mall_id") };
}

export async function finishAuthorization(
  deps: ConnectDeps,
  parameters: CallbackParameters,
): Promise<CallbackOutcome> {
  const now = deps.now ?? Date.now;
  const { settings } = deps;

  const check = await verifyState(settings.stateSecret, parameters.state, now());
  if (!check.ok) return replayable(check.code);
  const state = check.state;
  if (parameters.mallId !== null && parameters.mallId !== state.mallId) {
    return replayable("STATE_MALL_MISMATCH");
  }
  if (parameters.error !== null) {
    return replayable(
      parameters.error === "access_denied" ? "ACCESS_DENIED" : "AUTHORIZATION_FAILED",
    );
  }
  if (parameters.code === null || parameters.code.length > MAX_CODE_LENGTH) {
    return replayable("MISSING_CODE");
  }

  // From here on the state is spent, whatever happens next: its code is about to be used.
  let consumed;
  try {
    consumed = await deps.store.consumeState(state);
  } catch (error) {
    const failure = reportFailure("cafe24_connect_state_failed", error, {
      sqlFunction: "cafe24_private.consume_oauth_state",
      fields: { user_id: state.userId, mall_id: state.mallId },
    });
    return failed(failure, state);
  }
  if (consumed !== "consumed") {
    const reason = consumed === "expired"
      ? "STATE_EXPIRED"
      : consumed === "mismatch"
      ? "STATE_INVALID"
      : "STATE_REPLAYED";
    return replayable(reason);
  }

  // The code dies one minute after it was issued: exchange it before anything else.
  let tokens: TokenSet;
  try {
    const response = await sendAuthorizationCodeRequest(settings.app, {
      mallId: state.mallId,
      code: parameters.code,
      redirectUri: settings.redirectUri,
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

  // What Cafe24 issued must be what was asked for: this mall, and no scope beyond the signed
  // request (a scope added to the Cafe24 URL by hand would otherwise widen the app's reach).
  const refusal = tokens.mallId !== null && tokens.mallId !== state.mallId
    ? "STATE_MALL_MISMATCH"
    : tokens.scopes !== null && scopesNotRequested(tokens.scopes, state.scopes).length > 0
    ? "SCOPE_NOT_REQUESTED"
    : null;
  if (refusal !== null) return await refused(refusal, deps, state, tokens);

  const handle = newHandle();
  const hash = await handleHash(handle);
  const parked = await withRetries(
    () => deps.store.recordPending(hash, state, storedTokenFields(tokens)),
    STORE_RETRIES,
  ).catch(() => "failed" as const);
  if (parked === "over_limit") {
    return await refused("TOO_MANY_PENDING_CONNECTIONS", deps, state, tokens);
  }
  if (parked === "failed") {
    // The pair cannot be parked: revoke it rather than leave a live pair nobody holds.
    return await refused("CONNECTION_STORE_FAILED", deps, state, tokens);
  }
  logEvent("info", "cafe24_connect_pending", { user_id: state.userId, mall_id: state.mallId });
  return { ok: true, mallId: state.mallId, handle };
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

/** Ends an attempt whose pair Cafe24 already issued: the pair is revoked, never left live. */
async function refused(
  reason: RequestErrorCode,
  deps: ConnectDeps,
  state: OAuthState,
  tokens: TokenSet,
): Promise<CallbackOutcome> {
  const revoke = await revokePair(deps.settings.app, state.mallId, storedTokenFields(tokens));
  return failed(reason, { ...state, detail: `pair revoke: ${revoke}` });
}

/**
 * An attempt that ends before its state is used up. Anyone holding a state URL, even one used or
 * expired long ago, can send it again and again, so these are counted, not logged one line each.
 */
function replayable(reason: RequestErrorCode): CallbackOutcome {
  countUnauthenticated("cafe24-callback", reason);
  return { ok: false, reason };
}

/** An attempt that ends after its state was used up: at most one per state, logged. */
function failed(
  reason: RequestErrorCode,
  context: (OAuthState & { detail?: string }) | null,
): CallbackOutcome {
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
