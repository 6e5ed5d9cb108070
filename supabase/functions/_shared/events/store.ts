import type postgres from "postgres";

/**
 * The outbox as cafe24-events sees it: each method is one call to a cafe24_private SQL function
 * (supabase/schemas/70_events.sql).
 */

/** One event as the webhook receives it. Ids and codes only: never a token. */
export interface ConnectionEvent {
  id: number;
  type: "connected" | "recovered" | "reconnect_required" | "taken_over" | "disconnected";
  auth_settings_id: string;
  user_id: string | null;
  mall_id: string | null;
  code: string | null;
  occurred_at: string;
}

export interface ClaimedEvent {
  event: ConnectionEvent;
  /** Attempts so far, this one included. */
  attempts: number;
}

export type SettleOutcome = "delivered" | "retry_scheduled" | "lease_lost";

export interface EventStore {
  /** Leases up to `limit` events that may be sent now (each connection's oldest, when due). */
  claim(leaseId: string, limit: number, leaseMs: number): Promise<ClaimedEvent[]>;
  settle(
    eventId: number,
    leaseId: string,
    outcome: { delivered: boolean; status: number | null; error: string | null; retryAt: Date },
  ): Promise<SettleOutcome>;
  /** Moves every due undelivered event to `until`; returns how many. */
  defer(until: Date): Promise<number>;
}

export function createEventStore(sql: postgres.Sql): EventStore {
  return {
    async claim(leaseId, limit, leaseMs) {
      const rows = await sql<{
        event_id: string;
        attempts: number;
        auth_settings_id: string;
        user_id: string | null;
        mall_id: string | null;
        type: ConnectionEvent["type"];
        code: string | null;
        occurred_at: Date;
      }[]>`
        select * from cafe24_private.claim_event_deliveries(
          ${leaseId}::uuid, ${limit}, ${`${Math.round(leaseMs)} milliseconds`}::interval)`;
      return rows.map((row) => ({
        attempts: row.attempts,
        event: {
          id: Number(row.event_id),
          type: row.type,
          auth_settings_id: row.auth_settings_id,
          user_id: row.user_id,
          mall_id: row.mall_id,
          code: row.code,
          occurred_at: row.occurred_at.toISOString(),
        },
      }));
    },

    async settle(eventId, leaseId, outcome) {
      const [row] = await sql<{ outcome: SettleOutcome }[]>`
        select cafe24_private.settle_event_delivery(
          ${eventId}, ${leaseId}::uuid, ${outcome.delivered}, ${outcome.status},
          ${outcome.error}, ${outcome.retryAt}) as outcome`;
      return row!.outcome;
    },

    async defer(until) {
      const [row] = await sql<{ deferred: number }[]>`
        select cafe24_private.defer_event_deliveries(${until}) as deferred`;
      return row!.deferred;
    },
  };
}
