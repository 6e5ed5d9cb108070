import type postgres from "postgres";
import type { ShopSummary } from "../cafe24/shops.ts";
import type { OAuthState } from "./state.ts";

/**
 * The connect flow's view of the database: each method is one call to a cafe24_private SQL
 * function (supabase/migrations/20261125000400_cafe24_connect.sql).
 */

export type ConsumeOutcome = "consumed" | "unknown" | "mismatch" | "expired";
export type WriteOutcome = "stored" | "superseded";

export interface ConnectStore {
  recordState(state: OAuthState): Promise<void>;
  /** Deletes the nonce and says whether it was open and bound to this user and mall. */
  consumeState(state: OAuthState): Promise<ConsumeOutcome>;
  /** Merges the new pair into the user's auth_settings row (created if missing); returns its id. */
  storeConnection(
    userId: string,
    mallId: string,
    tokens: Record<string, unknown>,
    connectedAt: Date,
  ): Promise<string>;
  storeShops(authSettingsId: string, mallId: string, shops: ShopSummary[]): Promise<WriteOutcome>;
  recordWarning(
    authSettingsId: string,
    mallId: string,
    code: string,
    message: string,
  ): Promise<WriteOutcome>;
}

export function createConnectStore(sql: postgres.Sql): ConnectStore {
  return {
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

    async storeConnection(userId, mallId, tokens, connectedAt) {
      const [row] = await sql<{ id: string }[]>`
        select cafe24_private.store_connection(
          ${userId}::uuid, ${mallId}, ${sql.json(tokens as postgres.JSONValue)},
          ${connectedAt}) as id`;
      return row!.id;
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
  };
}
