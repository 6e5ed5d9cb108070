/**
 * What a run covers, decided once when it starts and recorded with it (refresh_runs): every
 * claim, count and settle of the run reads it from there. Which connections are due under a scope
 * is decided in SQL (cafe24_private.refresh_verdict()); this module only decides the scope.
 */

const HOUR_MS = 60 * 60_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * - `eager`: keep every access token fresh (refresh each connection shortly before its access
 *   token expires, about every 90 minutes);
 * - `keep_alive`: refresh only to keep refresh tokens alive (within KEEP_ALIVE_WINDOW_MS of their
 *   expiry), plus connections whose token the app asked for within TOKEN_REQUEST_RECENT_MS
 *   (cafe24_private.note_token_request), plus connections whose expiry is unknown.
 */
export const REFRESH_POLICIES = ["eager", "keep_alive"] as const;
export type RefreshPolicy = (typeof REFRESH_POLICIES)[number];

/**
 * keep_alive refreshes a connection once its refresh token expires within this long. Cafe24's
 * refresh tokens live 14 days, so each connection is refreshed about once a week, and a week of
 * failed attempts (an outage, a wrong client secret) still leaves time to recover.
 */
export const KEEP_ALIVE_WINDOW_MS = 7 * DAY_MS;

/**
 * keep_alive keeps a connection's access token fresh, as eager does, for this long after the app
 * last asked for it.
 */
export const TOKEN_REQUEST_RECENT_MS = 24 * HOUR_MS;

/**
 * Cafe24 issues access tokens for 2 hours. The SQL dates a pair it saw no refresh of by this
 * (cafe24_private.access_token_lifetime(); a test compares the two).
 */
export const ACCESS_TOKEN_LIFETIME_MS = 2 * HOUR_MS;

/**
 * `force` from a signed-in user ("refresh now") refreshes only tokens at least this old, counted
 * from when Cafe24 issued them (by a refresh, by connecting, or, for a pair stored another way,
 * its access token's expiry less ACCESS_TOKEN_LIFETIME_MS), never from the due time, which the
 * first-due jitter moves up to an hour earlier. A token that is minutes old has
 * nearly two hours to live: rotating it again gains nothing, and each rotation is a moment in
 * which a lost answer can cost the mall its connection. Five minutes still lets a user who saw an
 * error retry soon. Cron and admin callers' `force` is not limited.
 */
export const USER_FORCE_MIN_TOKEN_AGE_MS = 5 * 60_000;

export interface RunScope {
  /** Due means the access token expires within this long (or the refresh token soon after). */
  refreshMarginMs: number;
  /** Refresh connections that are not due too; leases, backoff and reconnect_required hold. */
  force: boolean;
  /**
   * Forced runs only: leave pairs issued less than this long ago alone (they count as `not_due`),
   * unless they are due anyway. Null: no limit.
   */
  minTokenAgeMs: number | null;
  mallId: string | null;
  userId: string | null;
  policy: RefreshPolicy;
  keepAliveWindowMs: number;
  tokenRequestWindowMs: number;
  /**
   * The schedule tick that started the run. A scheduled run of a tick also refreshes what comes
   * due before the next tick, and the early refreshes the tick granted (the SQL reads both from
   * the tick when the run starts).
   */
  tickId: number | null;
}

/** Who started a run. `token`: cafe24-token, refreshing the one connection whose token it hands out. */
export type RunTrigger = "cron" | "manual" | "user" | "cli" | "token";

/** The settings a scope is decided from (a subset of the refresh run's settings). */
export interface ScopeSettings {
  refreshMarginMs: number;
  policy: RefreshPolicy;
  keepAliveWindowMs: number;
}

export interface ScopeRequest {
  trigger: RunTrigger;
  force: boolean;
  mallId: string | null;
  userId: string | null;
  tickId?: number | null;
}

/**
 * The scope of a run asked for by `request` under `settings`.
 *
 * A user's `force` is limited by USER_FORCE_MIN_TOKEN_AGE_MS: what is due, and every pair issued
 * at least that long ago (cafe24_private.make_scope); a younger one counts as `not_due`. Tokens
 * whose expiry is unknown are due either way.
 *
 * The policy governs the runs nobody asked to force. A forced run (an admin's, or a user's
 * "refresh now") asks for fresh tokens, so it is eager whatever the setting.
 */
export function runScope(
  request: ScopeRequest,
  settings: ScopeSettings,
): RunScope {
  const userForce = request.force && request.trigger === "user";
  return {
    refreshMarginMs: settings.refreshMarginMs,
    force: request.force,
    minTokenAgeMs: userForce ? USER_FORCE_MIN_TOKEN_AGE_MS : null,
    mallId: request.mallId,
    userId: request.userId,
    policy: request.force ? "eager" : settings.policy,
    keepAliveWindowMs: settings.keepAliveWindowMs,
    tokenRequestWindowMs: TOKEN_REQUEST_RECENT_MS,
    tickId: request.trigger === "cron" ? request.tickId ?? null : null,
  };
}
