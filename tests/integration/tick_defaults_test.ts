/**
 * Before the first scheduled run has recorded its scope, the schedule's tick counts with defaults
 * written in SQL (cafe24_private.tick_scope): the refresh margin, policy, keep-alive and
 * token-request windows and lease a default-configured cafe24-refresh records with every run.
 * They must be the function's own, read here from the code that sets them.
 */
import assert from "node:assert/strict";
import { startTestDatabase } from "../../local/postgres/database.ts";
import {
  loadConfig,
  REFRESH_CONFIG_REQUIRED,
  refreshSettings,
} from "../../supabase/functions/_shared/platform/config.ts";
import { runScope } from "../../supabase/functions/_shared/refresh/scope.ts";

Deno.test("a tick before any scheduled run counts with the function's default scope", async () => {
  const loaded = loadConfig({
    SUPABASE_DB_URL: "postgresql://postgres@127.0.0.1/postgres",
    CAFE24_CLIENT_ID: "client",
    CAFE24_CLIENT_SECRET_KEY: "secret",
  }, REFRESH_CONFIG_REQUIRED);
  assert.ok(loaded.ok);
  const settings = refreshSettings(loaded.config);
  const scope = runScope({ trigger: "cron", force: false, mallId: null, userId: null }, settings);

  const db = await startTestDatabase();
  try {
    const [{ runs }] = await db.sql<[{ runs: number }]>`
      select count(*)::int as runs from cafe24_private.refresh_runs where trigger = 'cron'`;
    assert.equal(runs, 0);
    const [tick] = await db.sql<
      {
        margin_ms: number;
        policy: string;
        keep_alive_ms: number;
        token_request_ms: number;
        lease_ms: number;
      }[]
    >`
      select extract(epoch from s.due_before - s.as_of)::float8 * 1000 as margin_ms,
        s.policy,
        extract(epoch from s.keep_alive_before - s.as_of)::float8 * 1000 as keep_alive_ms,
        extract(epoch from s.as_of - s.requested_since)::float8 * 1000 as token_request_ms,
        extract(epoch from s.lease_duration)::float8 * 1000 as lease_ms
      from cafe24_private.tick_scope('2026-12-01T00:00:00Z', interval '0') s`;
    assert.deepEqual(tick, {
      margin_ms: scope.refreshMarginMs,
      policy: scope.policy,
      keep_alive_ms: scope.keepAliveWindowMs,
      token_request_ms: scope.tokenRequestWindowMs,
      lease_ms: settings.leaseMs,
    });
  } finally {
    await db.stop();
  }
});
