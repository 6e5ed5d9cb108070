import { processShopsResponse, sendShopsRequest, ShopsRequestError } from "../cafe24/shops.ts";
import { revokePair } from "../cafe24/revoke.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { CONNECT_WARNINGS, type ConnectWarningCode, RequestError } from "../platform/errors.ts";
import { reportFailure } from "../platform/failure.ts";
import { logEvent } from "../platform/log.ts";
import type { ConnectDeps } from "./callback.ts";
import { handleHash, isWellFormedHandle } from "./handle.ts";
import { systemClock } from "../refresh/clock.ts";
import { withDatabaseRetries } from "../refresh/retries.ts";
import type { Completion } from "./store.ts";

/**
 * cafe24-callback's second step (POST with the user's session): the app hands back the handle it
 * found in its URL fragment. Only the user who started the attempt gets the connection; anyone
 * else's attempt to use the handle destroys it and revokes its pair at Cafe24, so a handle that
 * reached the wrong browser is worthless. A completed connection takes the mall over from any
 * other account that held it (see complete_pending_connection). A refused or expired attempt's
 * pair goes to the mall's current holder when it covers the holder's scopes, instead of being
 * revoked: Cafe24 may have ended the holder's pair when it issued this one (give_pair_to_holder).
 */

export interface Connected {
  mallId: string;
  authSettingsId: string;
  shopNo: unknown;
  warning: ConnectWarningCode | null;
}

/**
 * Throws RequestError: HANDLE_INVALID, CONNECT_USER_MISMATCH, DATABASE_UNAVAILABLE or
 * INTERNAL_ERROR (reportFailure).
 */
export async function completeConnection(
  deps: ConnectDeps,
  userId: string,
  handle: unknown,
): Promise<Connected> {
  if (!isWellFormedHandle(handle)) throw new RequestError("HANDLE_INVALID");
  const now = deps.now ?? Date.now;
  const { app } = deps.settings;

  const hash = await handleHash(handle);
  let completion;
  try {
    completion = await deps.store.completePending(
      hash,
      userId,
      new Date(now()),
    );
  } catch (error) {
    throw new RequestError(
      reportFailure("cafe24_connect_complete_failed", error, {
        sqlFunction: "cafe24_private.complete_pending_connection",
        fields: { user_id: userId },
      }),
    );
  }

  switch (completion.outcome) {
    case "invalid":
      throw new RequestError("HANDLE_INVALID");
    case "expired":
    case "mismatch": {
      const revoke = await endRefusedPair(deps, completion, hash);
      if (completion.outcome === "expired") throw new RequestError("HANDLE_INVALID");
      logEvent("warn", "cafe24_connect_user_mismatch", {
        user_id: userId,
        mall_id: completion.mallId,
        ...revoke,
      });
      throw new RequestError("CONNECT_USER_MISMATCH");
    }
  }

  const { mallId, authSettingsId } = completion;
  // The accounts that lost the mall, and the pair this one replaced, keep nothing usable: those
  // pairs are revoked too. (Replaced: the same row held another mall, or this mall's older grant.)
  const [replacedRevoke, ...revokes] = await Promise.all([
    completion.replaced === null || !isValidMallId(completion.replaced.mall_id)
      ? null
      : revokePair(app, completion.replaced.mall_id, completion.replaced),
    ...completion.takenOver.map((pair) => revokePair(app, mallId, pair)),
  ]);
  for (const [index, pair] of completion.takenOver.entries()) {
    logEvent("info", "cafe24_connection_taken_over", {
      mall_id: mallId,
      from_auth_settings_id: pair.auth_settings_id,
      to_auth_settings_id: authSettingsId,
      revoke: revokes[index],
    });
  }
  await resealNow(deps, authSettingsId, hash);
  const accessToken = completion.tokens.access_token;
  if (deps.settings.plaintextTokenCopy && typeof accessToken === "string") {
    try {
      await deps.store.copyAccessToken(authSettingsId, accessToken);
    } catch {
      // Connected all the same; the next refresh writes the copy.
      logEvent("warn", "cafe24_token_copy_failed", {
        mall_id: mallId,
        auth_settings_id: authSettingsId,
      });
    }
  }
  const warning = typeof accessToken === "string"
    ? await lookUpShops(deps, mallId, authSettingsId, accessToken)
    : "SHOPS_LOOKUP_FAILED";
  let shopNo: unknown = null;
  try {
    shopNo = await deps.store.shopNo(authSettingsId);
  } catch {
    // Connected all the same; the app can read shop_no from cafe24_connections.
  }
  logEvent("info", "cafe24_connected", {
    user_id: userId,
    mall_id: mallId,
    auth_settings_id: authSettingsId,
    taken_over: completion.takenOver.length,
    ...(replacedRevoke === null ? {} : { replaced_pair_revoke: replacedRevoke }),
    ...(warning === null ? {} : { warning }),
  });
  return { mallId, authSettingsId, shopNo, warning };
}

