/**
 * The schedule's record of its ticks (`cafe24_private.refresh_ticks`), read the same way by the
 * tests that check the fan-out and by the scale benchmark that reports it.
 */
import type postgres from "postgres";

export interface RefreshTick {
  id: string;
  ticked_at: Date;
  policy: string;
  due: number;
  even_share: number | null;
  early: number;
  requested: number;
  invocations: number;
  per_invocation: number | null;
  bound_hit: boolean;
  outcome: string;
  reason: string | null;
  request_ids: string[] | null;
  runs_started: number;
}

/** The ticks `where` selects (a postgres.js fragment, e.g. sql`where id = ${id}`), oldest first. */
export function readRefreshTicks(
  sql: postgres.Sql,
  where: postgres.PendingQuery<postgres.Row[]>,
): Promise<RefreshTick[]> {
  return sql<RefreshTick[]>`
    select id::text, ticked_at, policy, due::int, even_share::int, early::int, requested::int,
      invocations, per_invocation, bound_hit, outcome, reason, request_ids::text[], runs_started
    from cafe24_private.refresh_ticks ${where}
    order by id`;
}
