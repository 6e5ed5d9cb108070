/**
 * A refresh run driven against a fake store, a fake clock and a scripted token endpoint: when it
 * stops claiming, what it does when a token request or a settle fails, and what it does when the
 * runtime announces the worker's end.
 */
import assert from "node:assert/strict";
import {
  beginRefreshRun,
  type RefreshDeps,
  type RunRequest,
  summaryIfNothingInScope,
} from "../../../supabase/functions/_shared/refresh/run.ts";
import { PROCESS_CPU_BUDGET_MS } from "../../../supabase/functions/_shared/refresh/cpu_share.ts";
import type { RunSummary } from "../../../supabase/functions/_shared/refresh/summary.ts";
import {
  BACKOFF_BASE_MS,
  CLIENT_AUTH_RETRY_MS,
} from "../../../supabase/functions/_shared/refresh/policy.ts";
import { withCapturedLogs } from "../../support/logs.ts";
import {
  censusOf,
  connection,
  FakeClock,
  FakeStore,
  newPair,
  SETTINGS,
  tokenEndpoint,
} from "./fakes.ts";

const REQUEST: RunRequest = {
  trigger: "cron",
  mode: "sync",
  force: false,
  mallId: null,
  userId: null,
};

/**
 * Deno.test with the run's log lines captured instead of printed: `logs` holds each line's JSON.
 */
function runTest(name: string, fn: (logs: Record<string, unknown>[]) => Promise<void>): void {
  Deno.test(name, () => withCapturedLogs(fn));
}

const malls = (n: number) => Array.from({ length: n }, (_, i) => connection(i + 1));

interface Harness {
  store: FakeStore;
  clock: FakeClock;
  endpoint: ReturnType<typeof tokenEndpoint>;
  deps: RefreshDeps;
}

function harness(
  store: FakeStore,
  options: {
    settings?: Partial<RefreshDeps["settings"]>;
    answer?: Parameters<typeof tokenEndpoint>[1];
    cost?: Parameters<typeof tokenEndpoint>[2];
    /** Another harness's clock: runs served by one process at once. */
    clock?: FakeClock;
  } = {},
): Harness {
  const clock = options.clock ?? new FakeClock();
  const endpoint = tokenEndpoint(clock, options.answer, options.cost);
  return {
    store,
    clock,
    endpoint,
    deps: {
      store,
      settings: {
        ...SETTINGS,
        app: { ...SETTINGS.app, fetch: endpoint.fetch },
        ...options.settings,
      },
      clock,
      random: () => 0,
    },
  };
}

async function run(h: Harness, request: Partial<RunRequest> = {}): Promise<RunSummary> {
  const started = await beginRefreshRun(h.deps, { ...REQUEST, ...request });
  return await started.execute();
}

/** Every connection claimed was settled or let go: nothing is left leased. */
function assertNothingLeased(store: FakeStore): void {
  const settled = new Set([
    ...store.stores.map((c) => c.id),
    ...store.failures.map((c) => c.id),
    ...store.released,
  ]);
  assert.deepEqual(store.claims.filter((id) => !settled.has(id)), []);
}

function assertBooksBalance(summary: RunSummary): void {
  assert.equal(summary.scanned, summary.refreshed + summary.failed + summary.skipped);
  const skipped = Object.values(summary.skipped_reasons).reduce((a, b) => a + b, 0);
  assert.equal(summary.skipped, skipped);
}

runTest(
  "a run refreshes every due connection, settling each and claiming the next in one call",
  async () => {
    const h = harness(new FakeStore(malls(5)));
    const summary = await run(h);
    assert.equal(summary.refreshed, 5);
    assert.equal(summary.remaining, 0);
    assert.equal(h.endpoint.asked.length, 5);
    // One claim alone per worker; every other connection came with a settle.
    assert.equal(h.store.stores.length, 5);
    assert.equal(h.store.stores.filter((s) => s.claimNext).length, 5);
    assert.deepEqual(h.store.finished.map((f) => f.status), ["finished"]);
    assert.deepEqual(h.store.finished[0]!.summary, summary);
    // The store gets what Cafe24 returned as instants with an offset, never Korea wall time.
    assert.equal(h.store.stores[0]!.tokens.expires_at, "2026-12-01T02:00:00.000Z");
    assertNothingLeased(h.store);
    assertBooksBalance(summary);
  },
);

