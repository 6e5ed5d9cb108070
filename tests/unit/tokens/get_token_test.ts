/**
 * getAccessToken against an in-memory connection and a scripted token endpoint: one refresh
 * however many callers in the process ask at once, waiting out someone else's lease, failures,
 * and callers that need more than the shared refresh gave.
 */
import assert from "node:assert/strict";
import type { TokenRow } from "../../../supabase/functions/_shared/tokens/decide.ts";
import {
  getAccessToken,
  type TokenDeps,
} from "../../../supabase/functions/_shared/tokens/get_token.ts";
import type { Claim, TokenStore } from "../../../supabase/functions/_shared/tokens/store.ts";
import { RequestError } from "../../../supabase/functions/_shared/platform/errors.ts";
import type { RunStart } from "../../../supabase/functions/_shared/refresh/store.ts";
import { withCapturedLogs } from "../../support/logs.ts";
import { FakeClock, FakeStore, SETTINGS, START_MS, tokenEndpoint } from "../refresh/fakes.ts";

const ID = "00000000-0000-4000-8000-000000000001";
const MALL = "shop0001";
const HOUR_MS = 60 * 60_000;

/**
 * One connection in memory. The claim follows the run's rules as far as a token run meets them:
 * leased, backing off, reconnect_required, not due under the run's margin, else due (leased to
 * the run). The refresher's store (FakeStore) writes what the step settles into the row.
 */
class FakeTokenStore implements TokenStore {
  readonly refresh: FakeStore;
  row: Omit<TokenRow, "dbNow">;
  refreshToken = "rt-0";
  reads = 0;
  notes = 0;
  readonly claims: Claim[] = [];
  /** Called before each read answers (e.g. another holder settling meanwhile). */
  onRead: ((store: FakeTokenStore) => void) | null = null;
  private readonly margins = new Map<string, number>();
  private runs = 0;

  constructor(readonly clock: FakeClock, expiresInMs: number) {
    this.row = {
      authSettingsId: ID,
      mallId: MALL,
      rowState: "ok",
      status: "active",
      accessToken: "at-0",
      storedAccessToken: "at-0",
      keyProblem: null,
      accessExpiresAt: new Date(clock.now() + expiresInMs),
      shopNo: 1,
      scopes: ["mall.read_store"],
      leaseExpiresAt: null,
      nextAttemptAt: null,
      lastErrorCode: null,
    };
    const refresh = new FakeStore([]);
    refresh.startRun = (run: RunStart) => {
      refresh.runs.push(run);
      const runId = `00000000-0000-4000-9000-${String(++this.runs).padStart(12, "0")}`;
      this.margins.set(runId, run.scope.refreshMarginMs);
      return Promise.resolve(runId);
    };
    refresh.onStore = () => {
      const stored = refresh.stores.at(-1)!.tokens;
      this.row = {
        ...this.row,
        accessToken: String(stored.access_token),
        accessExpiresAt: new Date(String(stored.expires_at)),
        leaseExpiresAt: null,
        nextAttemptAt: null,
        lastErrorCode: null,
      };
      this.refreshToken = String(stored.refresh_token);
      return "stored";
    };
    refresh.onFailure = () => {
      const { failure } = refresh.failures.at(-1)!;
      this.row = {
        ...this.row,
        status: failure.permanent ? "reconnect_required" : this.row.status,
        nextAttemptAt: failure.nextAttemptAt,
        lastErrorCode: failure.code,
        leaseExpiresAt: null,
      };
      return failure.permanent ? "reconnect_required" : "retry_scheduled";
    };
    this.refresh = refresh;
  }

  read(): Promise<TokenRow[]> {
    this.reads++;
    this.onRead?.(this);
    return Promise.resolve([{ ...this.row, dbNow: new Date(this.clock.now()) }]);
  }

  noteRequest(): Promise<void> {
    this.notes++;
    return Promise.resolve();
  }

  rejectToken(): Promise<"marked"> {
    this.row = { ...this.row, accessExpiresAt: new Date(this.clock.now()) };
    return Promise.resolve("marked");
  }

  claim(runId: string): Promise<Claim | null> {
    const now = this.clock.now();
    const { row } = this;
    let verdict = "due";
    if (row.status !== "active") verdict = "reconnect_required";
    else if (row.leaseExpiresAt !== null && row.leaseExpiresAt.getTime() > now) verdict = "leased";
    else if (row.nextAttemptAt !== null && row.nextAttemptAt.getTime() > now) {
      verdict = "backing_off";
    } else if (row.accessExpiresAt!.getTime() > now + this.margins.get(runId)!) verdict = "not_due";
    const claim: Claim = { verdict, connection: null };
    if (verdict === "due") {
      this.row = { ...row, leaseExpiresAt: new Date(now + SETTINGS.leaseMs) };
      claim.connection = {
        id: ID,
        mallId: MALL,
        refreshToken: this.refreshToken,
        keyProblem: null,
        tokenVersion: "1",
        consecutiveFailures: 0,
        answerPossiblyLost: false,
      };
    }
    this.claims.push(claim);
    return Promise.resolve(claim);
  }
}

