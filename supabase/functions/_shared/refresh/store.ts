import type postgres from "postgres";
import {
  connectionPlace,
  type KeyProblem,
  sealPair,
  type TokenSeal,
} from "../platform/token_seal.ts";
import type { RunScope, RunTrigger } from "./scope.ts";
import { CENSUS_VERDICTS, type CensusVerdict } from "./skip_reasons.ts";

/**
 * The refresher's view of the database: each method is one call to a cafe24_private SQL
 * function (supabase/schemas/30_refresh_rules_and_claim.sql and 40_runs_and_settle.sql), where
 * the state transitions are race-free by construction. A claim returns the pair's token_version
 * and settling passes it back: the compare-and-swap never compares token text, so the tokens
 * can be stored in another form (encrypted) without a settle mistaking it for a new pair.
 * Token text crosses here and nowhere else: a claim opens the stored refresh token with the
 * TokenSeal, a store seals the new pair, so the rest of the refresher deals in plaintext.
 * A run is recorded with its scope first (startRun); every later call names the run by its id,
 * which is also the id of the leases it takes, and the SQL reads the scope from the run's row.
 */

export type RunMode = "sync" | "async";

export interface RunStart {
  trigger: RunTrigger;
  mode: RunMode;
  scope: RunScope;
  /** How long a claim holds a connection. */
  leaseMs: number;
}

/** Connections in the run's scope by verdict; `scanned` is their sum. */
export type Census = { scanned: number } & Record<CensusVerdict, number>;

export interface ClaimedConnection {
  id: string;
  mallId: string;
  /** The refresh token in plaintext; empty when `keyProblem` says why it did not open. */
  refreshToken: string;
  /** The stored refresh token does not open here (its key is not in the ring, or it is forged). */
  keyProblem: KeyProblem | null;
  /** The pair's token_version: what settling compares (never the token text). */
  tokenVersion: string;
  consecutiveFailures: number;
  answerPossiblyLost: boolean;
}

export type StoreOutcome = "stored" | "superseded";
export type FailureOutcome =
  | "already_rotated"
  | "lease_lost"
  | "reconnect_required"
  | "retry_scheduled";

export interface FailureRecord {
  code: string;
  message: string;
  permanent: boolean;
  outcomeUnknown: boolean;
  nextAttemptAt: Date | null;
}

/** Settling a claimed connection, and whether to claim the run's next one in the same call. */
interface Settle {
  runId: string;
  connection: Pick<ClaimedConnection, "id" | "tokenVersion">;
  claimNext: boolean;
}

export interface Settled<T> {
  outcome: T;
  /** The next connection, when claimNext was asked for and one was due. */
  next: ClaimedConnection | undefined;
}

export interface RefreshStore {
  /** Whether a refreshed pair can be stored now (the seal has an active key, or none is set). */
  readonly tokensWritable: boolean;
  /** Records a run and its scope; returns the run's id. */
  startRun(run: RunStart): Promise<string>;
  finishRun(runId: string, status: "finished" | "failed", summary: unknown): Promise<void>;
  census(runId: string): Promise<Census>;
  /**
   * The key ids the run's rules skipped rows for (key_unavailable: sealed under a key the ring
   * lacks), with how many rows each; read only when the census counted some.
   */
  missingKeyIds(runId: string): Promise<Record<string, number>>;
  /** Connections a mall or user filter covers, before any run is recorded. */
  countInScope(filter: { mallId: string | null; userId: string | null }): Promise<number>;
  /** Claims the run's most overdue due connection, if any. */
  claim(runId: string): Promise<ClaimedConnection | undefined>;
  /** What the run would still claim. */
  countClaimable(runId: string): Promise<number>;
  /**
   * Stores a refreshed pair in the connection's private row; with `plaintextCopy`
   * (CAFE24_PLAINTEXT_TOKEN_COPY) also the access token and its expiry under providers.cafe24.
   */
  storeTokens(
    settle: Settle & { tokens: Record<string, unknown>; plaintextCopy: boolean },
  ): Promise<Settled<StoreOutcome>>;
  recordFailure(settle: Settle & { failure: FailureRecord }): Promise<Settled<FailureOutcome>>;
  /**
   * Lets go of a claimed connection whose refresh token did not open (set_aside_unopened): nothing
   * is recorded against it, and this run does not claim it again.
   */
  setAsideUnopened(runId: string, id: string): Promise<boolean>;
  /** Lets go of connections the run claimed but sent no request for; returns how many. */
  releaseLeases(runId: string, ids: string[]): Promise<number>;
}

const interval = (ms: number) => `${Math.round(ms)} milliseconds`;

export interface ClaimRow {
  auth_settings_id: string;
  mall_id: string;
  refresh_token: string;
  consecutive_failures: number;
  answer_possibly_lost: boolean;
  /** bigint, as text. */
  token_version: string;
}

interface SettleRow<T> {
  outcome: T;
  next_auth_settings_id: string | null;
  next_mall_id: string;
  next_refresh_token: string;
  next_consecutive_failures: number;
  next_answer_possibly_lost: boolean;
  next_token_version: string;
}

/** A claimed row with its refresh token opened. */
export async function openClaim(seal: TokenSeal, row: ClaimRow): Promise<ClaimedConnection> {
  const opened = await seal.open(
    connectionPlace(row.auth_settings_id),
    "refresh_token",
    row.refresh_token,
  );
  return {
    id: row.auth_settings_id,
    mallId: row.mall_id,
    refreshToken: opened.ok ? opened.value : "",
    keyProblem: opened.ok ? null : opened.problem,
    tokenVersion: String(row.token_version),
    consecutiveFailures: row.consecutive_failures,
    answerPossiblyLost: row.answer_possibly_lost,
  };
}

