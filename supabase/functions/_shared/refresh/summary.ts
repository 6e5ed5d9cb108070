import {
  CONFIG_WARNINGS,
  type ConfigWarningCode,
  REFRESH_FAILURES,
  type RefreshFailureCode,
} from "../platform/errors.ts";
import type { Census } from "./store.ts";
import {
  CENSUS_SKIP_REASONS,
  NOT_ELIGIBLE_REASONS,
  type RunSkipReason,
  SKIP_REASONS,
  type SkipReason,
} from "./skip_reasons.ts";

/** At most this many failures are listed in a summary (the count is always complete). */
export const MAX_REPORTED_FAILURES = 50;

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
 * - `eligible`: scanned rows with a mall_id in providers.cafe24 and a stored refresh token, the
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

/** Why a run stopped claiming before nothing was left to claim. */
export type StopReason = Extract<RunSkipReason, "out_of_time" | "run_limit" | "key_unavailable">;

const zeroSkips = (): Record<SkipReason, number> =>
  Object.fromEntries(SKIP_REASONS.map((reason) => [reason, 0])) as Record<SkipReason, number>;

/** The summary of a request with nothing in its scope, for which no run was recorded. */
export function emptySummary(warnings: ConfigWarningCode[], durationMs: number): RunSummary {
  return {
    run_id: null,
    scanned: 0,
    eligible: 0,
    due: 0,
    refreshed: 0,
    skipped: 0,
    failed: 0,
    failures: [],
    skipped_reasons: zeroSkips(),
    remaining: 0,
    duration_ms: Math.round(durationMs),
    warnings,
  };
}

/** What a run left: the census at its start, what it could not reach, why it stopped. */
export interface RunEnd {
  census: Census;
  remaining: number;
  stopped: StopReason | null;
  durationMs: number;
}

/** Counts outcomes; `summarize` closes the books so that scanned = refreshed + failed + skipped. */
export class RunTally {
  refreshed = 0;
  failed = 0;
  readonly failures: { id: string; reason: string }[] = [];
  readonly skips = new Map<SkipReason, number>();

  constructor(readonly runId: string, readonly warnings: ConfigWarningCode[]) {}

  /** Due connections this run has finished with. */
  get settled(): number {
    return this.refreshed + this.failed + (this.skips.get("already_rotated") ?? 0) +
      (this.skips.get("superseded") ?? 0) + (this.skips.get("key_unavailable") ?? 0);
  }

  skip(reason: "already_rotated" | "superseded" | "key_unavailable"): void {
    this.skips.set(reason, (this.skips.get(reason) ?? 0) + 1);
  }

  fail(connectionId: string, code: RefreshFailureCode, detail: string): void {
    this.failed++;
    if (this.failures.length < MAX_REPORTED_FAILURES) {
      this.failures.push({
        id: connectionId,
        reason: `${code}: ${REFRESH_FAILURES[code].message} (${detail})`,
      });
    }
  }

  summarize({ census, remaining, stopped, durationMs }: RunEnd): RunSummary {
    // Due rows this run neither settled nor left behind were taken by a concurrent run; more
    // settled than the census counted means rows became due while it ran.
    const unaccounted = census.due - this.settled - remaining;
    const takenElsewhere = Math.max(0, unaccounted);
    const appearedDuringRun = Math.max(0, -unaccounted);
    const skipped = zeroSkips();
    for (const reason of CENSUS_SKIP_REASONS) skipped[reason] = census[reason];
    for (const [reason, count] of this.skips) skipped[reason] += count;
    skipped.leased += takenElsewhere;
    if (stopped !== null) skipped[stopped] += remaining;
    const notEligible = NOT_ELIGIBLE_REASONS.reduce((sum, reason) => sum + census[reason], 0);
    return {
      run_id: this.runId,
      scanned: census.scanned + appearedDuringRun,
      eligible: census.scanned - notEligible + appearedDuringRun,
      due: census.due + appearedDuringRun,
      refreshed: this.refreshed,
      skipped: Object.values(skipped).reduce((a, b) => a + b, 0),
      failed: this.failed,
      failures: this.failures,
      skipped_reasons: skipped,
      remaining,
      duration_ms: Math.round(durationMs),
      warnings: this.warnings,
    };
  }
}

/** The log line's messages for a run's warnings: what to change, never a value. */
export function warningMessages(warnings: ConfigWarningCode[]): string[] {
  return warnings.map((code) => CONFIG_WARNINGS[code].message);
}
