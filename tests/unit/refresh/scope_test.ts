import assert from "node:assert/strict";
import {
  ACCESS_TOKEN_LIFETIME_MS,
  KEEP_ALIVE_WINDOW_MS,
  runScope,
  type ScopeRequest,
  TOKEN_REQUEST_RECENT_MS,
  USER_FORCE_MIN_TOKEN_AGE_MS,
} from "../../../supabase/functions/_shared/refresh/scope.ts";
import { SETTINGS } from "./fakes.ts";

const MARGIN_MS = 30 * 60_000;

const request = (changes: Partial<ScopeRequest>): ScopeRequest => ({
  trigger: "cron",
  force: false,
  mallId: null,
  userId: null,
  ...changes,
});

Deno.test("the policy's windows: a week before a refresh token expires, a day after a token request", () => {
  assert.equal(KEEP_ALIVE_WINDOW_MS, 7 * 24 * 60 * 60_000);
  assert.equal(TOKEN_REQUEST_RECENT_MS, 24 * 60 * 60_000);
});

Deno.test("runScope(): the configured policy and window govern unforced runs", () => {
  for (const policy of ["eager", "keep_alive"] as const) {
    for (const trigger of ["cron", "manual", "user", "cli"] as const) {
      const scope = runScope(request({ trigger }), {
        ...SETTINGS,
        policy,
        keepAliveWindowMs: 60_000,
      });
      assert.equal(scope.policy, policy, `${policy} ${trigger}`);
      assert.equal(scope.keepAliveWindowMs, 60_000);
      assert.equal(scope.tokenRequestWindowMs, TOKEN_REQUEST_RECENT_MS);
    }
  }
});

Deno.test("runScope(): a forced run is eager whatever the policy (it asks for fresh tokens)", () => {
  for (const trigger of ["cron", "manual", "user", "cli"] as const) {
    const scope = runScope(request({ trigger, force: true, userId: "u" }), {
      ...SETTINGS,
      policy: "keep_alive",
    });
    assert.equal(scope.policy, "eager", trigger);
  }
});

Deno.test("runScope(): a user's force refreshes only tokens at least 5 minutes old", () => {
  assert.equal(USER_FORCE_MIN_TOKEN_AGE_MS, 5 * 60_000);
  assert.equal(ACCESS_TOKEN_LIFETIME_MS, 2 * 60 * 60_000);
  const scope = runScope(request({ trigger: "user", force: true, userId: "u" }), SETTINGS);
  // Forced, but the SQL leaves pairs issued under 5 minutes ago alone (make_scope); the margin
  // stays the configured one, so the age is never read from the (jittered) due time.
  assert.equal(scope.force, true);
  assert.equal(scope.minTokenAgeMs, USER_FORCE_MIN_TOKEN_AGE_MS);
  assert.equal(scope.refreshMarginMs, MARGIN_MS);
});

Deno.test("runScope(): cron, admin and CLI force is unconditional; no force keeps the margin", () => {
  for (const trigger of ["cron", "manual", "cli"] as const) {
    const scope = runScope(request({ trigger, force: true }), SETTINGS);
    assert.equal(scope.force, true, trigger);
    assert.equal(scope.minTokenAgeMs, null, trigger);
    assert.equal(scope.refreshMarginMs, MARGIN_MS, trigger);
  }
  // The CLI's --user is an admin acting for a user: not limited either.
  const cli = runScope(request({ trigger: "cli", force: true, userId: "u" }), SETTINGS);
  assert.equal(cli.force, true);
  assert.equal(cli.minTokenAgeMs, null);
  const unforced = runScope(request({ trigger: "user", userId: "u", mallId: "shopone" }), SETTINGS);
  assert.deepEqual(unforced, {
    refreshMarginMs: MARGIN_MS,
    force: false,
    minTokenAgeMs: null,
    mallId: "shopone",
    userId: "u",
    policy: "eager",
    keepAliveWindowMs: SETTINGS.keepAliveWindowMs,
    tokenRequestWindowMs: TOKEN_REQUEST_RECENT_MS,
    tickId: null,
  });
});

Deno.test("runScope(): only a scheduled run belongs to the tick that sent it", () => {
  assert.equal(runScope(request({ trigger: "cron", tickId: 7 }), SETTINGS).tickId, 7);
  assert.equal(runScope(request({ trigger: "cron" }), SETTINGS).tickId, null);
  for (const trigger of ["manual", "cli", "user"] as const) {
    assert.equal(runScope(request({ trigger, tickId: 7 }), SETTINGS).tickId, null, trigger);
  }
});
