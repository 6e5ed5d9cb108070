/**
 * Nothing is lost under faults. A few hundred connections are refreshed while the
 * sandbox injects seeded random faults (5xx, 429 with and without Retry-After, hangs past the
 * request timeout, HTML error pages, malformed 200s, connection resets), four invocations overlap
 * across two function processes next to user-triggered single-mall refreshes, one process is
 * killed with SIGKILL mid-run and PostgreSQL restarts mid-run. Then the faults stop and runs go on
 * until nothing is left to do. Every assertion comes from a record: the sandbox's counters and
 * its refresh log (what "Cafe24" saw and when), and the database (rows, run history, and an
 * audit of every next_attempt_at the refresher wrote).
 *
 * Time. Backoff pushes retries one to thirty minutes out, and a killed worker's lease lasts the
 * request timeout plus a minute. Instead of waiting, the test keeps a simulated clock that runs
 * ahead of the real one and, between waves, moves `next_attempt_at` (and, while no invocation is
 * running, `lease_expires_at`) to now() ONLY for rows whose recorded value has passed that
 * simulated clock: exactly what the passing of time would do, nothing earlier. The product code
 * and SQL are untouched; the audit records both the refresher's and the driver's writes, so
 * "backoff honoured" is checked against what was in the database when each request arrived.
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import type { FaultKind, RefreshLogEntry } from "../../local/cafe24_sandbox.ts";
import { mulberry32 } from "../../local/cafe24_sandbox/util.ts";
import type { FunctionsServer } from "../../local/functions/server.ts";
import { CRON_SECRET, openStored, type RefreshStack, startRefreshStack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";
import {
  BACKOFF_BASE_MS,
  BACKOFF_MAX_MS,
} from "../../supabase/functions/_shared/refresh/policy.ts";

const SEED = 20261125;
const MALLS = 300;
const REQUEST_TIMEOUT_MS = 1_500;
const RETRY_AFTER_SECONDS = 120;
/** Clock skew allowed between the sandbox (this process) and PostgreSQL (same machine). */
const CLOCK_TOLERANCE_MS = 50;
const FAULTY_WAVES = 3;
const MAX_QUIET_ROUNDS = 40;
const TEST_DEADLINE_MS = 150_000;

const FAULT_PROBABILITIES: Record<FaultKind, number> = {
  server_error: 0.05,
  rate_limited: 0.04,
  rate_limited_retry_after: 0.04,
  hang: 0.03,
  html_error: 0.04,
  malformed_200: 0.05,
  reset: 0.04,
};

interface Invocation {
  label: string;
  status: number;
  body: Record<string, unknown> | null;
}

/** POST cafe24-refresh on one process; never throws (a killed process answers nothing). */
async function invoke(
  server: FunctionsServer,
  label: string,
  query: Record<string, string> = {},
  headers: Record<string, string> = {},
): Promise<Invocation> {
  const url = new URL(`${server.url}/cafe24-refresh`);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 60_000);
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "x-cron-secret": CRON_SECRET, ...headers },
      signal: abort.signal,
    });
    const text = await response.text();
    let body: Record<string, unknown> | null = null;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: status says enough.
    }
    return { label, status: response.status, body };
  } catch {
    return { label, status: 0, body: null };
  } finally {
    clearTimeout(timer);
  }
}

/** The test's own record of every next_attempt_at written, by whom it cannot tell, and when. */
async function installAttemptAudit(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`
    create schema fault_test;
    create table fault_test.next_attempts (
      seq bigserial primary key,
      auth_settings_id uuid not null,
      next_attempt_at timestamptz,
      is_failure boolean not null,
      last_error_code text,
      consecutive_failures integer not null,
      recorded_at timestamptz not null default clock_timestamp()
    );
    create function fault_test.record_next_attempt() returns trigger
    language plpgsql as $$
    begin
      insert into fault_test.next_attempts
        (auth_settings_id, next_attempt_at, is_failure, last_error_code, consecutive_failures)
      values (new.auth_settings_id, new.next_attempt_at,
        new.last_error_at is distinct from old.last_error_at, new.last_error_code,
        new.consecutive_failures);
      return null;
    end $$;
    create trigger record_next_attempt
      after update on cafe24_private.connections
      for each row when (old.next_attempt_at is distinct from new.next_attempt_at)
      execute function fault_test.record_next_attempt();
  `).simple();
}