async function settled<T>(seal: TokenSeal, row: SettleRow<T>): Promise<Settled<T>> {
  return {
    outcome: row.outcome,
    next: row.next_auth_settings_id === null ? undefined : await openClaim(seal, {
      auth_settings_id: row.next_auth_settings_id,
      mall_id: row.next_mall_id,
      refresh_token: row.next_refresh_token,
      consecutive_failures: row.next_consecutive_failures,
      answer_possibly_lost: row.next_answer_possibly_lost,
      token_version: row.next_token_version,
    }),
  };
}

/** The census rows as counts; a verdict this code does not know means SQL and code disagree. */
export function censusFromRows(rows: { verdict: string; connections: number | string }[]): Census {
  const census = Object.fromEntries(
    [["scanned", 0], ...CENSUS_VERDICTS.map((verdict) => [verdict, 0])],
  ) as Census;
  for (const row of rows) {
    if (!(CENSUS_VERDICTS as readonly string[]).includes(row.verdict)) {
      throw new Error(`census: unknown verdict ${JSON.stringify(row.verdict)}`);
    }
    const count = Number(row.connections);
    census[row.verdict as CensusVerdict] += count;
    census.scanned += count;
  }
  return census;
}

export function createRefreshStore(sql: postgres.Sql, seal: TokenSeal): RefreshStore {
  return {
    tokensWritable: seal.writable,

    async startRun({ trigger, mode, scope, leaseMs }) {
      const [row] = await sql<{ id: string }[]>`
        select cafe24_private.start_refresh_run(
          p_trigger => ${trigger},
          p_mode => ${mode},
          p_refresh_margin => ${interval(scope.refreshMarginMs)}::interval,
          p_lease_duration => ${interval(leaseMs)}::interval,
          p_force => ${scope.force},
          p_mall_id => ${scope.mallId}::text,
          p_user_id => ${scope.userId}::uuid,
          p_policy => ${scope.policy},
          p_keep_alive_window => ${interval(scope.keepAliveWindowMs)}::interval,
          p_token_request_window => ${interval(scope.tokenRequestWindowMs)}::interval,
          p_tick_id => ${scope.tickId}::bigint,
          p_min_token_age => ${
        scope.minTokenAgeMs === null ? null : interval(scope.minTokenAgeMs)
      }::interval,
          p_token_key_ids => ${seal.keyIds as string[]}::text[]) as id`;
      return row!.id;
    },

    async finishRun(runId, status, summary) {
      await sql`
        select cafe24_private.finish_refresh_run(${runId}, ${status}, ${
        sql.json(summary as postgres.JSONValue)
      })`;
    },

    async census(runId) {
      return censusFromRows(
        await sql<{ verdict: string; connections: string }[]>`
          select verdict, connections from cafe24_private.census(${runId})`,
      );
    },

    async missingKeyIds(runId) {
      const rows = await sql<{ kid: string; connections: string }[]>`
        select kid, connections from cafe24_private.missing_key_ids(${runId})`;
      return Object.fromEntries(rows.map((row) => [row.kid, Number(row.connections)]));
    },

    async countInScope({ mallId, userId }) {
      const [row] = await sql<{ count: string }[]>`
        select cafe24_private.count_in_scope(${mallId}::text, ${userId}::uuid) as count`;
      return Number(row!.count);
    },

    async claim(runId) {
      const [row] = await sql<ClaimRow[]>`
        select * from cafe24_private.claim_due_pairs(${runId}, 1)`;
      return row === undefined ? undefined : await openClaim(seal, row);
    },

    async countClaimable(runId) {
      const [row] = await sql<{ count: string }[]>`
        select cafe24_private.count_claimable(${runId}) as count`;
      return Number(row!.count);
    },

    async storeTokens({ runId, connection, tokens, claimNext, plaintextCopy }) {
      const sealed = await sealPair(seal, connectionPlace(connection.id), tokens);
      // The copy for apps that read providers.cafe24 is the one plaintext the SQL ever gets.
      if (plaintextCopy) sealed.plaintext_access_token = tokens.access_token;
      const [row] = await sql<SettleRow<StoreOutcome>[]>`
        select * from cafe24_private.store_refreshed_tokens(
          p_run_id => ${runId}::uuid,
          p_auth_settings_id => ${connection.id}::uuid,
          p_token_version => ${connection.tokenVersion}::bigint,
          p_tokens => ${sql.json(sealed as postgres.JSONValue)}::jsonb,
          p_claim_next => ${claimNext}::boolean,
          p_plaintext_copy => ${plaintextCopy}::boolean)`;
      return await settled(seal, row!);
    },

    async recordFailure({ runId, connection, failure, claimNext }) {
      const [row] = await sql<SettleRow<FailureOutcome>[]>`
        select * from cafe24_private.record_refresh_failure(
          ${runId}::uuid, ${connection.id}::uuid, ${connection.tokenVersion}::bigint,
          row(${failure.code}::text, ${failure.message}::text, ${failure.permanent}::boolean,
            ${failure.outcomeUnknown}::boolean,
            ${failure.nextAttemptAt}::timestamptz)::cafe24_private.refresh_failure,
          ${claimNext})`;
      return await settled(seal, row!);
    },

    async setAsideUnopened(runId, id) {
      const [row] = await sql<{ released: boolean }[]>`
        select cafe24_private.set_aside_unopened(${runId}::uuid, ${id}::uuid) as released`;
      return row?.released === true;
    },

    async releaseLeases(runId, ids) {
      if (ids.length === 0) return 0;
      const [row] = await sql<{ released: number }[]>`
        select cafe24_private.release_leases(${runId}, ${ids}::uuid[]) as released`;
      return row!.released;
    },
  };
}
