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
  ): Promise<StoreOutcome>;
  recordFailure(
    id: string,
    leaseId: string,
    usedRefreshToken: string,
    failure: FailureRecord,
  ): Promise<FailureOutcome>;
  releaseLeases(leaseId: string, ids: string[]): Promise<number>;
}

const interval = (ms: number) => `${Math.round(ms)} milliseconds`;

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

    async storeTokens(id, usedRefreshToken, tokens) {
      const [row] = await sql<{ outcome: StoreOutcome }[]>`
        select cafe24_private.store_refreshed_tokens(
          ${id}, ${usedRefreshToken}, ${sql.json(tokens as postgres.JSONValue)}) as outcome`;
      return row!.outcome;
    },

    async recordFailure(id, leaseId, usedRefreshToken, failure) {
      const [row] = await sql<{ outcome: FailureOutcome }[]>`
        select cafe24_private.record_refresh_failure(
          ${id}, ${leaseId}, ${usedRefreshToken}, ${failure.code}, ${failure.message},
          ${failure.permanent}, ${failure.outcomeUnknown}, ${failure.nextAttemptAt}) as outcome`;
      return row!.outcome;
    },

    async releaseLeases(leaseId, ids) {
      if (ids.length === 0) return 0;
      const [row] = await sql<{ released: number }[]>`
        select cafe24_private.release_leases(${leaseId}, ${ids}::uuid[]) as released`;
      return row!.released;
    },
  };
}