function harness(expiresInMs: number, answer?: Parameters<typeof tokenEndpoint>[1]) {
  const clock = new FakeClock();
  const store = new FakeTokenStore(clock, expiresInMs);
  const endpoint = tokenEndpoint(clock, answer);
  const deps: TokenDeps = {
    store,
    settings: { ...SETTINGS, app: { ...SETTINGS.app, fetch: endpoint.fetch } },
    clock,
    random: () => 0,
  };
  const ask = (minValidS = 300) =>
    getAccessToken(deps, { authSettingsId: null, mallId: MALL, minValidS });
  return { clock, store, endpoint, ask };
}

/** Deno.test with log lines kept out of the test output. */
function quietTest(name: string, fn: () => Promise<void>): void {
  Deno.test(name, () => withCapturedLogs(fn));
}

const errorOf = async (promise: Promise<unknown>): Promise<Record<string, unknown>> => {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RequestError);
    return { code: error.code, ...error.details };
  }
  assert.fail("expected a RequestError");
};

quietTest("a token valid long enough is answered without a run", async () => {
  const h = harness(HOUR_MS);
  const token = await h.ask();
  assert.deepEqual(token, {
    access_token: "at-0",
    expires_at: new Date(START_MS + HOUR_MS).toISOString(),
    mall_id: MALL,
    shop_no: 1,
    scopes: ["mall.read_store"],
  });
  assert.equal(h.store.refresh.runs.length, 0);
  assert.equal(h.store.notes, 1);
});

quietTest("callers in one process asking at once share one refresh", async () => {
  const h = harness(60_000);
  const tokens = await Promise.all(Array.from({ length: 20 }, () => h.ask()));
  assert.equal(h.endpoint.asked.length, 1);
  assert.equal(h.store.refresh.runs.length, 1);
  assert.equal(h.store.claims.length, 1);
  assert.deepEqual(new Set(tokens.map((t) => t.access_token)), new Set(["at-new-1"]));
  assert.equal(tokens[0]!.expires_at, "2026-12-01T02:00:00.000Z");
  assert.equal(h.store.notes, 20, "every request is noted");
  // The token run: the caller's validity as its margin, eager, the one mall, never forced.
  const run = h.store.refresh.runs[0]!;
  assert.equal(run.trigger, "token");
  assert.deepEqual(
    { ...run.scope, tokenRequestWindowMs: undefined },
    {
      refreshMarginMs: 300_000,
      force: false,
      minTokenAgeMs: null,
      mallId: MALL,
      userId: null,
      policy: "eager",
      keepAliveWindowMs: SETTINGS.keepAliveWindowMs,
      tokenRequestWindowMs: undefined,
      tickId: null,
    },
  );
  const finished = h.store.refresh.finished[0]!;
  assert.equal(finished.status, "finished");
  assert.equal((finished.summary as { refreshed: number }).refreshed, 1);
});

quietTest("a leased connection is waited for, and its new token answered", async () => {
  const h = harness(60_000);
  h.store.row.leaseExpiresAt = new Date(START_MS + SETTINGS.leaseMs);
  // The holder stores a new pair after a few looks.
  h.store.onRead = (store) => {
    if (store.reads === 4) {
      store.row = {
        ...store.row,
        accessToken: "at-holder",
        accessExpiresAt: new Date(h.clock.now() + 2 * HOUR_MS),
        leaseExpiresAt: null,
      };
    }
  };
  const token = await h.ask();
  assert.equal(token.access_token, "at-holder");
  assert.equal(h.endpoint.asked.length, 0);
  assert.equal(h.store.refresh.runs.length, 0, "no run while someone else holds it");
  assert.ok(h.clock.now() - START_MS < 1_000, "polled soon, not at the lease's end");
});

quietTest("a lease whose holder died is waited out, then the connection is ours", async () => {
  const h = harness(60_000);
  h.store.row.leaseExpiresAt = new Date(START_MS + 10_000);
  const token = await h.ask();
  assert.equal(token.access_token, "at-new-1");
  assert.equal(h.endpoint.asked.length, 1);
  assert.ok(h.clock.now() >= START_MS + 10_000);
  assert.ok(h.store.reads < 40, `${h.store.reads} reads: the polls slow down`);
});