/**
 * A refused or expired attempt's pair: revoked, or, when it went to the mall's holder, the
 * holder's previous pair is revoked instead (nobody holds that one any more).
 */
async function endRefusedPair(
  deps: ConnectDeps,
  completion: Extract<Completion, { outcome: "expired" | "mismatch" }>,
  hash: Uint8Array,
): Promise<Record<string, unknown>> {
  const { app } = deps.settings;
  if (completion.keptBy === null) {
    return { revoke: await revokePair(app, completion.mallId, completion.tokens ?? {}) };
  }
  await resealNow(deps, completion.keptBy, hash);
  const replacedRevoke = completion.replaced === null
    ? null
    : await revokePair(app, completion.mallId, completion.replaced);
  logEvent("info", "cafe24_pair_kept_by_holder", {
    mall_id: completion.mallId,
    auth_settings_id: completion.keptBy,
    from: completion.outcome,
    replaced_pair_revoke: replacedRevoke,
  });
  return { kept_by: completion.keptBy };
}

/**
 * A pair that came from a pending connection lands in the row sealed for the pending connection
 * (`from`, its handle hash); it is resealed for the row at once. Until then the row's refreshes
 * set it aside (key_unavailable), sending nothing. Should this fail on every retry, the row still
 * names the pending connection (complete_pending_connection noted it in the same transaction), and
 * the next scheduled background pass reseals it from there (tokens/reseal.ts).
 */
export async function resealNow(
  deps: { store: Pick<ConnectDeps["store"], "reseal"> },
  authSettingsId: string,
  from: Uint8Array,
): Promise<void> {
  try {
    // Retried: only this call can open the pair for the row (the pending connection is gone).
    await withDatabaseRetries(() => deps.store.reseal(authSettingsId, from), systemClock.sleep);
  } catch (error) {
    reportFailure("cafe24_token_reseal_failed", error, {
      sqlFunction: "cafe24_private.reseal_tokens",
      fields: { auth_settings_id: authSettingsId },
    });
  }
}

/**
 * The shop list, then shop_no. Anything failing here leaves the connection in place and
 * records SHOPS_LOOKUP_FAILED on it.
 */
async function lookUpShops(
  deps: ConnectDeps,
  mallId: string,
  authSettingsId: string,
  accessToken: string,
): Promise<ConnectWarningCode | null> {
  let detail: string;
  try {
    const response = await sendShopsRequest(deps.settings.app, { mallId, accessToken });
    await deps.store.storeShops(authSettingsId, mallId, await processShopsResponse(response));
    return null;
  } catch (error) {
    detail = error instanceof ShopsRequestError
      ? error.message
      : "the shop list could not be stored";
  }
  const warning: ConnectWarningCode = "SHOPS_LOOKUP_FAILED";
  logEvent("warn", "cafe24_connect_shops_failed", { mall_id: mallId, detail });
  try {
    await deps.store.recordWarning(
      authSettingsId,
      mallId,
      warning,
      `${CONNECT_WARNINGS[warning].message} (${detail})`,
    );
  } catch {
    // The connection stands; only the note about the shops is missing.
  }
  return warning;
}
