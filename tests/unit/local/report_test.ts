import assert from "node:assert/strict";
import {
  type ConnectionRow,
  connectionTable,
  currentProblem,
  eventLines,
  explainCronFailure,
  explainNetFailure,
  FAILURE_ADVICE,
  failureAdvice,
  idleTickLine,
  orderedSummary,
  paint,
  relativeTime,
  runFinishedLines,
  type RunRow,
  SCREEN_WIDTH,
  stopLines,
  tableKey,
  visibleLength,
  wrapParts,
} from "../../../local/stack/report.ts";
import { REFRESH_FAILURES } from "../../../supabase/functions/_shared/platform/errors.ts";
import { RUN_SUMMARY_KEYS } from "../../../supabase/functions/_shared/refresh/summary.ts";

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const plain = paint(false);
const coloured = paint(true);
const WHERE = { envFile: "/work/app/.env", log: ".local/functions.log" };

function assertFits(lines: string[]): void {
  for (const line of lines) {
    assert.ok(visibleLength(line) <= SCREEN_WIDTH, `${visibleLength(line)} columns: ${line}`);
  }
}

function connection(overrides: Partial<ConnectionRow>): ConnectionRow {
  return {
    auth_settings_id: crypto.randomUUID(),
    mall_id: "demomall",
    row_state: "ok",
    status: "active",
    access_expires_at: new Date(NOW + 90 * 60_000),
    refresh_expires_at: new Date(NOW + 14 * 86_400_000),
    last_refreshed_at: new Date(NOW - 30 * 60_000),
    last_error_code: null,
    consecutive_failures: 0,
    next_attempt_at: null,
    refreshing_now: false,
    ...overrides,
  };
}

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

Deno.test("runFinishedLines() summarizes a run, names each failure's mall and says what to do", () => {
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
      failures: [{ id: "conn-1", reason: "CAFE24_INVALID_GRANT: rejected (HTTP 400)" }],
      skipped_reasons: { not_due: 3, malformed: 1, leased: 0 },
    },
  };
  const lines = runFinishedLines(run, new Map([["conn-1", "demodead"]]), plain);
  assert.match(lines[0]!, /cron\s+run 01234567 {2}due 4 · refreshed 3 · failed 1$/);
  assert.match(lines[1]!, /^ {10}skipped 4 \(not_due 3, malformed 1\) · 96 ms$/);
  const failure = lines.findIndex((line) => /✗ demodead\s+CAFE24_INVALID_GRANT$/.test(line));
  assert.ok(failure > 0, lines.join("\n"));
  assert.match(lines[failure + 1]!, /→ the mall's owner must connect it again/);
  assertFits(lines);
  assertFits(runFinishedLines(run, new Map([["conn-1", "demodead"]]), coloured));
});

Deno.test("runFinishedLines() keeps a busy run within 80 columns", () => {
  const lines = runFinishedLines(
    {
      id: "0123456789abcdef",
      trigger: "manual",
      mode: "sync",
      status: "finished",
      started_at: new Date(NOW),
      finished_at: new Date(NOW),
      summary: {
        due: 12345,
        refreshed: 12000,
        failed: 300,
        skipped: 99999,
        remaining: 45,
        duration_ms: 99999,
        failures: [{ id: "c", reason: "CAFE24_CLIENT_AUTH_FAILED: Cafe24 rejected the client" }],
        skipped_reasons: {
          no_cafe24: 1000,
          missing_keys: 2000,
          malformed: 3000,
          not_due: 40000,
          leased: 5,
          backing_off: 6,
          reconnect_required: 7000,
          out_of_time: 45,
        },
      },
    },
    new Map([["c", "abcdefghijklmnop"]]),
    coloured,
  );
  assert.ok(lines.length > 3);
  assertFits(lines);
  assert.match(lines.join("\n"), /… 299 more failures/);
});

Deno.test("runFinishedLines() shows a failed run as failed, with what to do", () => {
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
    { log: ".local/functions.log" },
  );
  assert.match(lines[0]!, /cli\s+run abcdef01 {2}failed · refreshed 1 · failed 0$/);
  assert.match(lines.slice(1).join(" "), /→ .*\.local\/functions\.log/);
  assertFits(lines);
});

