import {
  CONFIG_WARNINGS,
  type ConfigWarningCode,
  REFRESH_FAILURES,
  type RefreshFailureCode,
} from "../platform/errors.ts";
import type { RefreshSettings } from "../platform/config.ts";
import {
  processTokenResponse,
  sendRefreshTokenRequest,
  storedTokenFields,
  TokenRequestError,
  type TokenSet,
} from "../cafe24/token.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { decideAfterFailure } from "./policy.ts";
import type {
  ClaimedConnection,
  NextClaim,
  RefreshStore,
  RunMode,
  RunScope,
  RunTrigger,
} from "./store.ts";
import { logEvent } from "../platform/log.ts";

/**
 * One refresh run: count what is in scope, then let `concurrency` workers each claim one due
 * connection at a time, refresh it and write the outcome at once, until nothing is due, the time
 * budget is spent or the per-run cap is reached. The run never holds more leases than it has
 * requests in flight, so a run that stops early leaves nothing locked.
 */

export const MAX_REPORTED_FAILURES = 50;

export const SKIP_REASONS = [
  "no_cafe24",
  "missing_keys",
  "malformed",
  "not_due",
  "leased",
  "backing_off",
  "reconnect_required",
  "out_of_time",
  "run_limit",
  "already_rotated",
  "superseded",
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export interface RunRequest {
  trigger: RunTrigger;
  mode: RunMode;
  force: boolean;
  mallId: string | null;
  userId: string | null;
  /** Settings that work but should be changed (configWarnings); every summary carries them. */
  warnings?: ConfigWarningCode[];
}

/** Cafe24 issues access tokens for 2 hours. */
export const ACCESS_TOKEN_LIFETIME_MS = 2 * 60 * 60_000;

/**
 * `force` from a signed-in user ("refresh now") refreshes only tokens at least this old, counted
 * from when Cafe24 issued them (by a refresh or by connecting). A token that is minutes old has
 * nearly two hours to live: rotating it again gains nothing, and each rotation is a moment in
 * which a lost answer can cost the mall its connection. Five minutes still lets a user who saw an
 * error retry soon. Cron and admin callers' `force` is not limited.
 */
export const USER_FORCE_MIN_TOKEN_AGE_MS = 5 * 60_000;

/**
 * What a run covers. A user's `force` becomes a wider margin instead: a 2-hour token issued at
 * least USER_FORCE_MIN_TOKEN_AGE_MS ago expires within ACCESS_TOKEN_LIFETIME_MS minus that, so it
 * is due under that margin, and a younger one is not (counted as `not_due`). Tokens whose expiry
 * is unknown are due either way.
 */
export function runScope(request: RunRequest, refreshMarginMs: number, asOf: Date): RunScope {
  const userForce = request.force && request.trigger === "user";
  return {
    asOf,
    refreshMarginMs: userForce
      ? Math.max(refreshMarginMs, ACCESS_TOKEN_LIFETIME_MS - USER_FORCE_MIN_TOKEN_AGE_MS)
      : refreshMarginMs,
    force: request.force && !userForce,
    mallId: request.mallId,
    userId: request.userId,
  };
}

/** The summary's keys in the order the function answers them (the contract with callers). */
export const RUN_SUMMARY_KEYS = [
  "run_id",
  "scanned",
  "eligible",
  "due",
  "refreshed",
  "skipped",
  "failed",
  "failures",
  "skipped_reasons",
  "remaining",
  "duration_ms",
  "warnings",
] as const satisfies readonly (keyof RunSummary)[];

/**
 * What one run saw and did. `scanned = refreshed + failed + skipped` always.
 *
 * - `scanned`: connections in scope (every auth_settings row, or those of the mall or user asked).
 * - `eligible`: scanned rows whose providers.cafe24 has a mall_id and a refresh_token, the
 *   meaning the original endpoint gave it, whether or not they need a refresh now.
 * - `due`: eligible connections that needed a refresh now (or every refreshable one with
 *   force); each ends refreshed, failed, skipped as already_rotated/superseded/leased, or as
 *   `remaining`.
 */
export interface RunSummary {
  /** Null only when nothing was in a user's scope, so no run was recorded. */
  run_id: string | null;
  scanned: number;
  eligible: number;
  due: number;
  refreshed: number;
  skipped: number;
  failed: number;
  failures: { id: string; reason: string }[];
  skipped_reasons: Record<SkipReason, number>;
  remaining: number;
  duration_ms: number;
  warnings: ConfigWarningCode[];
}

export interface RefreshDeps {
  store: RefreshStore;
  settings: RefreshSettings;
  fetch?: typeof fetch;
  now?: () => number;
  random?: () => number;
  /** Called after each connection is settled (progress bars). */
  onProgress?: (progress: { settled: number; due: number }) => void;
}

/** How often a database call is tried before the run gives up on it (see withDatabaseRetries). */
const DATABASE_ATTEMPTS = 5;
const DATABASE_RETRY_BASE_MS = 200;

/**
 * Records the run and returns its id with the work still to do, so an async caller can answer
 * 202 with the id before the work starts.
 */
export async function beginRefreshRun(
  deps: RefreshDeps,
  request: RunRequest,
): Promise<{ runId: string; execute: () => Promise<RunSummary> }> {
  const filters = {
    force: request.force,
    ...(request.mallId === null ? {} : { mall_id: request.mallId }),
    ...(request.userId === null ? {} : { user_id: request.userId }),
  };
  const runId = await deps.store.startRun(request.trigger, request.mode, filters);
  return { runId, execute: () => executeRun(deps, request, runId) };
}

/**
 * The all-zero summary when nothing is in the request's scope (a user without a connection, or
 * naming a mall that is not theirs), read from the census before any run is recorded; null when
 * there is something to run over. Keeps "refresh now" from users without a mall out of the run
 * history.
 */
export async function summaryIfNothingInScope(
  deps: Pick<RefreshDeps, "store" | "settings" | "now">,
  request: RunRequest,
): Promise<RunSummary | null> {
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const census = await withDatabaseRetries(() =>
    deps.store.census(runScope(request, deps.settings.refreshMarginMs, new Date(startedAt)))
  );
  if (census.scanned > 0) return null;
  return {
    run_id: null,
    scanned: 0,
    eligible: 0,
    due: 0,
    refreshed: 0,
    skipped: 0,
    failed: 0,
    failures: [],
    skipped_reasons: Object.fromEntries(SKIP_REASONS.map((reason) => [reason, 0])) as Record<
      SkipReason,
      number
    >,
    remaining: 0,
    duration_ms: Math.round(now() - startedAt),
    warnings: request.warnings ?? [],
  };
}

async function executeRun(
  deps: RefreshDeps,
  request: RunRequest,
  runId: string,
): Promise<RunSummary> {
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const { settings, store } = deps;
  const startedAt = now();
  const scope = runScope(request, settings.refreshMarginMs, new Date(startedAt));
  const warnings = request.warnings ?? [];
  const tally = new RunTally(runId, warnings);
  if (warnings.length > 0) {
    logEvent("warn", "cafe24_refresh_config_warning", {
      run_id: runId,
      warnings,
      messages: warnings.map((code) => CONFIG_WARNINGS[code].message),
    });
  }

  try {
    const census = await withDatabaseRetries(() => store.census(scope));
    let claims = 0;
    let stopped: "out_of_time" | "run_limit" | null = null;
    let claimError: unknown = null;

    // Whether this run may take on one more connection (time budget, per-run cap).
    const mayClaim = (): boolean => {
      if (now() - startedAt >= settings.runBudgetMs) {
        stopped ??= "out_of_time";
        return false;
      }
      if (claims >= settings.maxConnectionsPerRun) {
        stopped ??= "run_limit";
        return false;
      }
      return true;
    };
    const nextClaim: NextClaim = { leaseId: runId, leaseMs: settings.leaseMs, scope };
    const claimAlone = async (): Promise<ClaimedConnection | undefined> => {
      try {
        const [connection] = await withDatabaseRetries(() =>
          store.claim(runId, 1, settings.leaseMs, scope)
        );
        return connection;
      } catch (error) {
        claimError = error;
        return undefined;
      }
    };

    // Each worker claims its first connection alone; after that, settling one connection and
    // claiming the next is a single round trip.
    const worker = async () => {
      if (!mayClaim()) return;
      claims++;
      let connection = await claimAlone();
      let claimRequested = true;
      while (connection !== undefined) {
        claimRequested = claimError === null && mayClaim();
        if (claimRequested) claims++;
        const settled = await refreshConnection(
          deps,
          runId,
          connection,
          tally,
          random,
          now,
          claimRequested ? nextClaim : null,
        );
        deps.onProgress?.({ settled: tally.settled, due: census.due });
        // The combined call could not reach the database: claim on its own (which records a
        // lasting outage as the run's error) so the run neither stops early nor miscounts.
        connection = settled.databaseFailed && claimRequested ? await claimAlone() : settled.next;
      }
      // The last claim found nothing (or failed): it took no connection.
      if (claimRequested) claims--;
    };
    await Promise.all(Array.from({ length: settings.concurrency }, worker));
    if (claimError !== null) throw claimError;

    const remaining = stopped === null
      ? 0
      : await withDatabaseRetries(() => store.countClaimable(scope));
    const summary = tally.summarize(census, remaining, stopped, now() - startedAt);
    await withDatabaseRetries(() => store.finishRun(runId, "finished", summary));
    logEvent("info", "cafe24_refresh_run", {
      run_id: runId,
      trigger: request.trigger,
      mode: request.mode,
      scanned: summary.scanned,
      eligible: summary.eligible,
      due: summary.due,
      refreshed: summary.refreshed,
      failed: summary.failed,
      skipped: summary.skipped,
      remaining: summary.remaining,
      duration_ms: summary.duration_ms,
    });
    return summary;
  } catch (error) {
    logEvent("error", "cafe24_refresh_run_failed", {
      run_id: runId,
      error: error instanceof Error ? error.name : "unknown",
    });
    await store.finishRun(runId, "failed", { refreshed: tally.refreshed, failed: tally.failed })
      .catch(() => {});
    throw error;
  }
}

interface SettleResult {
  next: ClaimedConnection | undefined;
  /** The settle call never reached the database (after retries). */
  databaseFailed: boolean;
}

async function refreshConnection(
  deps: RefreshDeps,
  runId: string,
  connection: ClaimedConnection,
  tally: RunTally,
  random: () => number,
  now: () => number,
  next: NextClaim | null,
): Promise<SettleResult> {
  const { settings, store } = deps;
  let tokens: TokenSet;
  try {
    if (!isValidMallId(connection.mallId)) {
      throw new TokenRequestError("INVALID_MALL_ID", "no request was sent");
    }
    const response = await sendRefreshTokenRequest({
      apiBaseUrl: settings.apiBaseUrl,
      mallId: connection.mallId,
      credentials: { clientId: settings.clientId, clientSecret: settings.clientSecret },
      refreshToken: connection.refreshToken,
      timeoutMs: settings.requestTimeoutMs,
      ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
    });
    tokens = await processTokenResponse(response, now());
  } catch (error) {
    const failure = error instanceof TokenRequestError
      ? error
      : error instanceof RangeError
      ? new TokenRequestError("INVALID_MALL_ID", "the API URL failed its host check")
      : new TokenRequestError("CAFE24_NETWORK_ERROR", "unexpected client error", {
        outcomeUnknown: true,
      });
    return await settleFailure(deps, runId, connection, failure, tally, random, now, next);
  }

  // The old refresh token is dead from this moment: write the new pair before anything else.
  let stored;
  try {
    stored = await withDatabaseRetries(() =>
      store.storeTokens(connection.id, connection.refreshToken, storedTokenFields(tokens), next)
    );
  } catch {
    // The pair is lost. The row still shows a request in flight, so the next claim knows the
    // token may be dead and, if Cafe24 rejects it, reports CAFE24_ANSWER_LOST.
    tally.fail(connection, "STORE_FAILED", "database unavailable");
    logEvent("error", "cafe24_refresh_store_failed", {
      run_id: runId,
      connection_id: connection.id,
      mall_id: connection.mallId,
    });
    return { next: undefined, databaseFailed: true };
  }
  if (stored.outcome === "stored") tally.refreshed++;
  else tally.skip("superseded");
  return { next: stored.next, databaseFailed: false };
}

/**
 * Runs one database call again while the database is briefly unreachable (a restart, a failover,
 * a dropped pooler connection): about 6 s in all, well inside a lease. Every call retried here is
 * safe to repeat: a claim only takes free rows, a store is a compare-and-swap that recognises its
 * own earlier success, and a run's books are written whole.
 */
export async function withDatabaseRetries<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= DATABASE_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, DATABASE_RETRY_BASE_MS * 2 ** attempt));
    }
  }
}

