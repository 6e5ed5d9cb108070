import type postgres from "postgres";
import { connectionPlace, openPair, type TokenSeal } from "../platform/token_seal.ts";
import type { StoredPair } from "./store.ts";
import type { ConnectionTarget } from "./target.ts";

/**
 * Ending connections: disconnecting on request (cafe24-disconnect) and verifying a mall after
 * Cafe24's app-uninstalled notice (cafe24-webhook). Each method is one call to a cafe24_private
 * SQL function (supabase/schemas/70_events.sql) or one read. Tokens come back opened (the
 * TokenSeal); one that does not open is left out, never sent anywhere as it is stored.
 */

export type DisconnectLookup =
  | { outcome: "not_found" }
  | {
    outcome: "disconnected";
    authSettingsId: string;
    mallId: string | null;
    /** The pair removed from the row, to revoke; null when it held none. */
    removed: StoredPair | null;
  };

export interface VerificationTarget {
  authSettingsId: string;
  /** Null when the stored access token has expired: the verification then waits for a refresh. */
  accessToken: string | null;
  /** The pair's token_version, for disconnectIfCurrent. */
  tokenVersion: string;
}

export interface RefreshedVerificationTarget {
  mallId: string;
  authSettingsId: string;
  accessToken: string;
  /** The pair's token_version, for disconnectIfCurrent. */
  tokenVersion: string;
}

export interface LifecycleStore {
  /**
   * Disconnects the connection named by id or mall (one of them), limited to `userId`'s rows
   * unless null; see disconnect_requested.
   */
  disconnectRequested(
    target: ConnectionTarget,
    userId: string | null,
    reason: string,
  ): Promise<DisconnectLookup>;
  /** The mall's connections to verify now, or none (no such connection, or verified lately). */
  claimMallVerification(mallId: string): Promise<VerificationTarget[]>;
  /** Leaves the mall's verification pending until its next refresh (defer_mall_verification). */
  deferMallVerification(mallId: string): Promise<void>;
  /**
   * The pending verifications whose mall was refreshed since (all malls, or only `mallId`), each
   * handed out once (claim_verification_pairs_after_refresh).
   */
  claimVerificationsAfterRefresh(mallId: string | null): Promise<RefreshedVerificationTarget[]>;
  /** Disconnects only while the row still holds the pair of `tokenVersion`. */
  disconnectIfCurrent(
    authSettingsId: string,
    tokenVersion: string,
    reason: string,
  ): Promise<"disconnected" | "superseded">;
}

export function createLifecycleStore(sql: postgres.Sql, seal: TokenSeal): LifecycleStore {
  const openAccess = async (authSettingsId: string, stored: string | null) => {
    if (stored === null) return null;
    const opened = await seal.open(connectionPlace(authSettingsId), "access_token", stored);
    return opened.ok ? opened.value : null;
  };
  return {
    async disconnectRequested(target, userId, reason) {
      const [row] = await sql<{
        outcome: "not_found" | "disconnected";
        auth_settings_id: string | null;
        mall_id: string | null;
        removed: StoredPair | null;
      }[]>`
        select * from cafe24_private.disconnect_requested(
          ${target.authSettingsId}::uuid, ${target.mallId}, ${userId}::uuid, ${reason})`;
      if (row === undefined || row.outcome === "not_found" || row.auth_settings_id === null) {
        return { outcome: "not_found" };
      }
      return {
        outcome: "disconnected",
        authSettingsId: row.auth_settings_id,
        mallId: row.mall_id,
        removed: row.removed === null
          ? null
          : await openPair(seal, connectionPlace(row.auth_settings_id), row.removed),
      };
    },

    async claimMallVerification(mallId) {
      const rows = await sql<
        { auth_settings_id: string; access_token: string | null; token_version: string }[]
      >`
        select * from cafe24_private.claim_mall_verification_pairs(${mallId})`;
      // A token that does not open counts as none: the verification waits for the next refresh.
      return await Promise.all(rows.map(async (row) => ({
        authSettingsId: row.auth_settings_id,
        accessToken: await openAccess(row.auth_settings_id, row.access_token),
        tokenVersion: String(row.token_version),
      })));
    },

    async deferMallVerification(mallId) {
      await sql`select cafe24_private.defer_mall_verification(${mallId})`;
    },

    async claimVerificationsAfterRefresh(mallId) {
      const rows = await sql<
        { mall_id: string; auth_settings_id: string; access_token: string; token_version: string }[]
      >`
        select * from cafe24_private.claim_verification_pairs_after_refresh(${mallId})`;
      const targets: RefreshedVerificationTarget[] = [];
      for (const row of rows) {
        const accessToken = await openAccess(row.auth_settings_id, row.access_token);
        if (accessToken === null) continue;
        targets.push({
          mallId: row.mall_id,
          authSettingsId: row.auth_settings_id,
          accessToken,
          tokenVersion: String(row.token_version),
        });
      }
      return targets;
    },

    async disconnectIfCurrent(authSettingsId, tokenVersion, reason) {
      const [row] = await sql<{ outcome: "disconnected" | "superseded" }[]>`
        select cafe24_private.disconnect_connection_if_current(
          ${authSettingsId}::uuid, ${tokenVersion}::bigint, ${reason}::text) as outcome`;
      return row!.outcome;
    },
  };
}
