import { REFRESH_FAILURES, type RefreshFailureCode } from "../platform/errors.ts";
import type { RefreshSettings } from "../platform/config.ts";
import {
  processTokenResponse,
  sendRefreshTokenRequest,
  storedTokenFields,
  TokenRequestError,
  type TokenSet,
} from "../cafe24/token.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { revokePair } from "../cafe24/revoke.ts";
import { logEvent } from "../platform/log.ts";
import { reportFailure } from "../platform/failure.ts";
import type { RunClock } from "./clock.ts";
import { decideAfterFailure } from "./policy.ts";
import { withDatabaseRetries } from "./retries.ts";
import type { ClaimedConnection, FailureOutcome, RefreshStore } from "./store.ts";
import type { RunTally } from "./summary.ts";

/**
 * One claimed connection, from the token request to its settled outcome: send the refresh, then
 * store the new pair at once or record why there is none, claiming the run's next connection in
 * the same database call when asked to.
 */

/** What every step of a run shares. */
export interface StepContext {
  runId: string;
  store: RefreshStore;
  settings: Pick<RefreshSettings, "app" | "plaintextTokenCopy">;
  tally: RunTally;
  clock: RunClock;
  random: () => number;
}

export interface StepResult {
  /** Whether the settle call asked for the run's next connection. */
  claimAsked: boolean;
  /** The run's next connection, claimed while settling this one. */
  next: ClaimedConnection | undefined;
  /** The settle call never reached the database (after retries). */
  databaseFailed: boolean;
}

/**
 * Refreshes `connection` and settles it. `mayClaimNext` is asked once, when the outcome is about
 * to be written (so the run's budgets are checked as late as possible), whether that write should
 * claim the run's next connection too.
 *
 * The token request leaves before this function first waits for anything: a run that has the
 * connection in hand has, from then on, a request in flight for it.
 */
export async function refreshConnection(
  ctx: StepContext,
  connection: ClaimedConnection,
  mayClaimNext: () => boolean,
): Promise<StepResult> {
  const { settings, store, clock } = ctx;
  if (connection.keyProblem !== null || !store.tokensWritable) {
    return await setAsideUnopened(ctx, connection, mayClaimNext);
  }
  let tokens: TokenSet;
  try {
    if (!isValidMallId(connection.mallId)) {
      throw new TokenRequestError("INVALID_MALL_ID", "no request was sent");
    }
    const response = await sendRefreshTokenRequest(settings.app, {
      mallId: connection.mallId,
      refreshToken: connection.refreshToken,
    });
    tokens = await processTokenResponse(response, clock.now());
  } catch (error) {
    const failure = error instanceof TokenRequestError
      ? error
      : error instanceof RangeError
      ? new TokenRequestError("INVALID_MALL_ID", "the API URL failed its host check")
      : new TokenRequestError("CAFE24_NETWORK_ERROR", "unexpected client error", {
        outcomeUnknown: true,
      });
    return await settleFailure(ctx, { connection, failure, claimNext: mayClaimNext() });
  }

  // The old refresh token is dead from this moment: write the new pair before anything else.
  const claimNext = mayClaimNext();
  let stored;
  try {
    stored = await withDatabaseRetries(
      () =>
        store.storeTokens({
          runId: ctx.runId,
          connection,
          tokens: storedTokenFields(tokens),
          claimNext,
          plaintextCopy: settings.plaintextTokenCopy,
        }),
      clock.sleep,
    );
  } catch (error) {
    // The pair is lost. The row still shows a request in flight, so the next claim knows the
    // token may be dead and, if Cafe24 rejects it, reports CAFE24_ANSWER_LOST.
    ctx.tally.fail(connection.id, "STORE_FAILED", "database unavailable");
    reportFailure("cafe24_refresh_store_failed", error, {
      sqlFunction: "cafe24_private.store_refreshed_tokens",
      fields: { run_id: ctx.runId, connection_id: connection.id, mall_id: connection.mallId },
    });
    return { claimAsked: claimNext, next: undefined, databaseFailed: true };
  }
  if (stored.outcome === "stored") {
    ctx.tally.refreshed++;
  } else {
    ctx.tally.skip("superseded");
    await revokeDiscardedPair(ctx, connection, tokens);
  }
  return { claimAsked: claimNext, next: stored.next, databaseFailed: false };
}