runTest("the scope is recorded with the run, and later calls name only the run", async () => {
  const h = harness(new FakeStore(malls(1)));
  const summary = await run(h, { trigger: "manual", mallId: "shop0001" });
  assert.equal(h.store.runs.length, 1);
  assert.deepEqual(h.store.runs[0], {
    trigger: "manual",
    mode: "sync",
    scope: {
      refreshMarginMs: SETTINGS.refreshMarginMs,
      force: false,
      minTokenAgeMs: null,
      mallId: "shop0001",
      userId: null,
      policy: "eager",
      keepAliveWindowMs: SETTINGS.keepAliveWindowMs,
      tokenRequestWindowMs: 24 * 60 * 60_000,
      tickId: null,
    },
    leaseMs: SETTINGS.leaseMs,
  });
  assert.ok(h.store.stores.every((s) => s.runId === summary.run_id));
});

runTest("the run stops claiming at its cap and reports the rest as remaining", async () => {
  const h = harness(new FakeStore(malls(10)), { settings: { maxConnectionsPerRun: 4 } });
  const summary = await run(h);
  assert.equal(summary.refreshed, 4);
  assert.equal(h.store.claims.length, 4, "no connection is claimed beyond the cap");
  assert.equal(summary.remaining, 6);
  assert.equal(summary.skipped_reasons.run_limit, 6);
  assert.equal(summary.skipped_reasons.out_of_time, 0);
  assertNothingLeased(h.store);
  assertBooksBalance(summary);
});

runTest("the run stops claiming when its wall-clock budget is spent", async () => {
  const h = harness(new FakeStore(malls(10)), {
    settings: { runBudgetMs: 1_000, concurrency: 1 },
    cost: { wallMs: 300, cpuMs: 0 },
  });
  const summary = await run(h);
  // Claims at 0, 300, 600 and 900 ms; at 1,200 ms the budget is spent.
  assert.equal(summary.refreshed, 4);
  assert.equal(summary.remaining, 6);
  assert.equal(summary.skipped_reasons.out_of_time, 6);
  assertNothingLeased(h.store);
  assertBooksBalance(summary);
});

runTest(
  "the run stops claiming when its CPU budget is spent, and has none where CPU is not reported",
  async () => {
    const cpuBound = {
      settings: { runCpuBudgetMs: 150, concurrency: 1 },
      cost: { wallMs: 10, cpuMs: 40 },
    };
    const h = harness(new FakeStore(malls(10)), cpuBound);
    const summary = await run(h);
    // 0, 40, 80 and 120 ms of CPU before each claim; at 160 ms the budget is spent.
    assert.equal(summary.refreshed, 4);
    assert.equal(summary.remaining, 6);
    assert.equal(summary.skipped_reasons.out_of_time, 6);
    assertBooksBalance(summary);

    const blind = harness(new FakeStore(malls(10)), cpuBound);
    blind.clock.cpu = null;
    const unbounded = await run(blind);
    assert.equal(unbounded.refreshed, 10);
    assert.equal(unbounded.remaining, 0);
  },
);

runTest(
  "the run stops claiming early enough for the requests it has in flight to finish within its CPU budget",
  async () => {
    // Four requests in flight at a time; each answer costs 10 ms of CPU to handle when it
    // arrives, after the run may already have stopped claiming.
    const clock = new FakeClock();
    const h = harness(new FakeStore(malls(40)), {
      clock,
      settings: { runCpuBudgetMs: 150, concurrency: 4, maxConnectionsPerRun: 40 },
      cost: { wallMs: 10, cpuMs: 0 },
      answer: async (_, call) => {
        await new Promise((resolve) => setTimeout(resolve, 0));
        clock.spend(0, 10);
        return newPair(call);
      },
    });
    const summary = await run(h);
    const spent = clock.cpu!;
    assert.ok(spent <= 150, `the run spent ${spent} ms of CPU against its budget of 150`);
    // It still uses its budget: stopping at the first answer would be safe and useless.
    assert.ok(spent >= 120, `the run stopped at ${spent} ms of CPU`);
    assert.equal(summary.refreshed, spent / 10);
    assert.equal(summary.skipped_reasons.out_of_time, 40 - summary.refreshed);
    assertNothingLeased(h.store);
    assertBooksBalance(summary);
  },
);