async function settleFailure(
  deps: RefreshDeps,
  runId: string,
  connection: ClaimedConnection,
  failure: TokenRequestError,
  tally: RunTally,
  random: () => number,
  now: () => number,
  next: NextClaim | null,
): Promise<SettleResult> {
  const decision = decideAfterFailure({
    code: failure.code,
    consecutiveFailures: connection.consecutiveFailures,
    retryAfterMs: failure.retryAfterMs,
    answerPossiblyLost: connection.answerPossiblyLost,
  }, random);
  const message = `${REFRESH_FAILURES[decision.code].message} (${failure.message})`;
  let result: SettleResult;
  let outcome;
  try {
    const recorded = await withDatabaseRetries(() =>
      deps.store.recordFailure(connection.id, runId, connection.refreshToken, {
        code: decision.code,
        message,
        permanent: decision.permanent,
        outcomeUnknown: failure.outcomeUnknown,
        nextAttemptAt: decision.retryInMs === null ? null : new Date(now() + decision.retryInMs),
      }, next)
    );
    outcome = recorded.outcome;
    result = { next: recorded.next, databaseFailed: false };
  } catch {
    // Nothing was written; the lease runs out and a later run tries again.
    outcome = "retry_scheduled" as const;
    result = { next: undefined, databaseFailed: true };
  }
  if (outcome === "already_rotated") {
    tally.skip("already_rotated");
    return result;
  }
  const code: RefreshFailureCode = outcome === "lease_lost" ? "LEASE_LOST" : decision.code;
  tally.fail(connection, code, failure.message);
  logEvent("warn", "cafe24_refresh_failed", {
    run_id: runId,
    connection_id: connection.id,
    mall_id: isValidMallId(connection.mallId) ? connection.mallId : "(invalid)",
    code,
    outcome,
    ...(decision.retryInMs === null ? {} : { retry_in_ms: decision.retryInMs }),
  });
  return result;
}

