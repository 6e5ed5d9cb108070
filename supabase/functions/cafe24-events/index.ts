/**
 * cafe24-events: sends the connection events outbox to CAFE24_EVENTS_WEBHOOK_URL, signed.
 *   POST /functions/v1/cafe24-events   x-cron-secret: <CRON_SECRET> (or Authorization: Bearer)
 * Woken every minute by the pg_cron job `cafe24-events` (only when an event is due) with a signed
 * call, always answered 202 `{"started":true}` (the pass runs after the answer), as is
 * `Prefer: respond-async`; otherwise 200 with {attempted, delivered, failed, duration_ms}.
 * Without a webhook URL the due events are put off for an hour and the answer is
 * {"webhook":"not_configured","deferred":N} (to a signed call: 202 `{"started":true}`).
 * verify_jwt is off in config.toml (the cron secret is not a JWT): this code is the only gate.
 */
import { deliverEvents } from "../_shared/events/deliver.ts";
import { createEventStore } from "../_shared/events/store.ts";
import { continueAfterResponse } from "../_shared/platform/background.ts";
import { eventWebhookSettings } from "../_shared/platform/config.ts";
import { database } from "../_shared/platform/db.ts";
import { failureCode, reportFailure } from "../_shared/platform/failure.ts";
import { enter } from "../_shared/platform/handler.ts";
import {
  configErrorResponse,
  errorResponse,
  jsonResponse,
  prefersRespondAsync,
} from "../_shared/platform/http.ts";

const FUNCTION = "cafe24-events";

/** How long due events wait when there is no webhook to send them to. */
const UNCONFIGURED_DEFERRAL_MS = 60 * 60_000;

async function handle(request: Request): Promise<Response> {
  // The scheduler's credential, as cafe24-refresh checks it; a user has no business here.
  const entered = await enter(request, FUNCTION, { callers: { POST: ["secret"] } });
  if (entered instanceof Response) return entered;
  const { config, headers: cors } = entered;
  // A scheduled (signed) call is answered 202 whatever it prefers, so a copy of one read from
  // pg_net's queue learns nothing of the pass.
  const signed = entered.caller.kind === "secret" && entered.caller.signed === true;
  const webhook = eventWebhookSettings(config);
  if (webhook !== null && "missing" in webhook) {
    return configErrorResponse(FUNCTION, "CONFIG_MISSING", webhook.missing, cors);
  }
  const store = createEventStore(database(config.SUPABASE_DB_URL));

  if (webhook === null) {
    try {
      const deferred = await store.defer(new Date(Date.now() + UNCONFIGURED_DEFERRAL_MS));
      if (signed) return jsonResponse({ started: true }, 202, cors);
      return jsonResponse({ webhook: "not_configured", deferred }, 200, cors);
    } catch (error) {
      const failure = reportFailure("cafe24_events_defer_failed", error, {
        sqlFunction: "cafe24_private.defer_event_deliveries",
      });
      return errorResponse(failure, {}, cors);
    }
  }

  const pass = deliverEvents({ store, webhook }).catch((error) => {
    reportFailure("cafe24_events_pass_failed", error);
    throw error;
  });
  if (signed || prefersRespondAsync(request)) {
    continueAfterResponse(pass);
    return jsonResponse({ started: true }, 202, cors);
  }
  try {
    return jsonResponse(await pass, 200, cors);
  } catch (error) {
    // Reported where the pass failed.
    return errorResponse(failureCode(error), {}, cors);
  }
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