runTest(
  "runs that share a process each count their share of its CPU, and stop together at the process budget",
  async () => {
    const cpuBound = {
      settings: { runCpuBudgetMs: 150, concurrency: 1 },
      cost: { wallMs: 10, cpuMs: 40 },
    };
    // Three runs at once: each takes on as many connections as it would alone (4, as above),
    // where counting the whole process against each would stop them after 1 or 2.
    const first = harness(new FakeStore(malls(10)), cpuBound);
    const three = [
      first,
      ...[1, 2].map(() => harness(new FakeStore(malls(10)), { ...cpuBound, clock: first.clock })),
    ];
    const summaries = await Promise.all(three.map((h) => run(h)));
    assert.deepEqual(summaries.map((s) => s.refreshed), [4, 4, 4]);
    for (const summary of summaries) assertBooksBalance(summary);

    // Ten runs at once would spend 10 × 160 ms: they stop together once the process has spent
    // PROCESS_CPU_BUDGET_MS since the first began (each may finish the request it has in flight).
    const lead = harness(new FakeStore(malls(10)), cpuBound);
    const ten = [
      lead,
      ...Array.from(
        { length: 9 },
        () => harness(new FakeStore(malls(10)), { ...cpuBound, clock: lead.clock }),
      ),
    ];
    const cpuBefore = lead.clock.cpu!;
    const results = await Promise.all(ten.map((h) => run(h)));
    const refreshed = results.reduce((sum, s) => sum + s.refreshed, 0);
    const spent = lead.clock.cpu! - cpuBefore;
    assert.ok(refreshed < 40, `the process budget stopped them: ${refreshed}`);
    assert.ok(spent >= PROCESS_CPU_BUDGET_MS, `${spent} ms`);
    assert.ok(
      spent <= PROCESS_CPU_BUDGET_MS + 10 * 40,
      `at most one request per run past it: ${spent}`,
    );
    assert.ok(results.every((s) => s.refreshed >= 1), "every run got a share");
    for (const summary of results) assertBooksBalance(summary);
  },
);

runTest(
  "rows the rules skipped for a key the ring lacks are counted, warned of and named in the log",
  async (logs) => {
    const store = new FakeStore(malls(2), censusOf({ due: 2, key_unavailable: 3 }));
    store.missingKeys = { k2024: 3 };
    const summary = await run(harness(store));
    assert.equal(summary.refreshed, 2);
    assert.equal(summary.skipped_reasons.key_unavailable, 3);
    assert.equal(summary.eligible, 5, "rows under a missing key still count as eligible");
    assert.ok(summary.warnings.includes("TOKEN_KEY_NOT_IN_RING"));
    assertBooksBalance(summary);
    const line = logs.find((e) => e.event === "cafe24_refresh_keys_missing")!;
    assert.deepEqual(line.key_ids, { k2024: 3 });

    logs.length = 0;
    const clean = await run(harness(new FakeStore(malls(1))));
    assert.ok(!clean.warnings.includes("TOKEN_KEY_NOT_IN_RING"));
    assert.ok(!logs.some((e) => e.event === "cafe24_refresh_keys_missing"));
  },
);

runTest(
  "a failed token request is recorded with its backoff, and the next connection is claimed with it",
  async () => {
    const h = harness(new FakeStore(malls(3)), {
      settings: { concurrency: 1 },
      answer: (mallId, call) =>
        mallId === "shop0001" ? new Response("busy", { status: 503 }) : newPair(call),
    });
    const summary = await run(h);
    assert.equal(summary.refreshed, 2);
    assert.equal(summary.failed, 1);
    assert.match(summary.failures[0]!.reason, /^CAFE24_SERVER_ERROR: .*\(HTTP 503\)$/);
    const [recorded] = h.store.failures;
    assert.equal(recorded!.id, connection(1).id);
    assert.equal(recorded!.claimNext, true, "the failure's write claims the next connection");
    assert.equal(recorded!.failure.code, "CAFE24_SERVER_ERROR");
    assert.equal(recorded!.failure.permanent, false);
    assert.equal(recorded!.failure.outcomeUnknown, true, "a 5xx may have rotated the token");
    // The first backoff step drawn at the low end of its jitter (random() = 0): 50 % of 1 minute,
    // counted from when the answer came (100 ms into the run).
    assert.equal(
      recorded!.failure.nextAttemptAt!.getTime(),
      h.clock.now() - 200 + BACKOFF_BASE_MS / 2,
    );
    assertNothingLeased(h.store);
    assertBooksBalance(summary);
  },
);

