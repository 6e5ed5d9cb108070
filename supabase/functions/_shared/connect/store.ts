import type postgres from "postgres";
import {
  connectionPlace,
  openPair,
  pendingPlace,
  sealPair,
  type TokenSeal,
} from "../platform/token_seal.ts";
import { resealConnection } from "../tokens/reseal.ts";
import type { ShopSummary } from "../cafe24/shops.ts";
import type { OAuthState } from "./state.ts";

/**
 * The connect flow's view of the database: each method is one call to a cafe24_private SQL
 * function (supabase/schemas/60_connect_and_custody.sql). Pairs read from connections come back
 * opened (the TokenSeal) for revocation; a new connection is resealed at once (`reseal`).
 */

export type ConsumeOutcome = "consumed" | "unknown" | "mismatch" | "expired";
export type WriteOutcome = "stored" | "superseded";

/** A stored pair as it sits under providers.cafe24 (the keys that matter for revocation). */
export interface StoredPair {
  access_token?: unknown;
  refresh_token?: unknown;
}

export type Completion =
  | { outcome: "invalid" }
  | {
    outcome: "expired" | "mismatch";
    mallId: string;
    /** The pair to revoke; null when it went to the mall's holder instead (keptBy). */
    tokens: StoredPair | null;
    /** The holder's connection that got the pair (give_pair_to_holder), or null. */
    keptBy: string | null;
    /** The holder's previous pair, which the kept one replaced, for revocation. */
    replaced: StoredPair | null;
  }
  | {
    outcome: "connected";
    authSettingsId: string;
    mallId: string;
    requestedScopes: string[];
    tokens: StoredPair & { scopes?: unknown };
    /** Pairs removed from the accounts that held this mall before. */
    takenOver: (StoredPair & { auth_settings_id: string })[];
    /** The user's own earlier pair on the row, replaced by this one (another mall, or a reconnect). */
    replaced: (StoredPair & { mall_id?: unknown }) | null;
  };

export interface ExpiredPending {
  handleHash: Uint8Array;
  mallId: string;
  tokens: StoredPair;
  /** This one included. */
  revokeAttempts: number;
}

export interface ConnectStore {
  recordState(state: OAuthState): Promise<void>;
  /** Deletes the nonce and says whether it was open and bound to this user and mall. */
  consumeState(state: OAuthState): Promise<ConsumeOutcome>;
  /**
   * Parks a fresh pair until the user who started the attempt completes it; `over_limit` when the
   * user already has max_pending_connections() waiting (nothing is stored then).
   */
  recordPending(
    handleHash: Uint8Array,
    state: OAuthState,
    tokens: Record<string, unknown>,
  ): Promise<"recorded" | "over_limit">;
  /**
   * CAFE24_PLAINTEXT_TOKEN_COPY: copies the connection's access token (opened: the row holds it
   * sealed) and its expiry into providers.cafe24 (copy_access_token).
   */
  copyAccessToken(authSettingsId: string, accessToken: string): Promise<void>;
  /**
   * Brings a connection's pair to the form new values are written in (tokens/reseal.ts); `from`
   * is the handle hash of the pending connection the pair came from, sealed for it.
   */
  reseal(authSettingsId: string, from: Uint8Array): Promise<void>;
  /** Uses a pending connection up for `userId`; see complete_pending_connection. */
  completePending(handleHash: Uint8Array, userId: string, connectedAt: Date): Promise<Completion>;
  /** Leases up to `limit` pending connections nobody completed, for revocation. */
  takeExpiredPending(limit: number): Promise<ExpiredPending[]>;
  /**
   * Gives a leased one's pair to the mall's holder and removes it (give_expired_pending_to_holder);
   * null when it has no such holder and stays to be revoked.
   */
  giveExpiredPendingToHolder(
    handleHash: Uint8Array,
  ): Promise<{ authSettingsId: string; replaced: StoredPair | null } | null>;
  /** Removes a leased one once revoked (or out of attempts); true when it went. */
  settleExpiredPending(handleHash: Uint8Array, revoked: boolean): Promise<boolean>;
  storeShops(authSettingsId: string, mallId: string, shops: ShopSummary[]): Promise<WriteOutcome>;
  recordWarning(
    authSettingsId: string,
    mallId: string,
    code: string,
    message: string,
  ): Promise<WriteOutcome>;
  /** providers.cafe24.shop_no of a connection, as stored (null when unset). */
  shopNo(authSettingsId: string): Promise<unknown>;
}