/** Counts outcomes; `summarize` closes the books so that scanned = refreshed + failed + skipped. */
class RunTally {
  refreshed = 0;
  failed = 0;
  readonly failures: { id: string; reason: string }[] = [];
  readonly skips = new Map<SkipReason, number>();

  constructor(readonly runId: string, readonly warnings: ConfigWarningCode[]) {}

  get settled(): number {
    return this.refreshed + this.failed + (this.skips.get("already_rotated") ?? 0) +
      (this.skips.get("superseded") ?? 0);
  }

  skip(reason: SkipReason, count = 1): void {
    this.skips.set(reason, (this.skips.get(reason) ?? 0) + count);
  }

  fail(connection: ClaimedConnection, code: RefreshFailureCode, detail: string): void {
    this.failed++;
    if (this.failures.length < MAX_REPORTED_FAILURES) {
      this.failures.push({
        id: connection.id,
        reason: `${code}: ${REFRESH_FAILURES[code].message} (${detail})`,
      });
    }
  }

  summarize(
    census:
      & {
        scanned: number;
        due: number;
      }
      & Record<
        | "no_cafe24"
        | "missing_keys"
        | "malformed"
        | "reconnect_required"
        | "leased"
        | "backing_off"
        | "not_due",
        number
      >,
    remaining: number,
    stopped: "out_of_time" | "run_limit" | null,
    durationMs: number,
  ): RunSummary {
    // Due rows this run neither settled nor left behind were taken by a concurrent run.
    const unaccounted = census.due - this.settled - remaining;
    const takenElsewhere = Math.max(0, unaccounted);
    const appearedDuringRun = Math.max(0, -unaccounted);
    const skipped: Record<SkipReason, number> = Object.fromEntries(
      SKIP_REASONS.map((reason) => [reason, this.skips.get(reason) ?? 0]),
    ) as Record<SkipReason, number>;
    skipped.no_cafe24 = census.no_cafe24;
    skipped.missing_keys = census.missing_keys;
    skipped.malformed = census.malformed;
    skipped.reconnect_required = census.reconnect_required;
    skipped.backing_off = census.backing_off;
    skipped.not_due = census.not_due;
    skipped.leased = census.leased + takenElsewhere;
    if (stopped !== null) skipped[stopped] = remaining;
    const skippedTotal = Object.values(skipped).reduce((a, b) => a + b, 0);
    // The census's categories are exclusive: the rows with both keys are exactly those whose
    // row_state is ok, whatever their status, lease, backoff or due time.
    const eligible = census.reconnect_required + census.leased + census.backing_off +
      census.not_due + census.due;
    return {
      run_id: this.runId,
      scanned: census.scanned + appearedDuringRun,
      eligible: eligible + appearedDuringRun,
      due: census.due + appearedDuringRun,
      refreshed: this.refreshed,
      skipped: skippedTotal,
      failed: this.failed,
      failures: this.failures,
      skipped_reasons: skipped,
      remaining,
      duration_ms: Math.round(durationMs),
      warnings: this.warnings,
    };
  }
}
