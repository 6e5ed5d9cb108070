import type postgres from "postgres";
import { reportFailure } from "../platform/failure.ts";
import { logEvent } from "../platform/log.ts";
import {
  TOKEN_CIPHERTEXT_VERSION,
  type TokenField,
  type TokenPlace,
} from "../platform/token_crypto.ts";
import { connectionPlace, pendingPlace, type TokenSeal } from "../platform/token_seal.ts";

/**
 * Resealing: writing a row's pair again, unchanged, in the form new values are written in. Rows
 * holding legacy plaintext (written before the ring was set, by a connect, or into
 * providers.cafe24 from outside) and rows sealed under an earlier key are brought to the active
 * key here, a bounded number per scheduled refresh invocation and each new connection at once.
 * The write is a compare-and-swap on token_version and skips leased rows
 * (cafe24_private.reseal_tokens), so a refresh in flight always keeps its new pair.
 */

interface StoredRow {
  auth_settings_id: string;
  access_token: string | null;
  refresh_token: string;
  token_version: string;
}

export interface ResealOutcome {
  resealed: number;
  /** Rows whose tokens did not open here (their key is not in the ring, or they are forged). */
  unopened: number;
  /** Rows a refresh or another writer changed first (their new pair is current already). */
  changed: number;
}

/** Rows the background pass looks at per call: a bounded range of the primary key. */
const RESEAL_WINDOW = 500;
/**
 * Rows resealed per scheduled invocation: one open and one seal per token, about 0.25 ms of
 * CPU per row (50 ms for 200), well inside an invocation's CPU budget.
 */
export const RESEAL_PER_INVOCATION = 200;

/**
 * The scheduled invocation's background pass; logged, never thrown (it is housekeeping). Returns
 * what it did, for the run's summary; null when it could not run.
 */
export async function resealInBackground(
  sql: postgres.Sql,
  seal: TokenSeal,
): Promise<ResealOutcome | null> {
  try {
    const outcome = await resealStaleRows(sql, seal, RESEAL_PER_INVOCATION);
    if (outcome.resealed + outcome.unopened + outcome.changed > 0) {
      logEvent(outcome.unopened > 0 ? "warn" : "info", "cafe24_tokens_resealed", {
        ...outcome,
        kid: seal.activeKid,
      });
    }
    return outcome;
  } catch (error) {
    reportFailure("cafe24_token_reseal_failed", error, {
      sqlFunction: "cafe24_private.tokens_to_reseal",
    });
    return null;
  }
}

/** The prefix of values sealed with the active key; '' while no ring is set. */
function currentPrefix(seal: TokenSeal): string {
  return seal.activeKid === null ? "" : `${TOKEN_CIPHERTEXT_VERSION}.${seal.activeKid}.`;
}

/**
 * Up to `limit` rows not in the current form, resealed: first the pairs still sealed for the
 * pending connection they came from (their reseal at completion failed; nothing else opens
 * them), then legacy plaintext and earlier keys. Nothing while the seal is blocked.
 */
export async function resealStaleRows(
  sql: postgres.Sql,
  seal: TokenSeal,
  limit: number,
): Promise<ResealOutcome> {
  const outcome: ResealOutcome = { resealed: 0, unopened: 0, changed: 0 };
  if (!seal.writable || limit <= 0) return outcome;
  // At most half the count: a pair that opens nowhere (its key left the ring) stays listed.
  const pending = await sql<{ auth_settings_id: string; handle_hash: Uint8Array }[]>`
    select * from cafe24_private.connections_sealed_for_pending(${Math.ceil(limit / 2)})`;
  for (const { auth_settings_id: id, handle_hash: hash } of pending) {
    await resealOne(sql, seal, id, outcome, pendingPlace(hash));
  }
  const rest = limit - pending.length;
  if (rest <= 0) return outcome;
  const rows = await sql<StoredRow[]>`
    select * from cafe24_private.tokens_to_reseal(
      ${currentPrefix(seal)}, ${crypto.randomUUID()}::uuid, ${RESEAL_WINDOW}, ${rest})`;
  for (const row of rows) await resealRow(sql, seal, row, outcome);
  return outcome;
}

/**
 * One connection resealed, when it is not in the current form already. After a connect its pair
 * is still sealed for the pending connection it came from (`from`, its handle hash): only that
 * place opens it, which also proves the row still holds that very pair.
 */
export async function resealConnection(
  sql: postgres.Sql,
  seal: TokenSeal,
  authSettingsId: string,
  from?: TokenPlace,
): Promise<ResealOutcome> {
  const outcome: ResealOutcome = { resealed: 0, unopened: 0, changed: 0 };
  if (seal.writable) await resealOne(sql, seal, authSettingsId, outcome, from);
  return outcome;
}

async function resealOne(
  sql: postgres.Sql,
  seal: TokenSeal,
  authSettingsId: string,
  outcome: ResealOutcome,
  from?: TokenPlace,
): Promise<void> {
  const [row] = await sql<StoredRow[]>`
    select * from cafe24_private.connection_tokens(${authSettingsId}::uuid)`;
  if (row !== undefined) await resealRow(sql, seal, row, outcome, from);
}

async function resealRow(
  sql: postgres.Sql,
  seal: TokenSeal,
  row: StoredRow,
  outcome: ResealOutcome,
  from?: TokenPlace,
): Promise<void> {
  const current = seal.isCurrent(row.refresh_token) &&
    (row.access_token === null || seal.isCurrent(row.access_token));
  // In the current form for the row itself: nothing to do. (A pair still sealed for its pending
  // connection names the current key too, so with `from` only opening tells.)
  if (current && from === undefined) return;
  const place = connectionPlace(row.auth_settings_id);
  let openedFrom = false;
  const open = async (field: TokenField, stored: string) => {
    const here = await seal.open(place, field, stored);
    if (here.ok || from === undefined) return here;
    const there = await seal.open(from, field, stored);
    openedFrom ||= there.ok;
    return there;
  };
  const refresh = await open("refresh_token", row.refresh_token);
  const access = row.access_token === null ? null : await open("access_token", row.access_token);
  if (!refresh.ok || (access !== null && !access.ok)) {
    outcome.unopened++;
    const problem = !refresh.ok
      ? refresh.problem
      : access !== null && !access.ok
      ? access.problem
      : null;
    logEvent("warn", "cafe24_token_reseal_skipped", {
      connection_id: row.auth_settings_id,
      reason: problem?.reason ?? "undecryptable",
      kid: problem?.kid ?? null,
    });
    return;
  }
  if (current && !openedFrom) return;
  const [written] = await sql<{ written: boolean }[]>`
    select cafe24_private.reseal_tokens(
      ${row.auth_settings_id}::uuid, ${row.token_version}::bigint,
      ${access === null ? null : await seal.seal(place, "access_token", access.value)}::text,
      ${await seal.seal(place, "refresh_token", refresh.value)}::text) as written`;
  if (written?.written) outcome.resealed++;
  else outcome.changed++;
}