interface Clock {
  /** How far the simulated clock runs ahead of the real one. */
  aheadMs: number;
}

/**
 * Lets simulated time pass: rows whose recorded next_attempt_at (and, with `leases`, whose
 * lease) has passed the simulated clock become claimable now. Leases are only ever moved while no
 * invocation is running, so every lease moved is an orphan (its holder was killed, or its run
 * ended without being able to release it).
 */
async function letTimePass(
  sql: postgres.Sql,
  clock: Clock,
  stepMs: number,
  leases: boolean,
): Promise<{ backoffs: number; leases: number }> {
  clock.aheadMs += stepMs;
  const ahead = `${clock.aheadMs} milliseconds`;
  const backoffs = await sql`
    update cafe24_private.connections set next_attempt_at = now()
    where next_attempt_at > now() and next_attempt_at <= now() + ${ahead}::interval`;
  let leasesMoved = 0;
  if (leases) {
    const moved = await sql`
      update cafe24_private.connections set lease_expires_at = now()
      where lease_expires_at > now() and lease_expires_at <= now() + ${ahead}::interval`;
    leasesMoved = moved.count;
  }
  return { backoffs: backoffs.count, leases: leasesMoved };
}

Deno.test("fault injection: nothing is lost or refreshed twice under faults, kills and restarts", async () => {
  const startedAt = Date.now();
  const random = mulberry32(SEED);
  const stack: RefreshStack = await startRefreshStack({
    env: {
      CAFE24_REFRESH_CONCURRENCY: "4",
      CAFE24_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      CAFE24_MAX_CONNECTIONS_PER_RUN: "5000",
      // Runs as long as their work, so that the kill and the restart land in the middle of one.
      CAFE24_RUN_CPU_BUDGET_MS: "600000",
    },
    sandbox: { seed: SEED, commitOnClientAbort: true },
  });
  const { db, sandbox } = stack;
  try {
    // --- Seed: MALLS connections, all due, tokens issued by the sandbox --------------------
    const malls = Array.from({ length: MALLS }, (_, i) => `fault${String(i).padStart(3, "0")}`);
    const values = malls.map((mall) => ({
      user_id: crypto.randomUUID(),
      providers: {
        cafe24: { mall_id: mall, refresh_token: sandbox.issueTokens(mall).refreshToken },
      },
    }));
    await db.sql`insert into auth_settings ${db.sql(values as never)}`;
    const idRows = await db.sql<{ id: string; mall: string }[]>`
      select auth_settings_id as id, mall_id as mall from cafe24_private.connections
      where mall_id like 'fault%'`;
    const idOf = new Map(idRows.map((r) => [r.mall, r.id]));
    const mallOf = new Map(idRows.map((r) => [r.id, r.mall]));
    assert.equal(idOf.size, MALLS);
    await installAttemptAudit(db.sql);
    sandbox.resetCounters();

    const survivor = stack.functions;
    const victim = await stack.startFunctions();
    const clock: Clock = { aheadMs: 0 };
    const invocations: Invocation[] = [];
    const pick = () => malls[Math.floor(random() * malls.length)]!;

    // --- Wave 1, faults on: 4 overlapping invocations on two processes, user refreshes, a
    // SIGKILL and a PostgreSQL restart, each in the middle of the work -------------------------
    sandbox.setFaults("*", {
      latencyMs: 250,
      jitterMs: 200,
      probabilities: FAULT_PROBABILITIES,
      retryAfterSeconds: RETRY_AFTER_SECONDS,
      hangMs: REQUEST_TIMEOUT_MS + 2_500,
    });
    const wave1StartedMs = Date.now();
    // What the sandbox answered since a point in its request log: the runs' progress.
    const lastSeq = () => sandbox.requestLog().at(-1)?.seq ?? 0;
    const answeredSince = (seq: number) =>
      sandbox.requestLog(seq).filter((e) => e.kind === "token_refresh").length;
    const wave1Seq = lastSeq();
    // The victim's runs answer 202 at once with their run ids: the runs a kill interrupts.
    const victimAccepted = await Promise.all([
      invoke(victim, "victim-1", {}, { prefer: "respond-async" }),
      invoke(victim, "victim-2", {}, { prefer: "respond-async" }),
    ]);
    const victimRunIds = victimAccepted.map((a) => String(a.body?.run_id));
    for (const accepted of victimAccepted) assert.equal(accepted.status, 202);
    // The rows the victim holds with a request out: whatever it holds at the kill may have its
    // answer lost.
    const victimHolds = () =>
      db.sql<{ id: string; mall: string }[]>`
        select auth_settings_id as id, mall_id as mall from cafe24_private.connections
        where lease_id = any(${victimRunIds}::uuid[]) and in_flight_since is not null`;
    const wave1 = [invoke(survivor, "survivor-1"), invoke(survivor, "survivor-2")];
    // User refreshes, the kill and the restart each land while the runs are under way: after
    // the sandbox has answered some of their requests, long before all 300 are done.
    await waitFor("the runs' first answers", () => answeredSince(wave1Seq) >= 8);
    wave1.push(invoke(survivor, "user-1", { mall_id: pick(), force: "true" }));
    await waitFor(
      "the victim to hold refreshes in flight, a few dozen answers into the wave",
      async () => answeredSince(wave1Seq) >= 24 && (await victimHolds()).length > 0,
    );
    wave1.push(invoke(survivor, "user-2", { mall_id: pick(), force: "true" }));
    const killedAtMs = Date.now();
    await victim.kill();
    const victimInFlight = await victimHolds();
    const killSeq = lastSeq();
    await waitFor(
      "the survivors' runs to go on after the kill",
      () => answeredSince(killSeq) >= 16,
    );
    const restartStartedMs = Date.now();
    await db.restart();
    const restartEndedMs = Date.now();
    wave1.push(invoke(survivor, "user-3", { mall_id: pick(), force: "true" }));
    invocations.push(...await Promise.all(wave1));
    const wave1EndedMs = Date.now();

    // --- Waves 2..: faults still on, a replacement process, time moving on ----------------
    const replacement = await stack.startFunctions();
    let drivenBackoffs = 0;
    let drivenLeases = 0;
    for (let wave = 0; wave < FAULTY_WAVES; wave++) {
      const moved = await letTimePass(db.sql, clock, 5 * 60_000, true);
      drivenBackoffs += moved.backoffs;
      drivenLeases += moved.leases;
      invocations.push(
        ...await Promise.all([
          invoke(survivor, `wave${wave + 2}-a1`),
          invoke(survivor, `wave${wave + 2}-a2`),
          invoke(replacement, `wave${wave + 2}-b1`),
          invoke(replacement, `wave${wave + 2}-b2`),
          invoke(replacement, `wave${wave + 2}-user`, { mall_id: pick(), force: "true" }),
        ]),
      );
    }

    // --- Faults stop; runs go on until quiet ---------------------------------------------
    sandbox.clearFaults();
    sandbox.setFaults("*", { latencyMs: 20, jitterMs: 10 });
    // Quiet: no active connection is due or held. (One that a forced user refresh failed on
    // may keep its backoff until it is next due: that is not work left.)
    const workLeft = async () => {
      const [row] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from cafe24_private.connections
        where row_state = 'ok' and status = 'active'
          and (lease_id is not null or due_at <= now() + interval '30 minutes')`;
      return row!.n;
    };
    let quietRounds = 0;
    while (await workLeft() > 0) {
      assert.ok(quietRounds < MAX_QUIET_ROUNDS, "runs never became quiet");
      assert.ok(Date.now() - startedAt < TEST_DEADLINE_MS, "ran out of time waiting for quiet");
      const moved = await letTimePass(db.sql, clock, 10 * 60_000, true);
      drivenBackoffs += moved.backoffs;
      drivenLeases += moved.leases;
      invocations.push(await invoke(survivor, `quiet-${quietRounds}`));
      quietRounds++;
    }

    // --- The records ---------------------------------------------------------------------
    const counters = sandbox.counters();
    const log: RefreshLogEntry[] = sandbox.refreshLog();
    const storedRows = await db.sql<{
      id: string;
      mall: string;
      token: string;
      status: string;
      last_error_code: string | null;
      last_refreshed_at: Date | null;
      due_at: Date;
      lease_id: string | null;
    }[]>`
      select c.auth_settings_id as id, c.mall_id as mall,
        c.refresh_token as token, c.status, c.last_error_code,
        c.last_refreshed_at, c.due_at, c.lease_id
      from cafe24_private.connections c join auth_settings s on s.id = c.auth_settings_id
      where c.mall_id like 'fault%'`;
    // Stored sealed: opened with the stack's ring to compare with Cafe24's live tokens.
    const rows = await Promise.all(storedRows.map(async (row) => ({
      ...row,
      token: await openStored(db, row.id, "refresh_token", row.token),
    })));
    const audit = await db.sql<{
      id: string;
      next_attempt_at: Date | null;
      is_failure: boolean;
      last_error_code: string | null;
      consecutive_failures: number;
      recorded_at: Date;
    }[]>`
      select auth_settings_id as id, next_attempt_at, is_failure, last_error_code,
        consecutive_failures, recorded_at
      from fault_test.next_attempts order by recorded_at, seq`;
    const storeFailed = new Set(
      [...survivor.output, ...victim.output, ...replacement.output]
        .filter((line) => line.includes('"cafe24_refresh_store_failed"'))
        .map((line) => String(JSON.parse(line).connection_id)),
    );

    // Provably lost: the pair Cafe24 issued never reached the database. Evidence must exist —
    // the sandbox committed a rotation after its client had gone, the victim held the row when
    // it was killed, or the function logged that it could not store the pair.
    const victimRows = new Set(victimInFlight.map((r) => r.mall));
    const lostBySandbox = new Set(log.filter((e) => e.outcome === "lost").map((e) => e.mallId));
    const lost = rows.filter((r) => r.token !== sandbox.liveRefreshToken(r.mall));
    for (const row of lost) {
      assert.ok(
        victimRows.has(row.mall) || lostBySandbox.has(row.mall) || storeFailed.has(row.id),
        `${row.mall}: its stored token is not the live one, and no record shows a lost answer`,
      );
      assert.equal(row.status, "reconnect_required", row.mall);
      assert.equal(row.last_error_code, "CAFE24_ANSWER_LOST", row.mall);
    }
    const lostMalls = new Set(lost.map((r) => r.mall));

    // Every other connection: refreshed, active, holding the sandbox's live token, at rest.
    for (const row of rows.filter((r) => !lostMalls.has(r.mall))) {
      assert.equal(row.token, sandbox.liveRefreshToken(row.mall), row.mall);
      assert.equal(row.status, "active", row.mall);
      assert.notEqual(row.last_refreshed_at, null, row.mall);
      assert.ok(row.due_at.getTime() > Date.now() + 30 * 60_000, `${row.mall}: still due`);
      assert.equal(row.lease_id, null, row.mall);
    }

    // Never two refreshes of one mall at once; a dead token presented only for a lost mall,
    // and after its rejection nothing more was sent for it.
    assert.equal(counters.concurrentRefreshViolations, 0);
    assert.equal(counters.maxConcurrentRefreshesPerMall, 1);
    const deadPresentations = log.filter((e) => e.presented === "rotated_out");
    for (const entry of deadPresentations) {
      assert.ok(lostMalls.has(entry.mallId), `${entry.mallId}: a dead refresh token was reused`);
    }
    for (const [mall, c] of Object.entries(counters.byMall)) {
      if (!lostMalls.has(mall)) assert.equal(c.deadTokenReuses, 0, mall);
    }
    for (const mall of lostMalls) {
      const entries = log.filter((e) => e.mallId === mall);
      const rejected = entries.findIndex((e) => e.outcome === "invalid_grant");
      assert.ok(rejected >= 0, `${mall}: lost, but its dead token was never tried`);
      assert.equal(entries.length, rejected + 1, `${mall}: requests after reconnect_required`);
    }

    // Backoff honoured: no request for a mall before the next_attempt_at the database held for
    // it at that moment (the refresher's writes and the simulated clock's alike) …
    const auditById = new Map<string, (typeof audit)[number][]>();
    for (const a of audit) auditById.set(a.id, [...(auditById.get(a.id) ?? []), a]);
    let checkedRequests = 0;
    for (const entry of log) {
      const history = auditById.get(idOf.get(entry.mallId)!) ?? [];
      const before = history.filter((a) => a.recorded_at.getTime() < entry.receivedAtMs).at(-1);
      if (before === undefined || before.next_attempt_at === null) continue;
      checkedRequests++;
      assert.ok(
        entry.receivedAtMs >= before.next_attempt_at.getTime() - CLOCK_TOLERANCE_MS,
        `${entry.mallId}: request at ${new Date(entry.receivedAtMs).toISOString()} before its ` +
          `next attempt at ${before.next_attempt_at.toISOString()}`,
      );
    }
    // … and each recorded failure pushed the next attempt out by the policy's backoff, and at
    // least by Retry-After when the answer carried one, counted from the failure itself. The
    // failure came after the arrival of the mall's last request before the write; the write may
    // land seconds later (retried through the PostgreSQL restart, or queued on a busy machine),
    // so the time it was recorded says nothing about when the backoff started.
    let retryAfterChecked = 0;
    for (const a of audit.filter((a) => a.is_failure && a.next_attempt_at !== null)) {
      const mall = mallOf.get(a.id)!;
      const request = log.filter((e) =>
        e.mallId === mall && e.receivedAtMs <= a.recorded_at.getTime()
      ).at(-1);
      assert.ok(request !== undefined, `${mall}: a failure recorded before any request was sent`);
      const waitMs = a.next_attempt_at!.getTime() - request.receivedAtMs;
      const step = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (a.consecutive_failures - 1));
      assert.ok(
        waitMs >= step / 2 - CLOCK_TOLERANCE_MS,
        `${mall}: next attempt ${waitMs} ms after the failed request, less than ${step / 2}`,
      );
      if (request.fault === "rate_limited_retry_after") {
        retryAfterChecked++;
        assert.ok(
          waitMs >= RETRY_AFTER_SECONDS * 1000 - CLOCK_TOLERANCE_MS,
          `${mall}: next attempt ${waitMs} ms after a Retry-After of ${RETRY_AFTER_SECONDS} s`,
        );
      }
    }

    // Every run is in the history. A run whose process was killed, or whose end could not be
    // written while PostgreSQL was down, stays "running" until the daily trim marks it abandoned
    // an hour later: let that hour pass on the simulated clock too.
    const unfinished = await db.sql<{ id: string; started_at: Date }[]>`
      select id, started_at from cafe24_private.refresh_runs where status = 'running'`;
    for (const run of unfinished) {
      assert.ok(
        victimRunIds.includes(run.id) || run.started_at.getTime() <= restartEndedMs,
        `run ${run.id} never finished, and neither the kill nor the restart explains it`,
      );
    }
    clock.aheadMs = Math.max(clock.aheadMs, 61 * 60_000);
    await db.sql`
      update cafe24_private.refresh_runs
      set started_at = started_at - ${`${clock.aheadMs} milliseconds`}::interval
      where status = 'running'`;
    await db.sql`select cafe24_private.trim_histories()`;
    const runs = await db.sql<{
      id: string;
      status: string;
      started_at: Date;
      finished_at: Date | null;
      summary: Record<string, number> | null;
    }[]>`select id, status, started_at, finished_at, summary from cafe24_private.refresh_runs`;
    const byStatus: Record<string, number> = {};
    for (const run of runs) {
      byStatus[run.status] = (byStatus[run.status] ?? 0) + 1;
      if (run.status === "finished") {
        const s = run.summary!;
        assert.equal(s.scanned, s.refreshed! + s.failed! + s.skipped!, `run ${run.id}`);
      } else if (run.status === "failed") {
        // A run that could not go on while PostgreSQL restarted.
        assert.ok(
          run.started_at.getTime() <= restartEndedMs &&
            run.finished_at!.getTime() >= restartStartedMs,
          `run ${run.id} failed outside the restart window`,
        );
      } else {
        assert.equal(run.status, "abandoned", `run ${run.id}`);
        assert.ok(unfinished.some((u) => u.id === run.id), `run ${run.id}`);
      }
    }
    assert.ok(
      invocations.every((i) => i.status === 200 || i.status === 500),
      "every call answered",
    );

    // --- Counts ----------------------------------------------------------------------------
    // A retry: a request for a mall whose previous request did not bring a new pair home.
    const previous = new Map<string, RefreshLogEntry>();
    let retries = 0;
    let recovered = 0;
    for (const e of log) {
      const before = previous.get(e.mallId);
      if (before !== undefined && before.outcome !== "issued") {
        retries++;
        if (e.outcome === "issued") recovered++;
      }
      previous.set(e.mallId, e);
    }
    const failedMalls = new Set(audit.filter((a) => a.is_failure).map((a) => mallOf.get(a.id)!));
    const restingAfterFailedForce = rows.filter((r) =>
      !lostMalls.has(r.mall) && previous.get(r.mall)?.outcome !== "issued"
    ).length;
    const outcomes: Record<string, number> = {};
    for (const e of log) outcomes[e.outcome] = (outcomes[e.outcome] ?? 0) + 1;
    const report = {
      seed: SEED,
      connections: MALLS,
      refresh_requests: log.length,
      retries,
      faults_injected: counters.faultsInjected,
      bucket_429s: counters.rateLimited,
      outcomes,
      connections_with_failures: failedMalls.size,
      recoveries: recovered,
      // A forced refresh that failed on a connection refreshed just before: tokens intact, it
      // retries when it is next due.
      resting_after_failed_forced_refresh: restingAfterFailedForce,
      lost_in_flight: {
        victim_rows_in_flight_at_kill: victimInFlight.length,
        answers_committed_after_client_left: counters.lostResponses,
        store_failed: storeFailed.size,
        connections_reconnect_required: lost.length,
        of_which_committed_after_client_left: lost.filter((r) => lostBySandbox.has(r.mall)).length,
        of_which_answered_to_the_killed_process: lost.filter((r) =>
          !lostBySandbox.has(r.mall) && victimRows.has(r.mall)
        ).length,
        of_which_store_failed: lost.filter((r) =>
          !lostBySandbox.has(r.mall) && !victimRows.has(r.mall) && storeFailed.has(r.id)
        ).length,
      },
      dead_token_presentations: deadPresentations.length,
      concurrent_refresh_violations: counters.concurrentRefreshViolations,
      runs: byStatus,
      invocations: invocations.length,
      invocations_failed_500: invocations.filter((i) => i.status === 500).map((i) => i.label),
      backoff_checks: { requests: checkedRequests, retry_after: retryAfterChecked },
      simulated_time_ahead_min: Math.round(clock.aheadMs / 60_000),
      time_driven: { backoffs: drivenBackoffs, leases: drivenLeases },
      wave1_ms: wave1EndedMs - wave1StartedMs,
      kill_at_ms: killedAtMs - wave1StartedMs,
      restart_at_ms: restartStartedMs - wave1StartedMs,
      restart_took_ms: restartEndedMs - restartStartedMs,
      quiet_rounds: quietRounds,
      elapsed_ms: Date.now() - startedAt,
    };
    console.log(`fault injection counts: ${JSON.stringify(report, null, 2)}`);

    // The scenario must have exercised what it claims to.
    for (const kind of Object.keys(FAULT_PROBABILITIES) as FaultKind[]) {
      assert.ok(counters.faultsInjected[kind] > 0, `no ${kind} fault was injected`);
    }
    assert.ok(victimInFlight.length > 0, "the kill hit no refresh in flight");
    assert.ok(
      runs.some((r) =>
        !victimRunIds.includes(r.id) && r.started_at.getTime() < restartStartedMs &&
        (r.finished_at === null || r.finished_at.getTime() > restartEndedMs)
      ),
      "the restart interrupted no run",
    );
    assert.ok(recovered > 0, "nothing recovered from a failure");
  } finally {
    await stack.stop();
  }
});
