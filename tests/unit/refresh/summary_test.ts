/**
 * The run summary's books: scanned = refreshed + failed + skipped whatever happened, eligible as
 * the original endpoint meant it, and concurrent runs accounted for.
 */
import assert from "node:assert/strict";
import {
  emptySummary,
  MAX_REPORTED_FAILURES,
  RUN_SUMMARY_KEYS,
  RunTally,
} from "../../../supabase/functions/_shared/refresh/summary.ts";
import { SKIP_REASONS } from "../../../supabase/functions/_shared/refresh/skip_reasons.ts";
import { censusOf } from "./fakes.ts";

const RUN_ID = "11111111-1111-4111-8111-111111111111";

/** A census with every verdict present: 3 not eligible, 25 eligible of which 10 due. */
const CENSUS = censusOf({
  no_cafe24: 1,
  missing_keys: 1,
  malformed: 1,
  reconnect_required: 2,
  leased: 3,
  backing_off: 4,
  not_due: 6,
  due: 10,
});

function tally(outcomes: { refreshed?: number; failed?: number; rotated?: number }): RunTally {
  const t = new RunTally(RUN_ID, []);
  t.refreshed = outcomes.refreshed ?? 0;
  for (let i = 0; i < (outcomes.failed ?? 0); i++) t.fail(`id-${i}`, "CAFE24_TIMEOUT", "15 s");
  for (let i = 0; i < (outcomes.rotated ?? 0); i++) t.skip("already_rotated");
  return t;
}

const balanced = (s: ReturnType<RunTally["summarize"]>) =>
  s.scanned === s.refreshed + s.failed + s.skipped &&
  s.skipped === Object.values(s.skipped_reasons).reduce((a, b) => a + b, 0);

Deno.test("a run that settles every due connection: the census's reasons, eligible = ok rows", () => {
  const s = tally({ refreshed: 8, failed: 1, rotated: 1 }).summarize({
    census: CENSUS,
    remaining: 0,
    stopped: null,
    durationMs: 12.6,
  });
  assert.deepEqual(Object.keys(s), [...RUN_SUMMARY_KEYS]);
  assert.deepEqual(Object.keys(s.skipped_reasons), [...SKIP_REASONS]);
  assert.equal(s.scanned, 28);
  assert.equal(s.eligible, 25);
  assert.equal(s.due, 10);
  assert.equal(s.skipped, 19);
  assert.equal(s.skipped_reasons.already_rotated, 1);
  assert.equal(s.skipped_reasons.leased, 3);
  assert.equal(s.duration_ms, 13);
  assert.ok(balanced(s));
});

Deno.test("a stopped run counts what it left as remaining under its reason", () => {
  for (const stopped of ["out_of_time", "run_limit"] as const) {
    const s = tally({ refreshed: 4 }).summarize({
      census: CENSUS,
      remaining: 6,
      stopped,
      durationMs: 1,
    });
    assert.equal(s.remaining, 6);
    assert.equal(s.skipped_reasons[stopped], 6);
    assert.ok(balanced(s), stopped);
  }
});

Deno.test("due connections a concurrent run took are leased; ones that became due while running are counted", () => {
  const taken = tally({ refreshed: 7 }).summarize({
    census: CENSUS,
    remaining: 0,
    stopped: null,
    durationMs: 1,
  });
  assert.equal(taken.skipped_reasons.leased, 3 + 3);
  assert.ok(balanced(taken));

  const grown = tally({ refreshed: 12 }).summarize({
    census: CENSUS,
    remaining: 0,
    stopped: null,
    durationMs: 1,
  });
  assert.equal(grown.scanned, 30);
  assert.equal(grown.eligible, 27);
  assert.equal(grown.due, 12);
  assert.ok(balanced(grown));
});

Deno.test("failures: every one counted, at most MAX_REPORTED_FAILURES listed, with code and message", () => {
  const s = tally({ failed: MAX_REPORTED_FAILURES + 5 }).summarize({
    census: censusOf({ due: MAX_REPORTED_FAILURES + 5 }),
    remaining: 0,
    stopped: null,
    durationMs: 1,
  });
  assert.equal(s.failed, MAX_REPORTED_FAILURES + 5);
  assert.equal(s.failures.length, MAX_REPORTED_FAILURES);
  assert.match(s.failures[0]!.reason, /^CAFE24_TIMEOUT: .+ \(15 s\)$/);
  assert.ok(balanced(s));
});

Deno.test("the empty summary: every key, zeros, no run id, the warnings", () => {
  const s = emptySummary(["CRON_SECRET_WEAK"], 2.4);
  assert.deepEqual(Object.keys(s), [...RUN_SUMMARY_KEYS]);
  assert.equal(s.run_id, null);
  assert.ok(Object.values(s.skipped_reasons).every((n) => n === 0));
  assert.deepEqual(Object.keys(s.skipped_reasons), [...SKIP_REASONS]);
  assert.deepEqual(s.warnings, ["CRON_SECRET_WEAK"]);
  assert.equal(s.duration_ms, 2);
});
