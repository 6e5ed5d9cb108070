import type { EventWebhookSettings } from "../platform/config.ts";
import { logEvent } from "../platform/log.ts";
import { deliveryRetryDelayMs, isAccepted } from "./policy.ts";
import { EVENT_HEADERS } from "./headers.ts";
import { signBody } from "../platform/signature.ts";
import type { ClaimedEvent, EventStore } from "./store.ts";

/**
 * One pass over the outbox: claim what may be sent (each connection's oldest undelivered event,
 * when due), POST each one signed to the webhook, record the outcome, and go on until nothing is
 * due, the batch is full or the time is up. Events of different connections are sent side by
 * side; a connection's next event is claimed only after its previous one was delivered.
 */

/** Events per invocation; the next cron tick takes the rest. */
export const MAX_EVENTS_PER_PASS = 100;
/** Requests in flight at once (one per connection). */
export const DELIVERY_CONCURRENCY = 4;
/** Stop claiming after this long; well inside a hosted invocation's wall clock. */
export const PASS_BUDGET_MS = 30_000;
/** A receiver that takes longer has failed this attempt. */
export const DELIVERY_TIMEOUT_MS = 10_000;
/** The lease outlives the request, so no second pass sends the event while it may still land. */
export const DELIVERY_LEASE_MS = DELIVERY_TIMEOUT_MS + 60_000;

export interface DeliveryDeps {
  store: EventStore;
  webhook: EventWebhookSettings;
  fetch?: typeof fetch;
  now?: () => number;
  random?: () => number;
}

export interface DeliverySummary {
  attempted: number;
  delivered: number;
  failed: number;
  duration_ms: number;
}

export async function deliverEvents(deps: DeliveryDeps): Promise<DeliverySummary> {
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const leaseId = crypto.randomUUID();
  const summary: DeliverySummary = { attempted: 0, delivered: 0, failed: 0, duration_ms: 0 };

  while (summary.attempted < MAX_EVENTS_PER_PASS && now() - startedAt < PASS_BUDGET_MS) {
    const limit = Math.min(DELIVERY_CONCURRENCY, MAX_EVENTS_PER_PASS - summary.attempted);
    const claimed = await deps.store.claim(leaseId, limit, DELIVERY_LEASE_MS);
    if (claimed.length === 0) break;
    summary.attempted += claimed.length;
    const delivered = await Promise.all(claimed.map((item) => deliverOne(deps, leaseId, item)));
    for (const ok of delivered) {
      if (ok) summary.delivered++;
      else summary.failed++;
    }
  }
  summary.duration_ms = now() - startedAt;
  if (summary.attempted > 0) logEvent("info", "cafe24_events_delivered", { ...summary });
  return summary;
}

/** Sends one event and records the outcome; true when the receiver accepted it. */
async function deliverOne(deps: DeliveryDeps, leaseId: string, item: ClaimedEvent) {
  const now = deps.now ?? Date.now;
  const { event, attempts } = item;
  const body = JSON.stringify(event);
  const timestamp = Math.floor(now() / 1000);
  let status: number | null = null;
  let error: string | null = null;
  try {
    const response = await (deps.fetch ?? fetch)(deps.webhook.url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "User-Agent": "cafe24-connector-events/1",
        [EVENT_HEADERS.id]: String(event.id),
        [EVENT_HEADERS.timestamp]: String(timestamp),
        [EVENT_HEADERS.signature]: signBody(deps.webhook.secret, timestamp, body),
      },
      body,
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
      redirect: "manual",
    });
    status = response.status;
    await response.body?.cancel().catch(() => {});
    if (!isAccepted(status)) {
      error = status >= 300 && status < 400
        ? `HTTP ${status} (redirects are not followed)`
        : `HTTP ${status}`;
    }
  } catch (cause) {
    error = cause instanceof DOMException && cause.name === "TimeoutError"
      ? `no answer within ${DELIVERY_TIMEOUT_MS} ms`
      : "the webhook could not be reached";
  }

  const delivered = error === null;
  const retryInMs = deliveryRetryDelayMs(attempts, deps.random ?? Math.random);
  let outcome;
  try {
    outcome = await deps.store.settle(event.id, leaseId, {
      delivered,
      status,
      error,
      retryAt: new Date(now() + retryInMs),
    });
  } catch {
    // Not recorded: the lease runs out and a later pass sends the event again (at least once).
    outcome = "unrecorded";
  }
  if (!delivered) {
    // Never the URL: it is the operator's and may carry a credential of its own.
    logEvent("warn", "cafe24_event_delivery_failed", {
      event_id: event.id,
      auth_settings_id: event.auth_settings_id,
      attempts,
      error,
      outcome,
      retry_in_ms: retryInMs,
    });
  }
  return delivered;
}
