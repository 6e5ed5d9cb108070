import assert from "node:assert/strict";
import {
  countUnauthenticated,
  createUnauthenticatedCounter,
  UNAUTHENTICATED_LOG_INTERVAL_MS,
} from "../../../supabase/functions/_shared/platform/log.ts";

/** A counter on a hand-driven clock with hand-fired timers; `lines` is what it logged. */
function harness(intervalMs = 60_000) {
  let nowMs = Date.parse("2026-12-01T00:00:00Z");
  const timers: { atMs: number; fire: () => void; cancelled: boolean }[] = [];
  const lines: Record<string, unknown>[] = [];
  const counter = createUnauthenticatedCounter({
    intervalMs,
    now: () => nowMs,
    setTimer: (fire, ms) => {
      const timer = { atMs: nowMs + ms, fire, cancelled: false };
      timers.push(timer);
      return () => {
        timer.cancelled = true;
      };
    },
    emit: (fields) => lines.push(fields),
  });
  /** Moves the clock and fires the timers that are due. */
  const advance = (ms: number) => {
    nowMs += ms;
    for (const timer of timers.filter((t) => !t.cancelled && t.atMs <= nowMs)) {
      timer.cancelled = true;
      timer.fire();
    }
  };
  const pendingTimers = () => timers.filter((t) => !t.cancelled).length;
  return { counter, lines, advance, pendingTimers, at: () => new Date(nowMs).toISOString() };
}

Deno.test("the first unauthenticated request after a quiet interval is logged at once", () => {
  const { counter, lines, at } = harness();
  const since = at();
  counter.count("cafe24-refresh", "wrong_cron_secret");
  assert.deepEqual(lines, [{
    function: "cafe24-refresh",
    count: 1,
    reasons: { wrong_cron_secret: 1 },
    since,
    interval_s: 60,
  }]);
});

Deno.test("a flood within the interval is one line when the interval ends, not one per request", () => {
  const { counter, lines, advance, pendingTimers } = harness();
  counter.count("cafe24-refresh", "wrong_cron_secret");
  for (let i = 0; i < 1_000; i++) {
    advance(10);
    counter.count("cafe24-refresh", i % 2 === 0 ? "invalid_jwt" : "wrong_cron_secret");
  }
  assert.equal(lines.length, 1, "still only the first line");
  assert.equal(pendingTimers(), 1, "one timer for the whole interval");
  advance(60_000 - 10_000 - 1);
  assert.equal(lines.length, 1, "not before the interval is over");
  advance(1);
  assert.equal(lines.length, 2);
  assert.equal(lines[1]!.count, 1_000);
  assert.deepEqual(lines[1]!.reasons, { invalid_jwt: 500, wrong_cron_secret: 500 });
  assert.equal(pendingTimers(), 0);
});

Deno.test("lines are at least one interval apart, however the requests fall", () => {
  const { counter, lines, advance } = harness();
  const emittedAt: number[] = [];
  let clock = 0;
  const tick = (ms: number) => {
    const before = lines.length;
    advance(ms);
    clock += ms;
    if (lines.length > before) emittedAt.push(clock);
  };
  for (let i = 0; i < 500; i++) {
    const before = lines.length;
    counter.count("cafe24-callback", "STATE_INVALID");
    if (lines.length > before) emittedAt.push(clock);
    tick(i % 7 === 0 ? 13_000 : 1_700);
  }
  tick(120_000);
  assert.ok(emittedAt.length > 5);
  for (let i = 1; i < emittedAt.length; i++) {
    assert.ok(emittedAt[i]! - emittedAt[i - 1]! >= 60_000, `lines ${i - 1} and ${i}`);
  }
  const total = lines.reduce((sum, line) => sum + (line.count as number), 0);
  assert.equal(total, 500, "every request is counted exactly once");
});

Deno.test("each function has its own tally and its own line", () => {
  const { counter, lines } = harness();
  counter.count("cafe24-refresh", "no_credentials");
  counter.count("cafe24-callback", "STATE_INVALID");
  assert.deepEqual(lines.map((line) => [line.function, line.count]), [
    ["cafe24-refresh", 1],
    ["cafe24-callback", 1],
  ]);
});

Deno.test("after a quiet interval the next request is logged at once again", () => {
  const { counter, lines, advance } = harness();
  counter.count("cafe24-refresh", "wrong_cron_secret");
  advance(60_000);
  counter.count("cafe24-refresh", "wrong_cron_secret");
  assert.equal(lines.length, 2);
  assert.equal(lines[1]!.count, 1);
});

Deno.test("flush() reports what is pending and cancels the timer; nothing pending, no line", () => {
  const { counter, lines, advance, pendingTimers } = harness();
  counter.flush();
  assert.equal(lines.length, 0);
  counter.count("cafe24-authorize", "invalid_jwt");
  counter.count("cafe24-authorize", "invalid_jwt");
  assert.equal(pendingTimers(), 1);
  counter.flush();
  assert.equal(lines.length, 2);
  assert.equal(lines[1]!.count, 1);
  assert.equal(pendingTimers(), 0);
  advance(120_000);
  assert.equal(lines.length, 2);
});

Deno.test("countUnauthenticated() logs one warn line through the shared counter", () => {
  assert.equal(UNAUTHENTICATED_LOG_INTERVAL_MS, 60_000);
  const logged: string[] = [];
  const warn = console.warn;
  console.warn = (line: string) => logged.push(line);
  try {
    // A function name of its own: the module's counter is shared by everything in this process.
    countUnauthenticated("log-test-function", "wrong_cron_secret");
  } finally {
    console.warn = warn;
  }
  assert.equal(logged.length, 1);
  const line = JSON.parse(logged[0]!);
  assert.equal(line.level, "warn");
  assert.equal(line.event, "unauthenticated_requests");
  assert.equal(line.function, "log-test-function");
  assert.equal(line.count, 1);
});
