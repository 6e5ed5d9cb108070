import type { Cafe24App } from "../cafe24/app.ts";
import { revokePair } from "../cafe24/revoke.ts";
import { logEvent } from "../platform/log.ts";
import { resealNow } from "./completion.ts";
import type { ConnectStore, ExpiredPending } from "./store.ts";

/** Pending connections handled per sweep; the cron tick comes back for the rest. */
export const EXPIRED_PENDING_PER_SWEEP = 50;

/**
 * Revokes the pairs of pending connections that nobody completed within their 10 minutes, then
 * removes them, so an abandoned or hijacked attempt leaves no live credential behind. A pair that
 * covers the scopes of the mall's current holder goes to the holder instead (its previous pair is
 * revoked): Cafe24 may have ended the holder's pair when it issued this one. A row is
 * removed only once Cafe24 confirmed the revocation (or after its last attempt); a refused one
 * stays for a later sweep. One mall's rows go one at a time and stop at its first refusal, so a
 * flood at one mall does not spend its rate limit in one burst. Runs in a function (never in SQL
 * through pg_net, which would carry the client secret in its queue).
 */
export async function revokeExpiredPendingConnections(
  deps: {
    settings: { app: Cafe24App };
    store: Pick<
      ConnectStore,
      "takeExpiredPending" | "giveExpiredPendingToHolder" | "settleExpiredPending" | "reseal"
    >;
  },
): Promise<{ taken: number; removed: number }> {
  const expired = await deps.store.takeExpiredPending(EXPIRED_PENDING_PER_SWEEP);
  const byMall = Map.groupBy(expired, (pending) => pending.mallId);
  const removed = await Promise.all(
    [...byMall.values()].map((pendings) => revokeMallInTurn(deps, pendings)),
  );
  const result = { taken: expired.length, removed: removed.reduce((a, b) => a + b, 0) };
  if (expired.length > 0) logEvent("info", "cafe24_pending_connections_expired", result);
  return result;
}

async function revokeMallInTurn(
  deps: Parameters<typeof revokeExpiredPendingConnections>[0],
  pendings: ExpiredPending[],
): Promise<number> {
  let removed = 0;
  for (const pending of pendings) {
    const kept = await deps.store.giveExpiredPendingToHolder(pending.handleHash);
    if (kept !== null) {
      await resealNow(deps, kept.authSettingsId, pending.handleHash);
      const replacedRevoke = kept.replaced === null
        ? null
        : await revokePair(deps.settings.app, pending.mallId, kept.replaced);
      logEvent("info", "cafe24_pair_kept_by_holder", {
        mall_id: pending.mallId,
        auth_settings_id: kept.authSettingsId,
        from: "expired",
        replaced_pair_revoke: replacedRevoke,
      });
      removed++;
      continue;
    }
    const outcome = await revokePair(deps.settings.app, pending.mallId, pending.tokens);
    if (await deps.store.settleExpiredPending(pending.handleHash, outcome === "revoked")) removed++;
    if (outcome !== "revoked") break;
  }
  return removed;
}
