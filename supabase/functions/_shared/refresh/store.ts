import type postgres from "postgres";

/**
 * The refresher's view of the database: each method is one call to a cafe24_private SQL
 * function (see supabase/migrations), where the state transitions are race-free by construction.
 */

export type RunTrigger = "cron" | "manual" | "user" | "cli";
export type RunMode = "sync" | "async";

export interface RunScope {
  asOf: Date;
  refreshMarginMs: number;
  force: boolean;
  mallId: string | null;
  userId: string | null;
}

export interface Census {
  scanned: number;
  no_cafe24: number;
  missing_keys: number;
  malformed: number;
  reconnect_required: number;
  leased: number;
  backing_off: number;
  not_due: number;
  due: number;
}

export interface ClaimedConnection {
  id: string;
  mallId: string;
  refreshToken: string;
  consecutiveFailures: number;
  dueReason: string;
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

/** Claim the next connection in the same round trip as settling the current one. */
export interface NextClaim {
  leaseId: string;
  leaseMs: number;
  scope: RunScope;
}

export interface Settled<T> {
  outcome: T;
  /** The next connection, when a NextClaim was given and one was due. */
  next: ClaimedConnection | undefined;
}

export interface RefreshStore {
  startRun(trigger: RunTrigger, mode: RunMode, filters: Record<string, unknown>): Promise<string>;
  finishRun(runId: string, status: "finished" | "failed", summary: unknown): Promise<void>;
  census(scope: RunScope): Promise<Census>;
  claim(
    leaseId: string,
    limit: number,
    leaseMs: number,
    scope: RunScope,
  ): Promise<ClaimedConnection[]>;
  countClaimable(scope: RunScope): Promise<number>;
  storeTokens(
    id: string,
    usedRefreshToken: string,
    tokens: Record<string, unknown>,
    next?: NextClaim | null,
  ): Promise<Settled<StoreOutcome>>;
  recordFailure(
    id: string,
    leaseId: string,
    usedRefreshToken: string,
    failure: FailureRecord,
    next?: NextClaim | null,
  ): Promise<Settled<FailureOutcome>>;
  releaseLeases(leaseId: string, ids: string[]): Promise<number>;
}

const interval = (ms: number) => `${Math.round(ms)} milliseconds`;

interface SettleRow<T> {
  outcome: T;
  next_auth_settings_id: string | null;
  next_mall_id: string;
  next_refresh_token: string;
  next_consecutive_failures: number;
  next_due_reason: string;
  next_answer_possibly_lost: boolean;
}

function settled<T>(row: SettleRow<T>): Settled<T> {
  return {
    outcome: row.outcome,
    next: row.next_auth_settings_id === null ? undefined : {
      id: row.next_auth_settings_id,
      mallId: row.next_mall_id,
      refreshToken: row.next_refresh_token,
      consecutiveFailures: row.next_consecutive_failures,
      dueReason: row.next_due_reason,
      answerPossiblyLost: row.next_answer_possibly_lost,
    },
  };
}

export function createRefreshStore(sql: postgres.Sql): RefreshStore {
  return {
    async startRun(trigger, mode, filters) {
      const [row] = await sql<{ id: string }[]>`
        select cafe24_private.start_refresh_run(${trigger}, ${mode}, ${
        sql.json(filters as postgres.JSONValue)
      }) as id`;
      return row!.id;
    },

    async finishRun(runId, status, summary) {
      await sql`
        select cafe24_private.finish_refresh_run(${runId}, ${status}, ${
        sql.json(summary as postgres.JSONValue)
      })`;
    },

    async census(scope) {
      const [row] = await sql<Record<keyof Census, string>[]>`
        select * from cafe24_private.census(
          ${scope.asOf}, ${interval(scope.refreshMarginMs)}::interval, ${scope.force},
          ${scope.mallId}, ${scope.userId}::uuid)`;
      return Object.fromEntries(
        Object.entries(row!).map(([key, value]) => [key, Number(value)]),
      ) as unknown as Census;
    },

    async claim(leaseId, limit, leaseMs, scope) {
      const rows = await sql<{
        auth_settings_id: string;
        mall_id: string;
        refresh_token: string;
        consecutive_failures: number;
        due_reason: string;
        answer_possibly_lost: boolean;
      }[]>`
        select * from cafe24_private.claim_due_connections(
          ${leaseId}, ${limit}, ${interval(leaseMs)}::interval,
          ${interval(scope.refreshMarginMs)}::interval, ${scope.asOf}, ${scope.force},
          ${scope.mallId}, ${scope.userId}::uuid)`;
      return rows.map((row) => ({
        id: row.auth_settings_id,
        mallId: row.mall_id,
        refreshToken: row.refresh_token,
        consecutiveFailures: row.consecutive_failures,
        dueReason: row.due_reason,
        answerPossiblyLost: row.answer_possibly_lost,
      }));
    },

    async countClaimable(scope) {
      const [row] = await sql<{ count: string }[]>`
        select cafe24_private.count_claimable(
          ${interval(scope.refreshMarginMs)}::interval, ${scope.asOf}, ${scope.force},
          ${scope.mallId}, ${scope.userId}::uuid) as count`;
      return Number(row!.count);
    },

    async storeTokens(id, usedRefreshToken, tokens, next = null) {
      const [row] = await sql<SettleRow<StoreOutcome>[]>`
        select * from cafe24_private.store_refreshed_tokens_and_claim(
          ${id}, ${usedRefreshToken}, ${sql.json(tokens as postgres.JSONValue)},
          ${next !== null}, ${next?.leaseId ?? null}::uuid,
          ${interval(next?.leaseMs ?? 0)}::interval,
          ${interval(next?.scope.refreshMarginMs ?? 0)}::interval,
          ${next?.scope.asOf ?? null}::timestamptz, ${next?.scope.force ?? false},
          ${next?.scope.mallId ?? null}, ${next?.scope.userId ?? null}::uuid)`;
      return settled(row!);
    },

    async recordFailure(id, leaseId, usedRefreshToken, failure, next = null) {
      const [row] = await sql<SettleRow<FailureOutcome>[]>`
        select * from cafe24_private.record_refresh_failure_and_claim(
          ${id}, ${leaseId}, ${usedRefreshToken}, ${failure.code}, ${failure.message},
          ${failure.permanent}, ${failure.outcomeUnknown}, ${failure.nextAttemptAt},
          ${next !== null}, ${interval(next?.leaseMs ?? 0)}::interval,
          ${interval(next?.scope.refreshMarginMs ?? 0)}::interval,
          ${next?.scope.asOf ?? null}::timestamptz, ${next?.scope.force ?? false},
          ${next?.scope.mallId ?? null}, ${next?.scope.userId ?? null}::uuid)`;
      return settled(row!);
    },

    async releaseLeases(leaseId, ids) {
      if (ids.length === 0) return 0;
      const [row] = await sql<{ released: number }[]>`
        select cafe24_private.release_leases(${leaseId}, ${ids}::uuid[]) as released`;
      return row!.released;
    },
  };
}
