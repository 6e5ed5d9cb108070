import type postgres from "postgres";
import type { RefreshSettings } from "../platform/config.ts";
import {
  type RefreshFailureCode,
  RequestError,
  type TokenWaitFailureCode,
} from "../platform/errors.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { reportFailure } from "../platform/failure.ts";
import { logEvent } from "../platform/log.ts";
import { type RunClock, systemClock } from "../refresh/clock.ts";
import { runScope } from "../refresh/scope.ts";
import { refreshConnection } from "../refresh/step.ts";
import { censusFromRows } from "../refresh/store.ts";
import { RunTally } from "../refresh/summary.ts";
import { type Cafe24AccessToken, decideToken, selectConnection, type TokenRow } from "./decide.ts";
import { parseTokenRequest, type TokenRequest } from "./request.ts";
import { createTokenStore, type TokenStore } from "./store.ts";

export type { Cafe24AccessToken } from "./decide.ts";

/**
 * A connection's access token for the app's server code, valid for at least `minValidS` seconds
 * (default 300), refreshed first when it is closer to expiry than that.
 *
 * One refresh per connection at a time, across every caller: in one process, concurrent callers
 * for a connection share one refresh; across processes (and with the scheduled runs), the
 * connection's lease decides. The refresh is a run of its own (trigger `token`) that claims just
 * this connection and goes through the refresher's step, so the pair is stored by the same
 * compare-and-swap and a failure recorded with the same backoff as in every run. A caller that
 * finds the connection leased waits for the lease to end or the token to change, then reads the
 * row again.
 *
 * Throws RequestError: INVALID_REQUEST / INVALID_MALL_ID (the request), NOT_FOUND,
 * RECONNECT_REQUIRED (the owner must connect again), MALL_ID_AMBIGUOUS (several usable rows hold
 * the mall: ask by auth_settings_id), TOKEN_UNAVAILABLE with `reason` (the token has expired and
 * the refresh failed or must wait: `retry_after_s` then says how long), DATABASE_UNAVAILABLE (the
 * database could not be reached) or INTERNAL_ERROR.
 * When a refresh fails while the stored token is still valid, that token is the answer, with
 * `refresh_failed` set to the failure's code.
 */
export async function getCafe24AccessToken(
  sql: postgres.Sql,
  request: {
    mallId?: string;
    authSettingsId?: string;
    minValidS?: number;
    /**
     * The access token Cafe24 just answered 401 to. When the connection still holds it, it is
     * refreshed first (once for all callers that report it at once, never for a pair stored less
     * than 5 minutes ago, at most once per mall per 10 minutes); the answer may then still be
     * this token, when no refresh was allowed.
     */
    rejectedToken?: string;
  },
  settings: TokenSettings,
  onRefreshed?: (mallId: string) => void,
): Promise<Cafe24AccessToken> {
  const parsed = parseTokenRequest({
    ...(request.mallId === undefined ? {} : { mall_id: request.mallId }),
    ...(request.authSettingsId === undefined ? {} : { auth_settings_id: request.authSettingsId }),
    ...(request.minValidS === undefined ? {} : { min_valid_s: request.minValidS }),
  });
  return await getAccessToken(
    {
      store: createTokenStore(sql, settings.tokenSeal),
      settings,
      ...(onRefreshed === undefined ? {} : { onRefreshed }),
    },
    parsed,
    request.rejectedToken,
  );
}

/** What a token request needs of the refresh settings (refreshSettings(config) has it all). */
export type TokenSettings = Pick<
  RefreshSettings,
  "app" | "leaseMs" | "keepAliveWindowMs" | "plaintextTokenCopy" | "tokenSeal"
>;

export interface TokenDeps {
  store: TokenStore;
  settings: TokenSettings;
  random?: () => number;
  /** The system clock where not given (tests pass their own). */
  clock?: Partial<RunClock>;
  /** Hears of each refresh stored for a mall (cafe24-token runs pending verifications then). */
  onRefreshed?: (mallId: string) => void;
}

/**
 * A caller whose needs a shared refresh did not meet (it asked for more validity than the caller
 * that started it) goes round again, at most this many times in all.
 */
const MAX_ROUNDS = 3;
/** Refresh attempts within one shared refresh: each claims, or finds why it may not. */
const MAX_ATTEMPTS = 3;
/**
 * Polling a leased connection: the first look soon (a refresh takes a fraction of a second),
 * then less and less often.
 */
const POLL_FIRST_MS = 25;
const POLL_MAX_MS = 500;