Deno.test("every refresh failure code has advice, and the advice is found from a reason", () => {
  assert.deepEqual(Object.keys(FAILURE_ADVICE).sort(), Object.keys(REFRESH_FAILURES).sort());
  assert.match(failureAdvice("CAFE24_CLIENT_AUTH_FAILED: x (y)")!, /CAFE24_CLIENT_ID/);
  assert.equal(failureAdvice("SOMETHING_ELSE: x"), null);
});

Deno.test("connectionTable() prints one aligned line per connection within 80 columns", () => {
  const rows = [
    connection({
      mall_id: "demodead",
      status: "reconnect_required",
      access_expires_at: new Date(NOW + 5 * 60_000),
      last_refreshed_at: null,
      last_error_code: "CAFE24_INVALID_GRANT",
      consecutive_failures: 1,
    }),
    // connection_status says 'malformed' in status for such a row.
    connection({
      mall_id: null,
      row_state: "malformed",
      status: "malformed",
      access_expires_at: null,
    }),
  ];
  const table = connectionTable(rows, NOW, plain).split("\n");
  assert.equal(table.length, 3);
  assert.match(table[0]!, /^ {2}mall\s+status\s+access\s+refreshed\s+problem$/);
  assert.match(table[1]!, /^ {2}demodead\s+reconnect_required\s+in 5m\s+-\s+CAFE24_INVALID_GRANT$/);
  assert.match(table[2]!, /^ {2}\(none\)\s+malformed/);
  assert.equal(table[1]!.indexOf("in 5m"), table[0]!.indexOf("access"));
  assertFits(table);
});

Deno.test("connectionTable() fits 80 columns with the longest mall ids, statuses and codes", () => {
  const rows = [
    connection({
      mall_id: "abcdefghijklmnop",
      status: "reconnect_required",
      access_expires_at: new Date(NOW - 10 * 86_400_000),
      last_refreshed_at: new Date(NOW - 47 * 60 * 60_000),
      last_error_code: "CAFE24_ANSWER_LOST",
    }),
    connection({
      mall_id: "ponmlkjihgfedcba",
      access_expires_at: new Date(NOW - 47 * 60 * 60_000),
      last_error_code: "CAFE24_CLIENT_AUTH_FAILED",
      consecutive_failures: 12,
      next_attempt_at: new Date(NOW + 29 * 60_000),
    }),
  ];
  for (const p of [plain, coloured]) assertFits(connectionTable(rows, NOW, p).split("\n"));
  assert.match(connectionTable(rows, NOW, plain), / CAFE24_CLIENT_AUTH_…$/m);
});

Deno.test("connectionTable() shows a disconnected connection as disconnected, and by whom", () => {
  const table = connectionTable(
    [
      connection({
        mall_id: "demogone",
        row_state: "missing_keys",
        status: "disconnected",
        access_expires_at: null,
        last_error_code: "DISCONNECTED_BY_USER",
      }),
    ],
    NOW,
    plain,
  ).split("\n");
  assert.match(table[1]!, /^ {2}demogone\s+disconnected\s+-\s+30m ago\s+by user$/);
  assert.doesNotMatch(table[1]!, /missing_keys|no mall_id/);
});

Deno.test("currentProblem() hides the error of a connection that has recovered", () => {
  // A reconnect (or a later success) leaves last_error_code as history; the row is healthy.
  assert.equal(
    currentProblem(connection({ last_error_code: "CAFE24_INVALID_GRANT" }), NOW),
    "",
  );
  assert.equal(
    currentProblem(
      connection({ status: "reconnect_required", last_error_code: "CAFE24_INVALID_GRANT" }),
      NOW,
    ),
    "CAFE24_INVALID_GRANT",
  );
  assert.equal(
    currentProblem(
      connection({
        last_error_code: "CAFE24_TIMEOUT",
        consecutive_failures: 2,
        next_attempt_at: new Date(NOW + 4 * 60_000),
      }),
      NOW,
    ),
    "CAFE24_TIMEOUT ×2, retry in 4m",
  );
  assert.equal(
    currentProblem(connection({ refresh_expires_at: new Date(NOW + 2 * 86_400_000) }), NOW),
    "refresh token ends in 2d",
  );
});

