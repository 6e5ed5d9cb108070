/**
 * What cafe24-token answers for a connection as the database shows it: pure decisions, no I/O.
 * Every comparison uses the database's clock (`dbNow`), the clock the leases, backoff and due
 * times are written with.
 */

import type { KeyProblem } from "../platform/token_seal.ts";

/** A connection as a token request reads it (cafe24_private.token_connections). */
export interface TokenRow {
  authSettingsId: string;
  mallId: string | null;
  rowState: string;
  status: string;
  /** In plaintext; null when none is stored or it did not open (then `keyProblem` says why). */
  accessToken: string | null;
  /** The access token as stored (sealed): what reject_access_token compares. */
  storedAccessToken: string | null;
  /** The stored access token does not open with the functions' key ring. */
  keyProblem: KeyProblem | null;
  /** Null when unknown (none stored, or not an instant this project can read). */
  accessExpiresAt: Date | null;
  shopNo: unknown;
  scopes: unknown;
  leaseExpiresAt: Date | null;
  nextAttemptAt: Date | null;
  lastErrorCode: string | null;
  dbNow: Date;
}

/** The answer: the same object cafe24-token sends as JSON. */
export interface Cafe24AccessToken {
  access_token: string;
  /** ISO-8601, UTC. */
  expires_at: string;
  mall_id: string;
  /** providers.cafe24.shop_no when it is a number, else null. */
  shop_no: number | null;
  /** The scopes Cafe24 granted, when stored. */
  scopes: string[] | null;
  /**
   * Present when a refresh was needed and failed, or the connection is waiting out a failure's
   * backoff: the token is still valid, for less than was asked.
   */
  refresh_failed?: string;
}

export type TokenDecision =
  | { kind: "answer"; token: Cafe24AccessToken }
  | { kind: "not_found" }
  | { kind: "reconnect_required" }
  /** 503: the token has expired (or is unknown) and cannot be refreshed now. */
  | { kind: "unavailable"; reason: string; retryAfterS: number | null }
  /** Someone else holds the connection's lease: wait for it to end, at most this long. */
  | { kind: "wait"; leaseEndsInMs: number }
  | { kind: "refresh" };

const usable = (row: TokenRow) => row.rowState === "ok" && row.status === "active";

/**
 * The connection a request names, from what token_connections returned (usable rows first, at
 * most two): one row by id, or for a mall the one usable row. A mall held by several rows none of
 * which is usable needs its owner (the first row says why); one held by several usable rows is
 * ambiguous.
 */
export function selectConnection(
  rows: TokenRow[],
): { row: TokenRow } | { kind: "not_found" | "ambiguous" } {
  const [first, second] = rows;
  if (first === undefined || first.rowState === "no_cafe24") return { kind: "not_found" };
  if (second !== undefined && usable(first) && usable(second)) return { kind: "ambiguous" };
  return { row: first };
}

/**
 * What to do for `row` when the caller needs `minValidS` seconds of validity. `failure` is the
 * code of a refresh this request just saw fail, or null. A connection backing off after an
 * earlier failure counts as failed with that failure's code: its next attempt is not due yet, and
 * no caller may hurry it (a Retry-After from Cafe24 is a floor of the backoff).
 */
export function decideToken(
  row: TokenRow,
  minValidS: number,
  failure: string | null,
): TokenDecision {
  if (row.rowState === "no_cafe24") return { kind: "not_found" };
  if (!usable(row)) return { kind: "reconnect_required" };
  const now = row.dbNow.getTime();
  const remainingMs = row.accessToken === null || row.accessExpiresAt === null
    ? -Infinity
    : row.accessExpiresAt.getTime() - now;
  if (remainingMs >= minValidS * 1000) return { kind: "answer", token: answer(row) };

  const backingOff = row.nextAttemptAt !== null && row.nextAttemptAt.getTime() > now &&
    row.lastErrorCode !== null;
  const failed = failure ?? (backingOff ? row.lastErrorCode : null);
  if (failed !== null) {
    if (remainingMs > 0) {
      return { kind: "answer", token: { ...answer(row), refresh_failed: failed } };
    }
    return {
      kind: "unavailable",
      reason: failed,
      retryAfterS: backingOff ? Math.ceil((row.nextAttemptAt!.getTime() - now) / 1000) : null,
    };
  }
  if (row.leaseExpiresAt !== null && row.leaseExpiresAt.getTime() > now) {
    return { kind: "wait", leaseEndsInMs: row.leaseExpiresAt.getTime() - now };
  }
  return { kind: "refresh" };
}

function answer(row: TokenRow): Cafe24AccessToken {
  const scopes = Array.isArray(row.scopes) && row.scopes.every((s) => typeof s === "string")
    ? row.scopes as string[]
    : null;
  return {
    access_token: row.accessToken!,
    expires_at: row.accessExpiresAt!.toISOString(),
    mall_id: row.mallId!,
    shop_no: typeof row.shopNo === "number" ? row.shopNo : null,
    scopes,
  };
}