quietTest("a lease that outlasts the wait answers REFRESH_IN_PROGRESS", async () => {
  const h = harness(-1_000);
  h.store.row.leaseExpiresAt = new Date(START_MS + 10 * SETTINGS.leaseMs);
  assert.deepEqual(await errorOf(h.ask()), {
    code: "TOKEN_UNAVAILABLE",
    reason: "REFRESH_IN_PROGRESS",
  });
  assert.ok(h.clock.now() - START_MS <= SETTINGS.leaseMs + 1_000);
  assert.equal(h.endpoint.asked.length, 0);

  // Still valid after the wait (less than the 300 s asked for).
  const valid = harness(200_000);
  valid.store.row.leaseExpiresAt = new Date(START_MS + 10 * SETTINGS.leaseMs);
  const token = await valid.ask();
  assert.equal(token.access_token, "at-0");
  assert.equal(token.refresh_failed, "REFRESH_IN_PROGRESS");
});

quietTest("a claim that finds the lease taken meanwhile waits for that holder", async () => {
  const h = harness(60_000);
  // Another process claims between this caller's read and its claim, and settles later.
  const claim = h.store.claim.bind(h.store);
  h.store.claim = (runId) => {
    if (h.store.claims.length === 0) {
      h.store.row.leaseExpiresAt = new Date(h.clock.now() + SETTINGS.leaseMs);
      h.store.onRead = (store) => {
        if (store.reads === 5) {
          store.row = {
            ...store.row,
            accessToken: "at-other",
            accessExpiresAt: new Date(h.clock.now() + 2 * HOUR_MS),
            leaseExpiresAt: null,
          };
        }
      };
    }
    return claim(runId);
  };
  const token = await h.ask();
  assert.equal(token.access_token, "at-other");
  assert.deepEqual(h.store.claims.map((c) => c.verdict), ["leased"]);
  assert.equal(h.endpoint.asked.length, 0);
  const summary = h.store.refresh.finished[0]!.summary as {
    skipped_reasons: Record<string, number>;
  };
  assert.equal(summary.skipped_reasons.leased, 1);
});

quietTest("a transient failure: the valid token with refresh_failed, else 503", async () => {
  const unavailable = () => new Response("busy", { status: 503 });
  const valid = harness(60_000, unavailable);
  const token = await valid.ask();
  assert.equal(token.access_token, "at-0");
  assert.equal(token.refresh_failed, "CAFE24_SERVER_ERROR");
  // Backing off now: the next caller is answered the same way without a request.
  assert.equal((await valid.ask()).refresh_failed, "CAFE24_SERVER_ERROR");
  assert.equal(valid.endpoint.asked.length, 1);

  const expired = harness(-1_000, unavailable);
  const error = await errorOf(expired.ask());
  assert.equal(error.code, "TOKEN_UNAVAILABLE");
  assert.equal(error.reason, "CAFE24_SERVER_ERROR");
  assert.ok(Number(error.retry_after_s) >= 30 && Number(error.retry_after_s) <= 60);
});

quietTest("a refused refresh token answers RECONNECT_REQUIRED", async () => {
  const h = harness(
    60_000,
    () => Response.json({ error: "invalid_grant", error_description: "expired" }, { status: 400 }),
  );
  assert.deepEqual(await errorOf(h.ask()), { code: "RECONNECT_REQUIRED" });
  assert.deepEqual(await errorOf(h.ask()), { code: "RECONNECT_REQUIRED" });
  assert.equal(h.endpoint.asked.length, 1);
});

quietTest("a caller needing more than a shared refresh gave goes round again", async () => {
  // The first caller's refresh (min 60 s) finds the token refreshed elsewhere to 20 minutes;
  // the second caller needs 30 minutes and starts its own.
  const h = harness(30_000);
  const claim = h.store.claim.bind(h.store);
  h.store.claim = (runId) => {
    if (h.store.claims.length === 0) {
      h.store.row = {
        ...h.store.row,
        accessToken: "at-20min",
        accessExpiresAt: new Date(h.clock.now() + 20 * 60_000),
      };
    }
    return claim(runId);
  };
  const [short, long] = await Promise.all([h.ask(60), h.ask(1800)]);
  assert.equal(short.access_token, "at-20min");
  assert.equal(long.access_token, "at-new-1");
  assert.deepEqual(h.store.claims.map((c) => c.verdict), ["not_due", "due"]);
  assert.equal(h.endpoint.asked.length, 1);
});

quietTest("a database that cannot be reached answers DATABASE_UNAVAILABLE", async () => {
  const h = harness(HOUR_MS);
  h.store.read = () =>
    Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
  assert.deepEqual(await errorOf(h.ask()), { code: "DATABASE_UNAVAILABLE" });
});

quietTest("any other failure of a database call answers INTERNAL_ERROR", async () => {
  const h = harness(HOUR_MS);
  h.store.noteRequest = () => Promise.reject(new TypeError("not a function"));
  assert.deepEqual(await errorOf(h.ask()), { code: "INTERNAL_ERROR" });
});