Deno.test("explainNetFailure() says what a pg_net failure means and what to do", () => {
  const failure = (status: number | null, content: unknown, extra = {}) =>
    explainNetFailure({
      id: "4",
      status_code: status,
      content: content === null ? null : JSON.stringify(content),
      timed_out: false,
      error_msg: null,
      ...extra,
    }, WHERE);

  const unauthorized = failure(401, { error: "UNAUTHORIZED" });
  assert.equal(unauthorized.what, "pg_net request 4 HTTP 401 UNAUTHORIZED");
  assert.match(unauthorized.advice, /cafe24_cron_secret does not match the functions' CRON_SECRET/);

  assert.match(
    failure(500, { error: "CRON_SECRET_NOT_CONFIGURED" }).advice,
    /set it in \/work\/app\/\.env/,
  );
  assert.match(
    failure(500, { error: "CONFIG_MISSING", missing: ["CAFE24_CLIENT_ID"] }).advice,
    /set CAFE24_CLIENT_ID in \/work\/app\/\.env/,
  );
  assert.match(failure(500, { error: "REFRESH_RUN_FAILED" }).advice, /functions\.log/);
  assert.match(failure(404, null).advice, /not served/);
  assert.match(failure(null, null, { timed_out: true }).what, /timed out/);
  const refused = failure(null, null, { error_msg: "Connection refused" });
  assert.match(refused.what, /Connection refused/);
  assert.match(refused.advice, /cafe24_project_url/);

  const lines = eventLines(new Date(NOW), unauthorized.what, unauthorized.advice, coloured);
  assert.ok(lines.length >= 2);
  assertFits(lines);
});

Deno.test("explainCronFailure() points at the SQL to run", () => {
  const { what, advice } = explainCronFailure("function cafe24_private.x() does not exist");
  assert.match(what, /failed: function/);
  assert.match(advice, /select cafe24_private\.invoke_cafe24_refresh\(\)/);
});

Deno.test("wrapParts() starts a new indented line before passing the width", () => {
  const lines = wrapParts("head  ", ["aaaa", "bbbb", "cccc"], { width: 16, indent: "  " });
  assert.deepEqual(lines, ["head  aaaa", "  bbbb · cccc"]);
  for (const line of lines) assert.ok(line.length <= 16);
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
    warnings: [],
    skipped_reasons: { leased: 0, not_due: 0, no_cafe24: 0 },
  };
  const ordered = orderedSummary(fromJsonb);
  assert.deepEqual(Object.keys(ordered), [...RUN_SUMMARY_KEYS]);
  assert.deepEqual(Object.keys(ordered.skipped_reasons as object), [
    "no_cafe24",
    "not_due",
    "leased",
  ]);
});

Deno.test("an idle tick is one short line; the table is due only when what it says changes", () => {
  const line = idleTickLine(new Date(NOW), plain);
  assert.match(line, /^\d\d:\d\d:\d\d {2}cron {3}tick\s+nothing due$/);
  assertFits([line, idleTickLine(new Date(NOW), coloured)]);
  const id = crypto.randomUUID();
  const before = [connection({ auth_settings_id: id })];
  // Time passing (relative times), a refresh and a refresh in flight change nothing shown.
  assert.equal(
    tableKey([{ ...before[0]!, last_refreshed_at: new Date(NOW), refreshing_now: true }]),
    tableKey(before),
  );
  assert.notEqual(
    tableKey([{ ...before[0]!, status: "reconnect_required", last_error_code: "X" }]),
    tableKey(before),
  );
  assert.notEqual(tableKey([...before, connection({})]), tableKey(before));
});

Deno.test("stopLines() name the pg_net worker in use and where the database stays", () => {
  const standIn = stopLines({
    sandbox: true,
    netWorker: "stand-in",
    pgDir: "/var/tmp/cafe24-connector-0123456789ab/postgres",
    kb: 41 * 1024,
  });
  assert.equal(standIn[0], "stopped: functions, Cafe24 sandbox, pg_net stand-in, PostgreSQL");
  assert.deepEqual(standIn.slice(1), [
    "kept: the database (41 MB), until npm start -- --reset removes it:",
    "  /var/tmp/cafe24-connector-0123456789ab/postgres",
  ]);
  assertFits(standIn);
  const real = stopLines({
    sandbox: false,
    netWorker: "pg_net",
    pgDir: ".local/postgres",
    kb: null,
  });
  assert.equal(real[0], "stopped: functions, PostgreSQL with the real pg_net");
  assert.ok(!real.join(" ").includes("stand-in"));
});