runTest(
  "a rejected client secret backs off 15 minutes and marks no mall disconnected",
  async () => {
    const h = harness(new FakeStore(malls(1)), {
      answer: () =>
        Response.json({ error: "invalid_client", error_description: "bad client_secret" }, {
          status: 401,
        }),
    });
    const summary = await run(h);
    const [recorded] = h.store.failures;
    assert.equal(recorded!.failure.code, "CAFE24_CLIENT_AUTH_FAILED");
    assert.equal(recorded!.failure.permanent, false);
    assert.equal(recorded!.failure.nextAttemptAt!.getTime(), h.clock.now() + CLIENT_AUTH_RETRY_MS);
    assert.equal(summary.failed, 1);
  },
);

runTest(
  "settle outcomes: lease_lost is a failure, already_rotated and superseded are skips",
  async () => {
    const h = harness(new FakeStore(malls(3)), {
      settings: { concurrency: 1 },
      answer: (mallId, call) =>
        mallId === "shop0003" ? newPair(call) : Response.json({ error: "invalid_grant" }, {
          status: 400,
        }),
    });
    h.store.onFailure = (id) => id === connection(1).id ? "lease_lost" : "already_rotated";
    h.store.onStore = () => "superseded";
    const summary = await run(h);
    assert.equal(summary.failed, 1);
    assert.match(summary.failures[0]!.reason, /^LEASE_LOST: /);
    assert.equal(summary.skipped_reasons.already_rotated, 1);
    assert.equal(summary.skipped_reasons.superseded, 1);
    assert.equal(summary.refreshed, 0);
    assertBooksBalance(summary);
  },
);

runTest(
  "a store that cannot reach the database fails STORE_FAILED after retries; the run goes on",
  async () => {
    const h = harness(new FakeStore(malls(3)), { settings: { concurrency: 1 } });
    let attempts = 0;
    h.store.onStore = (id) => {
      if (id === connection(1).id) {
        attempts++;
        throw new Error("connection refused");
      }
      return "stored";
    };
    const before = h.clock.now();
    const summary = await run(h);
    assert.equal(attempts, 5, "five attempts");
    // Waits of 400, 800, 1,600 and 3,200 ms between them, on the run's clock; 3 requests of 100 ms.
    assert.equal(h.clock.now() - before, 6_000 + 300);
    assert.equal(summary.failed, 1);
    assert.match(summary.failures[0]!.reason, /^STORE_FAILED: /);
    // The combined call failed, so the worker claimed its next connection on its own.
    assert.equal(summary.refreshed, 2);
    assert.equal(summary.remaining, 0);
    assertBooksBalance(summary);
  },
);

runTest("a claim that cannot reach the database fails the run, recorded as failed", async () => {
  const h = harness(new FakeStore(malls(2)));
  h.store.claim = () => Promise.reject(new Error("connection refused"));
  await assert.rejects(run(h), /connection refused/);
  assert.deepEqual(h.store.finished.map((f) => f.status), ["failed"]);
});

runTest("every summary carries the warnings, and the run logs what to change", async (logs) => {
  const h = harness(new FakeStore(malls(1)));
  const summary = await run(h, { warnings: ["CRON_SECRET_WEAK"] });
  assert.deepEqual(summary.warnings, ["CRON_SECRET_WEAK"]);
  assert.equal(Object.keys(summary).at(-1), "warnings");
  const logged = logs.find((line) => line.event === "cafe24_refresh_config_warning");
  assert.equal(logged?.run_id, summary.run_id);
  assert.match((logged?.messages as string[])[0]!, /shorter than 32 characters/);
  assert.ok(!JSON.stringify(logs).includes(SETTINGS.app.clientSecret), "no secret in any line");
});

