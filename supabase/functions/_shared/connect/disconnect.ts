import type { Cafe24App } from "../cafe24/app.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { type RevokeOutcome, revokePair } from "../cafe24/revoke.ts";
import { RequestError, type RevokeFailureCode } from "../platform/errors.ts";
import { reportFailure } from "../platform/failure.ts";
import { logEvent } from "../platform/log.ts";
import type { LifecycleStore } from "./lifecycle_store.ts";
import type { ConnectionTarget } from "./target.ts";

/**
 * cafe24-disconnect: ends one connection. The tokens leave the row first (settings stay, status
 * `disconnected`, the reason in last_error_code, an event in the outbox), then the pair is revoked
 * at Cafe24. A revoke that fails is reported, not retried: the row holds no token any more either
 * way, and the pair dies on its own within 14 days.
 */

export type DisconnectCaller =
  /** The project's secret API key: any connection. */
  | { kind: "app" }
  /** A signed-in user: only their own rows. */
  | { kind: "user"; userId: string };

export interface DisconnectDeps {
  store: LifecycleStore;
  settings: { app: Cafe24App };
}

export interface Disconnected {
  disconnected: true;
  mall_id: string | null;
  revoked: boolean;
  revoke_error?: RevokeFailureCode;
}

export const DISCONNECT_REASONS = {
  user: "DISCONNECTED_BY_USER",
  app: "DISCONNECTED_BY_APP",
} as const;

/**
 * Throws RequestError NOT_FOUND (also for another user's connection), DATABASE_UNAVAILABLE or
 * INTERNAL_ERROR (reportFailure).
 */
export async function disconnect(
  deps: DisconnectDeps,
  caller: DisconnectCaller,
  target: ConnectionTarget,
): Promise<Disconnected> {
  let found;
  try {
    found = await deps.store.disconnectRequested(
      target,
      caller.kind === "user" ? caller.userId : null,
      DISCONNECT_REASONS[caller.kind],
    );
  } catch (error) {
    throw new RequestError(
      reportFailure("cafe24_disconnect_failed", error, {
        sqlFunction: "cafe24_private.disconnect_requested",
        fields: { by: caller.kind === "user" ? caller.userId : "app" },
      }),
    );
  }
  if (found.outcome === "not_found") throw new RequestError("NOT_FOUND");

  const revoke: RevokeOutcome | null = found.removed === null
    ? null
    : await revokeRemovedPair(deps, found.mallId, found.removed);
  const answer: Disconnected = {
    disconnected: true,
    mall_id: found.mallId,
    revoked: revoke === "revoked",
  };
  if (revoke !== "revoked") answer.revoke_error = revokeFailure(revoke);
  logEvent("info", "cafe24_disconnected", {
    auth_settings_id: found.authSettingsId,
    mall_id: found.mallId,
    by: caller.kind === "user" ? caller.userId : "app",
    revoke: revoke ?? "no_tokens",
  });
  return answer;
}

async function revokeRemovedPair(
  deps: DisconnectDeps,
  mallId: string | null,
  pair: { access_token?: unknown; refresh_token?: unknown },
): Promise<RevokeOutcome> {
  // Without a valid mall id there is no Cafe24 host to send the pair to.
  if (!isValidMallId(mallId)) return "rejected";
  return await revokePair(deps.settings.app, mallId, pair);
}

function revokeFailure(outcome: RevokeOutcome | null): RevokeFailureCode {
  switch (outcome) {
    case null:
      return "NO_TOKENS";
    case "unreachable":
      return "REVOKE_UNREACHABLE";
    default:
      return "REVOKE_REJECTED";
  }
}
