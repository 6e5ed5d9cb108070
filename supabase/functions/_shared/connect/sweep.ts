import { revokePair } from "../cafe24/revoke.ts";
import { logEvent } from "../platform/log.ts";
import { type RevokeDeps, revokeOptions } from "./callback.ts";
import type { ConnectStore } from "./store.ts";

/** Pending connections handled per sweep; the cron tick comes back for the rest. */
export const EXPIRED_PENDING_PER_SWEEP = 50;

/**
 * Removes pending connections that nobody completed within their 10 minutes and revokes their
 * pairs at Cafe24, so an abandoned or hijacked attempt leaves no live credential behind. Runs in
 * a function (never in SQL through pg_net, which would carry the client secret in its queue).
 */
export async function revokeExpiredPendingConnections(
  deps: RevokeDeps & { store: Pick<ConnectStore, "takeExpiredPending"> },
): Promise<number> {
  const expired = await deps.store.takeExpiredPending(EXPIRED_PENDING_PER_SWEEP);
  const outcomes = await Promise.all(
    expired.map(({ mallId, tokens }) => revokePair(revokeOptions(deps, mallId), tokens)),
  );
  if (expired.length > 0) {
    logEvent("info", "cafe24_pending_connections_expired", {
      count: expired.length,
      revoked: outcomes.filter((outcome) => outcome === "revoked").length,
    });
  }
  return expired.length;
}
