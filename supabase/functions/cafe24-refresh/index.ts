/**
 * cafe24-refresh: refreshes every due Cafe24 connection (or one mall's, with `mall_id`).
 * Called by pg_cron through pg_net with a signed call (always answered 202), by an operator with
 * `x-cron-secret`, and by signed-in users of the app with their own access token ("refresh now"),
 * who only reach their own connections. verify_jwt is off in config.toml (the cron secret is not
 * a JWT), so this code is the only gate and fails closed.
 */
import { configWarnings, refreshSettings, tokenKeyWarnings } from "../_shared/platform/config.ts";
import { continueAfterResponse } from "../_shared/platform/background.ts";
import { database } from "../_shared/platform/db.ts";
import { RequestError } from "../_shared/platform/errors.ts";
import { reportFailure } from "../_shared/platform/failure.ts";
import { enter } from "../_shared/platform/handler.ts";
import {
  errorResponse,
  jsonResponse,
  rateLimitedResponse,
  requestErrorResponse,
  requestParameters,
} from "../_shared/platform/http.ts";
import { parseRefreshRequest } from "../_shared/refresh/request.ts";
import {
  beginRefreshRun,
  type RunRequest,
  summaryIfNothingInScope,
} from "../_shared/refresh/run.ts";
import { createRefreshStore } from "../_shared/refresh/store.ts";
import { runBackgroundPass } from "../_shared/refresh/background_pass.ts";
import { runVerificationsAfterRefresh } from "../_shared/connect/app_uninstalled.ts";
import { createUserRefreshThrottle } from "../_shared/refresh/throttle.ts";

const FUNCTION = "cafe24-refresh";

async function handle(request: Request): Promise<Response> {
  const entered = await enter(request, FUNCTION, {
    callers: { GET: ["secret", "user"], POST: ["secret", "user"] },
  });
  if (entered instanceof Response) return entered;
  const { config, caller, headers: cors, ignored } = entered;
  const configured = refreshSettings(config);

  let options;
  try {
    options = parseRefreshRequest(request, await requestParameters(request), caller.kind);
  } catch (error) {
    if (error instanceof RequestError) return requestErrorResponse(error, cors);
    throw error;
  }
  // A scheduled (signed) call is answered 202 whatever it prefers: a copy of one read from
  // pg_net's queue never gets a run's summary back.
  if (caller.kind === "secret" && caller.signed) options = { ...options, respondAsync: true };

  // The schedule's cap (max_connections) applies within the function's own.
  const settings = options.maxConnections === null ? configured : {
    ...configured,
    maxConnectionsPerRun: Math.min(configured.maxConnectionsPerRun, options.maxConnections),
  };

  const sql = database(config.SUPABASE_DB_URL, settings.poolSize);
  const store = createRefreshStore(sql, settings.tokenSeal);
  const runRequest: RunRequest = {
    trigger: options.trigger,
    mode: options.respondAsync ? "async" : "sync",
    force: options.force,
    mallId: options.mallId,
    userId: caller.kind === "user" ? caller.userId : null,
    tickId: options.tickId,
    warnings: [...configWarnings(config, ignored), ...tokenKeyWarnings(config, ignored)],
  };
  let run;
  try {
    if (caller.kind === "user") {
      const start = await createUserRefreshThrottle(sql).tryStart(
        caller.userId,
        config.CAFE24_USER_REFRESH_INTERVAL_S,
      );
      if (!start.allowed) return rateLimitedResponse(start.retryAfterSeconds, cors);
      const nothing = await summaryIfNothingInScope({ store }, runRequest);
      if (nothing !== null) return jsonResponse(nothing, 200, cors);
    }
    run = await beginRefreshRun({ store, settings }, runRequest);
  } catch (error) {
    reportFailure("cafe24_refresh_run_not_started", error);
    return errorResponse("REFRESH_RUN_FAILED", {}, cors);
  }

  // A scheduled invocation ends with the background pass (background_pass.ts).
  const sweep = (runId: string) =>
    options.trigger === "cron" ? runBackgroundPass(sql, settings, runId) : Promise.resolve();

  // App notices that found a mall's access token dead wait for its next refresh: verified now,
  // with the new access token, when this run refreshed anything.
  const verifyPending = (refreshed: number) =>
    refreshed === 0
      ? Promise.resolve()
      : runVerificationsAfterRefresh(sql, settings, options.mallId);

  if (options.respondAsync) {
    // The run goes on after the 202; on Supabase, waitUntil keeps the worker alive for it.
    continueAfterResponse(
      run.execute().then((summary) => verifyPending(summary.refreshed), () => {})
        .then(() => sweep(run.runId)),
    );
    return jsonResponse({ run_id: run.runId }, 202, cors);
  }
  try {
    const summary = await run.execute();
    await verifyPending(summary.refreshed);
    await sweep(run.runId);
    return jsonResponse(summary, 200, cors);
  } catch {
    return errorResponse("REFRESH_RUN_FAILED", { run_id: run.runId }, cors);
  }
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