const REFRESH_IN_PROGRESS: TokenWaitFailureCode = "REFRESH_IN_PROGRESS";

/** getCafe24AccessToken over any store; `request` is already validated. */
export async function getAccessToken(
  deps: TokenDeps,
  request: TokenRequest,
  rejectedToken?: string,
): Promise<Cafe24AccessToken> {
  const { store } = deps;
  const selected = selectConnection(
    await fromDatabase("cafe24_private.token_connections", () => store.read(request)),
  );
  if ("kind" in selected) {
    throw new RequestError(selected.kind === "ambiguous" ? "MALL_ID_AMBIGUOUS" : "NOT_FOUND");
  }
  let row: TokenRow = selected.row;
  const id = row.authSettingsId;
  await fromDatabase("cafe24_private.note_token_request", () => store.noteRequest(id));
  throwIfUnopened(row);
  if (rejectedToken !== undefined && row.accessToken === rejectedToken) {
    // A verdict other than `marked` leaves the row as it is; `marked` makes it due, so the
    // decision below refreshes it through the shared flight like any token too close to expiry.
    const verdict = await fromDatabase(
      "cafe24_private.reject_access_token",
      () => store.rejectToken(id, row.storedAccessToken ?? ""),
    );
    if (verdict !== "too_young") {
      const [again] = await fromDatabase(
        "cafe24_private.token_connections",
        () => store.read({ authSettingsId: id, mallId: null }),
      );
      if (again === undefined) throw new RequestError("NOT_FOUND");
      row = again;
    }
  }

  let failure: string | null = null;
  for (let round = 1;; round++) {
    throwIfUnopened(row);
    const decision = decideToken(row, request.minValidS, failure);
    switch (decision.kind) {
      case "answer":
        return decision.token;
      case "not_found":
        throw new RequestError("NOT_FOUND");
      case "reconnect_required":
        throw new RequestError("RECONNECT_REQUIRED");
      case "unavailable":
        throw new RequestError("TOKEN_UNAVAILABLE", {
          reason: decision.reason,
          ...(decision.retryAfterS === null ? {} : { retry_after_s: decision.retryAfterS }),
        });
    }
    // wait or refresh: both are the shared refresh's business.
    if (round > MAX_ROUNDS) {
      failure = REFRESH_IN_PROGRESS;
      continue;
    }
    const outcome: FlightOutcome = await sharedFlight(deps, id, request.minValidS);
    if (outcome.row === null) throw new RequestError("NOT_FOUND");
    row = outcome.row;
    failure = outcome.failure;
  }
}

interface FlightOutcome {
  /** The connection as the refresh left it; null when it no longer exists. */
  row: TokenRow | null;
  /** The code of the refresh that failed, or REFRESH_IN_PROGRESS; null when none failed. */
  failure: string | null;
}

const flights = new WeakMap<TokenStore, Map<string, Promise<FlightOutcome>>>();

/** The refresh in flight for this connection in this process, or a new one. */
function sharedFlight(deps: TokenDeps, id: string, minValidS: number): Promise<FlightOutcome> {
  let inFlight = flights.get(deps.store);
  if (inFlight === undefined) {
    inFlight = new Map();
    flights.set(deps.store, inFlight);
  }
  const running = inFlight.get(id);
  if (running !== undefined) return running;
  const flight = refreshUntilSettled(deps, id, minValidS).finally(() => inFlight.delete(id));
  inFlight.set(id, flight);
  return flight;
}

/**
 * Brings the connection to where its token is valid for `minValidS`, or to why it cannot be:
 * refresh when it is ours to refresh, wait while someone else holds it. The wait is bounded by a
 * lease's duration: a lease ends by then even if its holder died, and the connection is ours to
 * claim.
 */
async function refreshUntilSettled(
  deps: TokenDeps,
  id: string,
  minValidS: number,
): Promise<FlightOutcome> {
  const clock = { ...systemClock, ...deps.clock };
  const deadline = clock.now() + deps.settings.leaseMs;
  let failure: string | null = null;
  let attempts = 0;
  let pollMs = POLL_FIRST_MS;
  for (;;) {
    const [row] = await fromDatabase(
      "cafe24_private.token_connections",
      () => deps.store.read({ authSettingsId: id, mallId: null }),
    );
    if (row === undefined) return { row: null, failure };
    if (row.keyProblem !== null) return { row, failure };
    const decision = decideToken(row, minValidS, failure);
    if (decision.kind === "wait") {
      const left = deadline - clock.now();
      if (left <= 0) return { row, failure: REFRESH_IN_PROGRESS };
      await clock.sleep(Math.max(1, Math.min(pollMs, decision.leaseEndsInMs, left)));
      pollMs = Math.min(pollMs * 2, POLL_MAX_MS);
      continue;
    }
    if (decision.kind !== "refresh") return { row, failure };
    if (attempts++ >= MAX_ATTEMPTS) return { row, failure: REFRESH_IN_PROGRESS };
    failure = await refreshOnce(deps, clock, row, minValidS);
  }
}

