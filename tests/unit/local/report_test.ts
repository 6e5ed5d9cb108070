import assert from "node:assert/strict";
import {
  connectionTable,
  orderedSummary,
  paint,
  relativeTime,
  runFinishedLines,
  type RunRow,
} from "../../../local/stack/report.ts";

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const plain = paint(false);

Deno.test("relativeTime() says in/ago with minutes, hours or days, and '-' for null", () => {
  assert.equal(relativeTime(null, NOW), "-");
  assert.equal(relativeTime(new Date(NOW + 10_000), NOW), "now");
  assert.equal(relativeTime(new Date(NOW + 40 * 60_000), NOW), "in 40m");
  assert.equal(relativeTime(new Date(NOW - 3 * 60_000), NOW), "3m ago");
  assert.equal(relativeTime(new Date(NOW + 89 * 60_000), NOW), "in 1h29m");
  assert.equal(relativeTime(new Date(NOW + 120 * 60_000), NOW), "in 2h");
  assert.equal(relativeTime(new Date(NOW + 14 * 86_400_000), NOW), "in 14d");
  assert.equal(relativeTime(new Date(-Infinity), NOW), "-");
});

Deno.test("runFinishedLines() summarizes a run and names each failure's mall", () => {
  const run: RunRow = {
    id: "0123456789abcdef",
    trigger: "cron",
    mode: "async",
    status: "finished",
    started_at: new Date(NOW),
    finished_at: new Date(NOW + 100),
    summary: {
      eligible: 7,
      due: 4,
      refreshed: 3,
      failed: 1,
      skipped: 4,
      remaining: 0,
      duration_ms: 96,
      failures: [{ id: "conn-1", reason: "CAFE24_INVALID_GRANT: rejected" }],
      skipped_reasons: { not_due: 3, malformed: 1, leased: 0 },
    },
  };
  const lines = runFinishedLines(run, new Map([["conn-1", "demodead"]]), plain);
  assert.match(
    lines[0]!,
    /cron\s+run 01234567 {2}due 4 · refreshed 3 · failed 1 · skipped 4 \(not_due 3, malformed 1\) · 96 ms$/,
  );
  assert.match(lines[1]!, /✗ demodead\s+CAFE24_INVALID_GRANT: rejected$/);
});

Deno.test("runFinishedLines() shows a failed run as failed", () => {
  const lines = runFinishedLines(
    {
      id: "abcdef0123456789",
      trigger: "cli",
      mode: "sync",
      status: "failed",
      started_at: new Date(NOW),
      finished_at: new Date(NOW),
      summary: { refreshed: 1, failed: 0 },
    },
    new Map(),
    plain,
  );
  assert.match(lines[0]!, /cli\s+run abcdef01 {2}failed · refreshed 1 · failed 0$/);
});

Deno.test("connectionTable() prints one aligned line per connection", () => {
  const table = connectionTable(
    [
      {
        auth_settings_id: "a",
        mall_id: "demodead",
        row_state: "ok",
        status: "reconnect_required",
        access_expires_at: new Date(NOW + 5 * 60_000),
        refresh_expires_at: new Date(NOW + 14 * 86_400_000),
        last_refreshed_at: null,
        last_error_code: "CAFE24_INVALID_GRANT",
        consecutive_failures: 1,
        next_attempt_at: null,
        refreshing_now: false,
      },
      {
        auth_settings_id: "b",
        mall_id: null,
        row_state: "malformed",
        status: "active",
        access_expires_at: null,
        refresh_expires_at: null,
        last_refreshed_at: null,
        last_error_code: null,
        consecutive_failures: 0,
        next_attempt_at: null,
        refreshing_now: null,
      },
    ],
    NOW,
    plain,
  ).split("\n");
  assert.equal(table.length, 3);
  assert.match(
    table[1]!,
    /^ {2}demodead\s+reconnect_required\s+in 5m\s+in 14d\s+-\s+1\s+-\s+CAFE24_INVALID_GRANT$/,
  );
  assert.match(table[2]!, /^ {2}\(none\)\s+malformed/);
  assert.equal(table[1]!.indexOf("in 5m"), table[0]!.indexOf("access expires"));
});

Deno.test("orderedSummary() restores the function's key order after a jsonb round trip", () => {
  const fromJsonb = {
    failed: 0,
    run_id: "r",
    scanned: 1,
    skipped: 0,
    eligible: 1,
    due: 1,
    failures: [],
    refreshed: 1,
    remaining: 0,
    duration_ms: 5,
    skipped_reasons: { leased: 0, not_due: 0, no_cafe24: 0 },
  };
  const ordered = orderedSummary(fromJsonb);
  assert.deepEqual(Object.keys(ordered), [
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
  ]);
  assert.deepEqual(Object.keys(ordered.skipped_reasons as object), [
    "no_cafe24",
    "not_due",
    "leased",
  ]);
});