/**
 * A connection whose refresh token does not open here, or whose answer could not be stored (no
 * active key): nothing is sent to Cafe24, so its grant is untouched, and nothing is recorded
 * against it. It is let go at once and counted as `key_unavailable`; the log names the key it
 * needs (a kid is a name, not a secret).
 */
async function setAsideUnopened(
  ctx: StepContext,
  connection: ClaimedConnection,
  mayClaimNext: () => boolean,
): Promise<StepResult> {
  const { store, runId, clock } = ctx;
  const released = await withDatabaseRetries(
    () => store.setAsideUnopened(runId, connection.id),
    clock.sleep,
  ).catch(() => false);
  ctx.tally.skip("key_unavailable");
  logEvent("warn", "cafe24_refresh_key_unavailable", {
    run_id: runId,
    connection_id: connection.id,
    reason: connection.keyProblem?.reason ?? "no_active_key",
    kid: connection.keyProblem?.kid ?? null,
    released,
  });
  const claimNext = mayClaimNext();
  if (!claimNext) return { claimAsked: false, next: undefined, databaseFailed: false };
  try {
    const next = await withDatabaseRetries(() => store.claim(runId), clock.sleep);
    return { claimAsked: true, next, databaseFailed: false };
  } catch {
    return { claimAsked: true, next: undefined, databaseFailed: true };
  }
}

/**
 * The row changed while Cafe24 answered (the mall was disconnected or reconnected), so the pair it
 * just issued was not stored and nobody will ever use it: revoke it at once rather than leave a
 * working refresh token alive at Cafe24 for 14 days. Best effort; the outcome is logged.
 */
async function revokeDiscardedPair(
  ctx: StepContext,
  connection: ClaimedConnection,
  tokens: TokenSet,
): Promise<void> {
  const outcome = await revokePair(ctx.settings.app, connection.mallId, storedTokenFields(tokens))
    .catch(() => "unreachable" as const);
  logEvent(outcome === "revoked" ? "info" : "warn", "cafe24_discarded_pair_revoked", {
    run_id: ctx.runId,
    connection_id: connection.id,
    mall_id: connection.mallId,
    outcome,
  });
}

interface FailedRequest {
  connection: ClaimedConnection;
  failure: TokenRequestError;
  claimNext: boolean;
}

async function settleFailure(
  ctx: StepContext,
  { connection, failure, claimNext }: FailedRequest,
): Promise<StepResult> {
  const decision = decideAfterFailure({
    code: failure.code,
    consecutiveFailures: connection.consecutiveFailures,
    retryAfterMs: failure.retryAfterMs,
    answerPossiblyLost: connection.answerPossiblyLost,
  }, ctx.random);
  const message = `${REFRESH_FAILURES[decision.code].message} (${failure.message})`;
  let outcome: FailureOutcome;
  let result: StepResult;
  try {
    const recorded = await withDatabaseRetries(
      () =>
        ctx.store.recordFailure({
          runId: ctx.runId,
          connection,
          failure: {
            code: decision.code,
            message,
            permanent: decision.permanent,
            outcomeUnknown: failure.outcomeUnknown,
            nextAttemptAt: decision.retryInMs === null
              ? null
              : new Date(ctx.clock.now() + decision.retryInMs),
          },
          claimNext,
        }),
      ctx.clock.sleep,
    );
    outcome = recorded.outcome;
    result = { claimAsked: claimNext, next: recorded.next, databaseFailed: false };
  } catch {
    // Nothing was written; the lease runs out and a later run tries again.
    outcome = "retry_scheduled";
    result = { claimAsked: claimNext, next: undefined, databaseFailed: true };
  }
  if (outcome === "already_rotated") {
    ctx.tally.skip("already_rotated");
    return result;
  }
  const code: RefreshFailureCode = outcome === "lease_lost" ? "LEASE_LOST" : decision.code;
  ctx.tally.fail(connection.id, code, failure.message);
  logEvent("warn", "cafe24_refresh_failed", {
    run_id: ctx.runId,
    connection_id: connection.id,
    mall_id: isValidMallId(connection.mallId) ? connection.mallId : "(invalid)",
    code,
    outcome,
    ...(decision.retryInMs === null ? {} : { retry_in_ms: decision.retryInMs }),
  });
  return result;
}
