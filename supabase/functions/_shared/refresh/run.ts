import type { RefreshSettings } from "../platform/config.ts";
import { CONFIG_WARNINGS, type ConfigWarningCode } from "../platform/errors.ts";
import { reportFailure } from "../platform/failure.ts";
import { logEvent } from "../platform/log.ts";
import { type RunClock, systemClock } from "./clock.ts";
import { type CpuAccount, ledgerFor, processCpuBudgetMs } from "./cpu_share.ts";
import { withDatabaseRetries } from "./retries.ts";
import { runScope, type ScopeRequest } from "./scope.ts";
import { refreshConnection, type StepContext } from "./step.ts";
import type { ClaimedConnection, RefreshStore, RunMode } from "./store.ts";
import {
  emptySummary,
  type RunSummary,
  RunTally,
  type StopReason,
  warningMessages,
} from "./summary.ts";

// The summary's shape and keys, for the run's callers (the function, the CLI, the local stack).
export { RUN_SUMMARY_KEYS, type RunSummary } from "./summary.ts";
export { SKIP_REASONS, type SkipReason } from "./skip_reasons.ts";

/**
 * One refresh run: count what is in scope, then let `concurrency` workers each claim one due
 * connection at a time, refresh it and write the outcome at once, until nothing is due, a budget
 * (wall clock, CPU) is spent or the per-run cap is reached. The run never holds more leases than
 * it has requests in flight, so a run that stops early leaves nothing locked.
 *
 * While it runs, it listens for the runtime's `beforeunload` (sent before a hosted worker is
 * stopped, with `detail.reason`: CPUTime, WallClockTime, Memory, EarlyDrop,
 * TerminationRequested): it claims nothing more and lets go, unsent, of any connection it claims
 * from then on. Requests already in flight keep their leases, since their answers may still come.
 */

export interface RunRequest extends ScopeRequest {
  mode: RunMode;
  /** Settings that work but should be changed (configWarnings); every summary carries them. */
  warnings?: ConfigWarningCode[];
}

export interface RefreshDeps {
  store: RefreshStore;
  settings: RefreshSettings;
  random?: () => number;
  /** The system clock where not given (tests pass their own). */
  clock?: Partial<RunClock>;
  /** Called after each connection is settled (progress bars). */
  onProgress?: (progress: { settled: number; due: number }) => void;
}

const runClock = (clock: Partial<RunClock> | undefined): RunClock => ({ ...systemClock, ...clock });

/**
 * Records the run and its scope, and returns its id with the work still to do, so an async
 * caller can answer 202 with the id before the work starts.
 */
export async function beginRefreshRun(
  deps: RefreshDeps,
  request: RunRequest,
): Promise<{ runId: string; execute: () => Promise<RunSummary> }> {
  const runId = await deps.store.startRun({
    trigger: request.trigger,
    mode: request.mode,
    scope: runScope(request, deps.settings),
    leaseMs: deps.settings.leaseMs,
  });
  return { runId, execute: () => executeRun(deps, request, runId) };
}

/**
 * The all-zero summary when nothing is in the request's scope (a user without a connection, or
 * naming a mall that is not theirs), found before any run is recorded; null when there is
 * something to run over. Keeps "refresh now" from users without a mall out of the run history.
 */
export async function summaryIfNothingInScope(
  deps: Pick<RefreshDeps, "store" | "clock">,
  request: RunRequest,
): Promise<RunSummary | null> {
  const clock = runClock(deps.clock);
  const startedAt = clock.now();
  const inScope = await withDatabaseRetries(
    () => deps.store.countInScope({ mallId: request.mallId, userId: request.userId }),
    clock.sleep,
  );
  if (inScope > 0) return null;
  return emptySummary(request.warnings ?? [], clock.now() - startedAt);
}

/** When a run stops taking on connections. */
class RunLimits {
  stopped: StopReason | null = null;
  /** The reason the runtime gave when it announced it would stop the worker. */
  interruptedBy: string | null = null;
  private claims = 0;
  /** Connections whose request is over (answered, failed or never sent): the rest are in flight. */
  private requestsDone = 0;
  private readonly startedAt: number;
  /** The run's share of the process's CPU (runs served by one process at once split it). */
  readonly cpu: CpuAccount;

  constructor(
    private readonly settings: Pick<
      RefreshSettings,
      "runBudgetMs" | "runCpuBudgetMs" | "maxConnectionsPerRun"
    >,
    private readonly clock: RunClock,
  ) {
    this.startedAt = clock.now();
    this.cpu = ledgerFor(clock.cpuMs).open();
  }