/** Remembers the code of the step's failure, which is this request's answer when it has one. */
class TokenRunTally extends RunTally {
  failure: string | null = null;

  override fail(connectionId: string, code: RefreshFailureCode, detail: string): void {
    this.failure = code;
    super.fail(connectionId, code, detail);
  }
}

/**
 * One run with trigger `token`: claim this connection if the run's rules say it is due (its
 * margin is the validity asked for), refresh it through the refresher's step, record the run.
 * Returns the refresh's failure code, null when it was refreshed or not claimed (another holder,
 * or someone refreshed it meanwhile: the next read shows which).
 */
async function refreshOnce(
  deps: TokenDeps,
  clock: RunClock,
  row: TokenRow,
  minValidS: number,
): Promise<string | null> {
  const { store, settings } = deps;
  const startedAt = clock.now();
  const scope = runScope(
    { trigger: "token", force: false, mallId: row.mallId, userId: null },
    {
      refreshMarginMs: minValidS * 1000,
      policy: "eager",
      keepAliveWindowMs: settings.keepAliveWindowMs,
    },
  );
  const runId = await fromDatabase(
    "cafe24_private.start_refresh_run",
    () =>
      store.refresh.startRun({ trigger: "token", mode: "sync", scope, leaseMs: settings.leaseMs }),
  );
  const tally = new TokenRunTally(runId, []);
  let verdict: string | null = null;
  try {
    const claim = await fromDatabase(
      "cafe24_private.claim_connection_pair",
      () => store.claim(runId, row.authSettingsId),
    );
    verdict = claim?.verdict ?? null;
    if (claim?.connection) {
      await refreshConnection(
        {
          runId,
          store: store.refresh,
          settings,
          tally,
          clock,
          random: deps.random ?? Math.random,
        },
        claim.connection,
        () => false,
      );
    }
  } catch (error) {
    await store.refresh.finishRun(runId, "failed", {
      refreshed: tally.refreshed,
      failed: tally.failed,
    })
      .catch(() => {});
    throw error;
  }
  const summary = tally.summarize({
    census: censusFromRows(verdict === null ? [] : [{ verdict, connections: 1 }]),
    remaining: 0,
    stopped: null,
    durationMs: clock.now() - startedAt,
  });
  // The run's record is history; the answer does not wait on it failing.
  await store.refresh.finishRun(runId, "finished", summary).catch(() => {});
  logEvent("info", "cafe24_token_refresh", {
    run_id: runId,
    connection_id: row.authSettingsId,
    mall_id: isValidMallId(row.mallId) ? row.mallId : "(invalid)",
    verdict: verdict ?? "not_found",
    outcome: tally.refreshed > 0
      ? "refreshed"
      : tally.failure ?? (summary.skipped_reasons.superseded > 0 ? "superseded" : "not_claimed"),
  });
  if (tally.refreshed > 0 && row.mallId !== null) deps.onRefreshed?.(row.mallId);
  return tally.failure;
}

/**
 * The stored access token did not open: its key is not in the ring (restoring the key brings it
 * back) or the value does not belong to this row. 503 naming the key, never a refresh: the
 * refresh token is sealed alike, and nothing may be sent that could cost the grant.
 */
function throwIfUnopened(row: TokenRow): void {
  if (row.keyProblem === null) return;
  throw new RequestError("TOKEN_KEY_UNAVAILABLE", {
    kid: row.keyProblem.kid,
    reason: row.keyProblem.reason,
  });
}

/**
 * A database call of a token request (`sqlFunction` is the one it runs). A failure is reported
 * and thrown as the request's answer: DATABASE_UNAVAILABLE when the database could not be
 * reached, INTERNAL_ERROR otherwise.
 */
async function fromDatabase<T>(sqlFunction: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof RequestError) throw error;
    throw new RequestError(reportFailure("cafe24_token_database_failed", error, { sqlFunction }));
  }
}