runTest(
  "nothing in a user's scope: zeros, no run id, the warnings, and no run recorded",
  async () => {
    const store = new FakeStore([]);
    store.inScope = 0;
    const summary = await summaryIfNothingInScope({ store, clock: new FakeClock() }, {
      ...REQUEST,
      trigger: "user",
      userId: "u",
      warnings: ["CRON_SECRET_WEAK"],
    });
    assert.ok(summary !== null);
    assert.equal(summary.run_id, null);
    assert.equal(summary.scanned, 0);
    assert.ok(Object.values(summary.skipped_reasons).every((n) => n === 0));
    assert.deepEqual(summary.warnings, ["CRON_SECRET_WEAK"]);
    assert.equal(store.runs.length, 0);

    store.inScope = 1;
    assert.equal(await summaryIfNothingInScope({ store, clock: new FakeClock() }, REQUEST), null);
  },
);

/** A promise and the function that resolves it. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

runTest(
  "beforeunload: no more claims, a connection claimed after it is let go unsent, requests in flight keep their leases",
  async (logs) => {
    // Two workers. Worker A's request for shop0001 is held in flight by the endpoint; worker B's
    // store of shop0002 (which also claims its next connection) is held at the database.
    const inFlight = deferred<Response>();
    const storeHeld = deferred<void>();
    const storeReached = deferred<void>();
    const requestSent = deferred<void>();
    const h = harness(new FakeStore(malls(6)), {
      answer: (mallId, call) => {
        if (mallId === "shop0001") {
          requestSent.resolve();
          return inFlight.promise;
        }
        return newPair(call);
      },
    });
    h.store.onStore = async (id) => {
      if (id === connection(2).id) {
        storeReached.resolve();
        await storeHeld.promise;
      }
      return "stored" as const;
    };
    {
      const running = run(h);
      await Promise.all([requestSent.promise, storeReached.promise]);

      globalThis.dispatchEvent(
        new CustomEvent("beforeunload", { detail: { reason: "TerminationRequested" } }),
      );
      // The store's answer brings shop0003, claimed with it: no request may leave for it.
      storeHeld.resolve();
      // The request in flight is answered after the notice: its pair is stored, claiming nothing.
      inFlight.resolve(newPair(1));
      const summary = await running;

      assert.deepEqual(h.endpoint.asked, ["shop0001", "shop0002"]);
      assert.deepEqual(h.store.released, [connection(3).id]);
      const store1 = h.store.stores.find((s) => s.id === connection(1).id);
      assert.equal(store1?.claimNext, false, "a settle after the notice claims nothing");
      assert.equal(summary.refreshed, 2);
      // shop0003 was let go and is claimable again, with shop0004..6: what the next run does.
      assert.equal(summary.remaining, 4);
      assert.equal(summary.skipped_reasons.out_of_time, 4);
      assertNothingLeased(h.store);
      assertBooksBalance(summary);
      assert.ok(
        logs.some((e) =>
          e.event === "cafe24_refresh_run_interrupted" && e.reason === "TerminationRequested"
        ),
      );
      assert.equal(
        logs.find((e) => e.event === "cafe24_refresh_run")?.interrupted_by,
        "TerminationRequested",
      );
    }
  },
);

runTest(
  "beforeunload outside a run changes nothing, and a run stops listening when it ends",
  async (logs) => {
    const h = harness(new FakeStore(malls(2)));
    await run(h);
    globalThis.dispatchEvent(new CustomEvent("beforeunload", { detail: { reason: "CPUTime" } }));
    assert.ok(!logs.some((line) => line.event === "cafe24_refresh_run_interrupted"));
    const again = harness(new FakeStore(malls(2)));
    assert.equal((await run(again)).refreshed, 2);
  },
);

runTest(
  "the run's log line says how much CPU it spent, its cap and the tick that started it",
  async (logs) => {
    const h = harness(new FakeStore(malls(3)), {
      settings: { maxConnectionsPerRun: 40 },
      cost: { wallMs: 10, cpuMs: 5 },
    });
    await run(h, { tickId: 12 });
    const line = logs.find((e) => e.event === "cafe24_refresh_run")!;
    assert.equal(line.cpu_ms, 15, "three refreshes at 5 ms each");
    assert.equal(line.max_connections, 40);
    assert.equal(line.tick_id, 12);

    // Where the runtime reports no CPU, and for runs no tick started, neither is said.
    logs.length = 0;
    const blind = harness(new FakeStore(malls(1)));
    blind.clock.cpu = null;
    await run(blind, { trigger: "manual" });
    const quiet = logs.find((e) => e.event === "cafe24_refresh_run")!;
    assert.ok(!("cpu_ms" in quiet));
    assert.ok(!("tick_id" in quiet));
  },
);