  /** Takes on one more connection when the run may: budgets left, cap not reached. */
  take(): boolean {
    if (this.interruptedBy !== null || this.budgetSpent()) {
      this.stopped ??= "out_of_time";
      return false;
    }
    if (this.claims >= this.settings.maxConnectionsPerRun) {
      this.stopped ??= "run_limit";
      return false;
    }
    this.claims++;
    return true;
  }

  /** A connection's request is over (answered, failed or never sent): no longer in flight. */
  requestDone(): void {
    this.requestsDone++;
  }

  /** A claim that found nothing took no connection. */
  giveBack(): void {
    this.claims--;
  }

  /**
   * The wall clock, the run's own share of the CPU with what its requests in flight will still
   * cost, or the CPU of every run the process serves at once (processCpuBudgetMs). Where the
   * runtime gives no CPU reading, the wall clock, the cap and the runtime's beforeunload notice
   * still stop the run.
   */
  private budgetSpent(): boolean {
    if (this.clock.now() - this.startedAt >= this.settings.runBudgetMs) return true;
    const own = this.cpu.ownMs();
    if (own !== null && own + this.inFlightCpuMs(own) >= this.settings.runCpuBudgetMs) return true;
    const busy = this.cpu.busyMs();
    return busy !== null && busy >= processCpuBudgetMs(this.settings.runCpuBudgetMs);
  }

  /**
   * What the requests still in flight will cost before the run ends: each is answered, sealed and
   * stored after the run stops claiming, so a run that stopped only once its CPU reached the
   * budget ended past it by as many answers as it had in flight. Priced at the run's CPU per
   * finished connection so far, which also carries the run's start and the sending half of the
   * requests in flight: it errs high, so the run ends under its budget rather than over it.
   */
  private inFlightCpuMs(ownMs: number): number {
    if (this.requestsDone === 0) return 0;
    return (this.claims - this.requestsDone) * (ownMs / this.requestsDone);
  }
}

/**
 * The run's share of the process's CPU, for the run's log line (how close a run came to its
 * budget), and how many runs shared the process when it ended; nothing where the runtime does not
 * say.
 */
function cpuSpent(
  account: CpuAccount,
  sharedWith: number,
): { cpu_ms?: number; runs_in_process?: number } {
  const own = account.ownMs();
  return own === null ? {} : { cpu_ms: Math.round(own), runs_in_process: sharedWith };
}

/** The runtime's reason from a beforeunload event, when it is a plain word. */
function unloadReason(event: Event): string {
  const detail: unknown = (event as CustomEvent<unknown>).detail;
  const reason = typeof detail === "object" && detail !== null
    ? (detail as { reason?: unknown }).reason
    : undefined;
  return typeof reason === "string" && /^[A-Za-z]{1,40}$/.test(reason) ? reason : "unknown";
}

async function executeRun(
  deps: RefreshDeps,
  request: RunRequest,
  runId: string,
): Promise<RunSummary> {
  const clock = runClock(deps.clock);
  const { settings, store } = deps;
  const retrying = <T>(call: () => Promise<T>) => withDatabaseRetries(call, clock.sleep);
  const startedAt = clock.now();
  const warnings = request.warnings ?? [];
  const tally = new RunTally(runId, warnings);
  const limits = new RunLimits(settings, clock);
  if (warnings.length > 0) {
    logEvent("warn", "cafe24_refresh_config_warning", {
      run_id: runId,
      warnings,
      messages: warningMessages(warnings),
    });
  }
  const onUnload = (event: Event) => {
    if (limits.interruptedBy !== null) return;
    limits.interruptedBy = unloadReason(event);
    logEvent("warn", "cafe24_refresh_run_interrupted", {
      run_id: runId,
      reason: limits.interruptedBy,
    });
  };
  globalThis.addEventListener("beforeunload", onUnload);

  try {
    const census = await retrying(() => store.census(runId));
    if (census.key_unavailable > 0) await warnOfMissingKeys(store, runId, tally, retrying);
    // No key to store an answer with (CAFE24_TOKEN_KEY_ID names none of the ring's keys): send
    // nothing, since the old refresh token dies with the answer. The warnings say why.
    if (!store.tokensWritable) limits.stopped = "key_unavailable";
    else {
      await runWorkers({
        ctx: {
          runId,
          store,
          settings,
          tally,
          clock,
          random: deps.random ?? Math.random,
        },
        limits,
        concurrency: settings.concurrency,
        onSettled: () => deps.onProgress?.({ settled: tally.settled, due: census.due }),
      });
    }

    const stopped = limits.stopped;
    const remaining = stopped === null ? 0 : await retrying(() => store.countClaimable(runId));
    const summary = tally.summarize({
      census,
      remaining,
      stopped,
      durationMs: clock.now() - startedAt,
    });
    await retrying(() => store.finishRun(runId, "finished", summary));
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
      ...cpuSpent(limits.cpu, ledgerFor(clock.cpuMs).openRuns),
      max_connections: settings.maxConnectionsPerRun,
      ...(request.tickId == null ? {} : { tick_id: request.tickId }),
      ...(limits.interruptedBy === null ? {} : { interrupted_by: limits.interruptedBy }),
    });
    return summary;
  } catch (error) {
    reportFailure("cafe24_refresh_run_failed", error, { fields: { run_id: runId } });
    await store.finishRun(runId, "failed", { refreshed: tally.refreshed, failed: tally.failed })
      .catch(() => {});
    throw error;
  } finally {
    limits.cpu.close();
    globalThis.removeEventListener("beforeunload", onUnload);
  }
}

