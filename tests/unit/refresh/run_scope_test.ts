import assert from "node:assert/strict";
import {
  ACCESS_TOKEN_LIFETIME_MS,
  RUN_SUMMARY_KEYS,
  type RunRequest,
  runScope,
  SKIP_REASONS,
  summaryIfNothingInScope,
  USER_FORCE_MIN_TOKEN_AGE_MS,
} from "../../../supabase/functions/_shared/refresh/run.ts";
import type { Census, RefreshStore } from "../../../supabase/functions/_shared/refresh/store.ts";
import type { RefreshSettings } from "../../../supabase/functions/_shared/platform/config.ts";

const AS_OF = new Date("2026-12-01T00:00:00Z");
const MARGIN_MS = 30 * 60_000;

const request = (changes: Partial<RunRequest>): RunRequest => ({
  trigger: "cron",
  mode: "sync",
  force: false,
  mallId: null,
  userId: null,
  ...changes,
});

Deno.test("runScope(): a user's force refreshes only tokens at least 5 minutes old", () => {
  assert.equal(USER_FORCE_MIN_TOKEN_AGE_MS, 5 * 60_000);
  assert.equal(ACCESS_TOKEN_LIFETIME_MS, 2 * 60 * 60_000);
  const scope = runScope(
    request({ trigger: "user", force: true, userId: "u" }),
    MARGIN_MS,
    AS_OF,
  );
  assert.equal(scope.force, false, "not the unconditional force of cron and admins");
  assert.equal(scope.refreshMarginMs, 115 * 60_000);
  // Under that margin a token is due when it expires within 1 h 55 min of now: a 2-hour token
  // issued 5 minutes ago or earlier. One issued 4 minutes ago is not.
  const issuedAgo = (ms: number) => AS_OF.getTime() - ms + ACCESS_TOKEN_LIFETIME_MS;
  const due = (expiresAtMs: number) => expiresAtMs <= AS_OF.getTime() + scope.refreshMarginMs;
  assert.ok(due(issuedAgo(5 * 60_000)));
  assert.ok(due(issuedAgo(60 * 60_000)));
  assert.ok(!due(issuedAgo(4 * 60_000)));
  assert.ok(!due(issuedAgo(0)));
});

Deno.test("runScope(): cron, admin and CLI force is unconditional; no force keeps the margin", () => {
  for (const trigger of ["cron", "manual", "cli"] as const) {
    const scope = runScope(request({ trigger, force: true }), MARGIN_MS, AS_OF);
    assert.equal(scope.force, true, trigger);
    assert.equal(scope.refreshMarginMs, MARGIN_MS, trigger);
  }
  // The CLI's --user is an admin acting for a user: not limited either.
  const cli = runScope(request({ trigger: "cli", force: true, userId: "u" }), MARGIN_MS, AS_OF);
  assert.equal(cli.force, true);
  const unforced = runScope(request({ trigger: "user", userId: "u" }), MARGIN_MS, AS_OF);
  assert.deepEqual(unforced, {
    asOf: AS_OF,
    refreshMarginMs: MARGIN_MS,
    force: false,
    mallId: null,
    userId: "u",
  });
});

Deno.test("runScope(): a configured margin wider than the user's force window is kept", () => {
  const wide = runScope(
    request({ trigger: "user", force: true, userId: "u" }),
    118 * 60_000,
    AS_OF,
  );
  assert.equal(wide.refreshMarginMs, 118 * 60_000);
});

const SETTINGS = { refreshMarginMs: MARGIN_MS } as RefreshSettings;

function censusStore(census: Partial<Census>, seen: unknown[] = []): RefreshStore {
  const full: Census = {
    scanned: 0,
    no_cafe24: 0,
    missing_keys: 0,
    malformed: 0,
    reconnect_required: 0,
    leased: 0,
    backing_off: 0,
    not_due: 0,
    due: 0,
    ...census,
  };
  return {
    census: (scope) => {
      seen.push(scope);
      return Promise.resolve(full);
    },
    startRun: () => assert.fail("no run may be recorded"),
  } as Partial<RefreshStore> as RefreshStore;
}

Deno.test("summaryIfNothingInScope(): zeros, no run id, the warnings, and no run recorded", async () => {
  const seen: unknown[] = [];
  const summary = await summaryIfNothingInScope(
    { store: censusStore({}, seen), settings: SETTINGS },
    request({ trigger: "user", userId: "u", mallId: "shopnone", warnings: ["CRON_SECRET_WEAK"] }),
  );
  assert.ok(summary !== null);
  assert.deepEqual(Object.keys(summary), [...RUN_SUMMARY_KEYS]);
  assert.equal(summary.run_id, null);
  for (const key of ["scanned", "eligible", "refreshed", "skipped", "failed", "remaining"]) {
    assert.equal(summary[key as keyof typeof summary], 0, key);
  }
  assert.deepEqual(summary.failures, []);
  assert.deepEqual(Object.keys(summary.skipped_reasons), [...SKIP_REASONS]);
  assert.ok(Object.values(summary.skipped_reasons).every((n) => n === 0));
  assert.deepEqual(summary.warnings, ["CRON_SECRET_WEAK"]);
  assert.equal(seen.length, 1);
  assert.equal((seen[0] as { userId: string }).userId, "u");
  assert.equal((seen[0] as { mallId: string }).mallId, "shopnone");
});

Deno.test("summaryIfNothingInScope(): null as soon as one row is in scope, due or not", async () => {
  for (const census of [{ scanned: 1, not_due: 1 }, { scanned: 1, malformed: 1 }]) {
    const summary = await summaryIfNothingInScope(
      { store: censusStore(census), settings: SETTINGS },
      request({ trigger: "user", userId: "u" }),
    );
    assert.equal(summary, null, JSON.stringify(census));
  }
});