export function createConnectStore(sql: postgres.Sql, seal: TokenSeal): ConnectStore {
  const opened = <T extends StoredPair>(authSettingsId: string, pair: T) =>
    openPair(seal, connectionPlace(authSettingsId), pair);
  const openedPending = <T extends StoredPair>(handleHash: Uint8Array, pair: T) =>
    openPair(seal, pendingPlace(handleHash), pair);
  return {
    async reseal(authSettingsId, from) {
      await resealConnection(sql, seal, authSettingsId, pendingPlace(from));
    },

    async recordState(state) {
      await sql`
        select cafe24_private.record_oauth_state(
          ${state.nonce}, ${state.userId}::uuid, ${state.mallId},
          ${new Date(state.expiresAt * 1000)})`;
    },

    async consumeState(state) {
      const [row] = await sql<{ outcome: ConsumeOutcome }[]>`
        select cafe24_private.consume_oauth_state(
          ${state.nonce}, ${state.userId}::uuid, ${state.mallId}) as outcome`;
      return row!.outcome;
    },

    async recordPending(handleHash, state, tokens) {
      // Sealed for this pending connection; completion reseals the pair for its row.
      tokens = await sealPair(seal, pendingPlace(handleHash), tokens);
      try {
        await sql`
          select cafe24_private.record_pending_connection(
            ${handleHash}, ${state.userId}::uuid, ${state.mallId}, ${state.scopes}::text[],
            ${sql.json(tokens as postgres.JSONValue)})`;
        return "recorded";
      } catch (error) {
        if ((error as { hint?: unknown }).hint === "TOO_MANY_PENDING_CONNECTIONS") {
          return "over_limit";
        }
        throw error;
      }
    },

    async copyAccessToken(authSettingsId, accessToken) {
      await sql`
        select cafe24_private.copy_access_token(${authSettingsId}::uuid, ${accessToken}::text)`;
    },

    async completePending(handleHash, userId, connectedAt) {
      const [row] = await sql<{
        outcome: Completion["outcome"];
        auth_settings_id: string | null;
        mall_id: string | null;
        requested_scopes: string[] | null;
        tokens: StoredPair | null;
        taken_over: (StoredPair & { auth_settings_id: string })[] | null;
        replaced: (StoredPair & { mall_id?: unknown }) | null;
      }[]>`
        select * from cafe24_private.complete_pending_connection(
          ${handleHash}, ${userId}::uuid, ${connectedAt})`;
      if (row === undefined || row.outcome === "invalid") return { outcome: "invalid" };
      if (row.outcome === "connected") {
        const id = row.auth_settings_id!;
        return {
          outcome: "connected",
          authSettingsId: id,
          mallId: row.mall_id!,
          requestedScopes: row.requested_scopes ?? [],
          tokens: await openedPending(handleHash, row.tokens ?? {}),
          takenOver: await Promise.all(
            (row.taken_over ?? []).map((pair) => opened(pair.auth_settings_id, pair)),
          ),
          replaced: row.replaced === null ? null : await opened(id, row.replaced),
        };
      }
      return {
        outcome: row.outcome,
        mallId: row.mall_id!,
        tokens: row.auth_settings_id === null
          ? await openedPending(handleHash, row.tokens ?? {})
          : null,
        keptBy: row.auth_settings_id,
        replaced: row.auth_settings_id === null || row.replaced === null
          ? null
          : await opened(row.auth_settings_id, row.replaced),
      };
    },

    async takeExpiredPending(limit) {
      const rows = await sql<
        { handle_hash: Uint8Array; mall_id: string; tokens: StoredPair; revoke_attempts: number }[]
      >`select * from cafe24_private.lease_expired_pending_connections(${limit})`;
      return await Promise.all(rows.map(async (row) => ({
        handleHash: row.handle_hash,
        mallId: row.mall_id,
        tokens: await openedPending(row.handle_hash, row.tokens),
        revokeAttempts: row.revoke_attempts,
      })));
    },

    async giveExpiredPendingToHolder(handleHash) {
      const [row] = await sql<{ auth_settings_id: string | null; replaced: StoredPair | null }[]>`
        select * from cafe24_private.give_expired_pending_to_holder(${handleHash})`;
      if (row === undefined || row.auth_settings_id === null) return null;
      return {
        authSettingsId: row.auth_settings_id,
        replaced: row.replaced === null ? null : await opened(row.auth_settings_id, row.replaced),
      };
    },

    async settleExpiredPending(handleHash, revoked) {
      const [row] = await sql<{ removed: boolean }[]>`
        select cafe24_private.settle_expired_pending_connection(${handleHash}, ${revoked})
          as removed`;
      return row?.removed === true;
    },

    async storeShops(authSettingsId, mallId, shops) {
      const [row] = await sql<{ outcome: WriteOutcome }[]>`
        select cafe24_private.store_shops(
          ${authSettingsId}::uuid, ${mallId},
          ${sql.json(shops as unknown as postgres.JSONValue)}) as outcome`;
      return row!.outcome;
    },

    async recordWarning(authSettingsId, mallId, code, message) {
      const [row] = await sql<{ outcome: WriteOutcome }[]>`
        select cafe24_private.record_connect_warning(
          ${authSettingsId}::uuid, ${mallId}, ${code}, ${message}) as outcome`;
      return row!.outcome;
    },

    async shopNo(authSettingsId) {
      const [row] = await sql<{ shop_no: unknown }[]>`
        select providers -> 'cafe24' -> 'shop_no' as shop_no
        from public.auth_settings where id = ${authSettingsId}::uuid`;
      return row?.shop_no ?? null;
    },
  };
}