/**
 * Rows the rules skipped because they are sealed under a key id the ring lacks: the run's warnings
 * say so, and the log names the key ids (names, not secrets) with how many rows each protects.
 * A failure to read them costs the run nothing but the names.
 */
async function warnOfMissingKeys(
  store: RefreshStore,
  runId: string,
  tally: RunTally,
  retrying: <T>(call: () => Promise<T>) => Promise<T>,
): Promise<void> {
  if (!tally.warnings.includes("TOKEN_KEY_NOT_IN_RING")) {
    tally.warnings.push("TOKEN_KEY_NOT_IN_RING");
  }
  const keyIds = await retrying(() => store.missingKeyIds(runId)).catch(() => null);
  logEvent("warn", "cafe24_refresh_keys_missing", {
    run_id: runId,
    key_ids: keyIds,
    message: CONFIG_WARNINGS.TOKEN_KEY_NOT_IN_RING.message,
  });
}

interface Workers {
  ctx: StepContext;
  limits: RunLimits;
  concurrency: number;
  onSettled: () => void;
}

/**
 * Each worker claims its first connection alone; after that, settling one connection and
 * claiming the next is a single round trip. Throws the claim error that stopped a worker.
 */
async function runWorkers({ ctx, limits, concurrency, onSettled }: Workers): Promise<void> {
  const { runId, store, clock } = ctx;
  let claimError: unknown = null;
  const claimAlone = async (): Promise<ClaimedConnection | undefined> => {
    try {
      return await withDatabaseRetries(() => store.claim(runId), clock.sleep);
    } catch (error) {
      claimError = error;
      return undefined;
    }
  };
  // Claimed after the runtime announced the worker's end, so no request was sent for it: free it
  // for the next run at once. If even that fails, its lease runs out on its own.
  const letGo = async (connection: ClaimedConnection) => {
    const released = await store.releaseLeases(runId, [connection.id]).catch(() => 0);
    logEvent("info", "cafe24_refresh_lease_released", {
      run_id: runId,
      connection_id: connection.id,
      released: released === 1,
    });
  };

  const worker = async () => {
    if (!limits.take()) return;
    let connection = await claimAlone();
    let claimAsked = true;
    while (connection !== undefined) {
      // The request for a claimed connection leaves in the same turn of the event loop as the
      // claim's answer arrives (refreshConnection sends before it first waits). So a
      // beforeunload notice either came before this answer (nothing sent yet: let it go) or
      // after the request left (in flight: it keeps its lease until its answer is settled, and
      // that settle claims nothing more).
      if (limits.interruptedBy !== null) {
        await letGo(connection);
        return;
      }
      const step = await refreshConnection(
        ctx,
        connection,
        () => {
          limits.requestDone();
          return claimError === null && limits.take();
        },
      );
      claimAsked = step.claimAsked;
      onSettled();
      // The combined call could not reach the database: claim on its own (which records a
      // lasting outage as the run's error) so the run neither stops early nor miscounts.
      connection = step.databaseFailed && claimAsked ? await claimAlone() : step.next;
    }
    // The last claim found nothing (or failed): it took no connection.
    if (claimAsked) limits.giveBack();
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (claimError !== null) throw claimError;
}
