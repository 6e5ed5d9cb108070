import type postgres from "postgres";
import type { ConnectionTarget } from "../connect/target.ts";
import { connectionPlace, type TokenSeal } from "../platform/token_seal.ts";
import {
  type ClaimedConnection,
  createRefreshStore,
  openClaim,
  type RefreshStore,
} from "../refresh/store.ts";
import type { TokenRow } from "./decide.ts";

/**
 * A token request's view of the database: reading the connection it names, noting the request,
 * and claiming that one connection for a run. Tokens are opened here (the TokenSeal), so callers
 * see plaintext and the database only ever holds the sealed form. The refresh itself (start and finish the run, store
 * the pair or record the failure) goes through the refresher's own store.
 */
export interface TokenStore {
  refresh: RefreshStore;
  /** token_connections: by id, or a mall's rows (usable ones first, at most two). */
  read(target: ConnectionTarget): Promise<TokenRow[]>;
  /** The app asked for this connection's token (keep_alive keeps it fresh for a while). */
  noteRequest(authSettingsId: string): Promise<void>;
  /**
   * reject_access_token: an Admin API call was answered 401 with the token stored as
   * `storedRejected` (the row's storedAccessToken). Compared in SQL, so of many callers meeting
   * one 401 only the first makes the connection due.
   */
  rejectToken(authSettingsId: string, storedRejected: string): Promise<RejectVerdict>;
  /**
   * claim_connection_pair: the run's verdict on the connection, and the connection when it was due
   * and is now leased to the run; null when there is no such connection.
   */
  claim(runId: string, authSettingsId: string): Promise<Claim | null>;
}

/** reject_access_token's answer (supabase/schemas/90_admin_api.sql). */
export type RejectVerdict = "changed" | "marked" | "too_young" | "throttled" | "not_found";

export interface Claim {
  /** A CENSUS_VERDICTS value: 'due', or why the run may not refresh the connection now. */
  verdict: string;
  connection: ClaimedConnection | null;
}

interface Row {
  auth_settings_id: string;
  mall_id: string | null;
  row_state: string;
  status: string;
  access_token: string | null;
  access_expires_at: Date | null;
  shop_no: unknown;
  scopes: unknown;
  lease_expires_at: Date | null;
  next_attempt_at: Date | null;
  last_error_code: string | null;
  db_now: Date;
}

interface ClaimRow {
  verdict: string;
  auth_settings_id: string | null;
  mall_id: string;
  refresh_token: string;
  consecutive_failures: number;
  answer_possibly_lost: boolean;
  /** bigint, as text. */
  token_version: string;
}

const stores = new WeakMap<postgres.Sql, Map<TokenSeal, TokenStore>>();

/** One store per client, so that every caller in a process shares its in-flight refreshes. */
export function createTokenStore(sql: postgres.Sql, seal: TokenSeal): TokenStore {
  let bySeal = stores.get(sql);
  if (bySeal === undefined) {
    bySeal = new Map();
    stores.set(sql, bySeal);
  }
  let store = bySeal.get(seal);
  if (store === undefined) {
    store = {
      refresh: createRefreshStore(sql, seal),

      async read({ authSettingsId, mallId }) {
        const rows = await sql<Row[]>`
          select * from cafe24_private.token_connections(
            ${authSettingsId}::uuid, ${mallId}::text)`;
        return await Promise.all(rows.map(async (row) => {
          const opened = row.access_token === null ? null : await seal.open(
            connectionPlace(row.auth_settings_id),
            "access_token",
            row.access_token,
          );
          return {
            authSettingsId: row.auth_settings_id,
            mallId: row.mall_id,
            rowState: row.row_state,
            status: row.status,
            accessToken: opened?.ok ? opened.value : null,
            storedAccessToken: row.access_token,
            keyProblem: opened === null || opened.ok ? null : opened.problem,
            accessExpiresAt: row.access_expires_at,
            shopNo: row.shop_no,
            scopes: row.scopes,
            leaseExpiresAt: row.lease_expires_at,
            nextAttemptAt: row.next_attempt_at,
            lastErrorCode: row.last_error_code,
            dbNow: row.db_now,
          };
        }));
      },

      async noteRequest(authSettingsId) {
        await sql`select cafe24_private.note_token_request(${authSettingsId}::uuid)`;
      },

      async rejectToken(authSettingsId, storedRejected) {
        const [row] = await sql<{ verdict: RejectVerdict }[]>`
          select cafe24_private.reject_access_token(${authSettingsId}::uuid, ${storedRejected})
            as verdict`;
        return row?.verdict ?? "not_found";
      },

      async claim(runId, authSettingsId) {
        const [row] = await sql<ClaimRow[]>`
          select * from cafe24_private.claim_connection_pair(${runId}::uuid, ${authSettingsId}::uuid)`;
        if (row === undefined) return null;
        return {
          verdict: row.verdict,
          connection: row.auth_settings_id === null ? null : await openClaim(seal, {
            ...row,
            auth_settings_id: row.auth_settings_id,
          }),
        };
      },
    };
    bySeal.set(seal, store);
  }
  return store;
}
