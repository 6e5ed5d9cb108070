/**
 * The run summary keeps the meanings the original endpoint gave its fields: `eligible` counts the
 * rows whose providers.cafe24 has a mall_id and a refresh_token, whether due or not; `due` counts
 * those that needed a refresh now. Checked over HTTP against rows of every kind.
 */
import assert from "node:assert/strict";
import { connectMall, insertConnection, startRefreshStack } from "../support/stack.ts";

const HOUR_MS = 60 * 60 * 1000;

Deno.test("cafe24-refresh summary: eligible is 'has mall_id and refresh_token', due is 'needed a refresh now'", async () => {
  const stack = await startRefreshStack();
  const { db, sandbox } = stack;
  try {
    // Two due connections, one of which the sandbox will reject (reconnect_required after it).
    await connectMall(stack, "summarydue");
    await connectMall(stack, "summarydead");
    sandbox.revokeRefreshToken("summarydead");
    // Eligible but not due: its access token is good for two more hours.
    const fresh = sandbox.issueTokens("summaryfresh");
    await insertConnection(db, {
      mallId: "summaryfresh",
      refreshToken: fresh.refreshToken,
      expiresAt: new Date(Date.now() + 2 * HOUR_MS).toISOString(),
      extra: { refresh_token_expires_at: new Date(Date.now() + 14 * 24 * HOUR_MS).toISOString() },
    });
    // Not eligible: no cafe24 entry, no refresh_token, a refresh_token that is not a string.
    await db.sql`
      insert into public.auth_settings (user_id, providers) values
        (gen_random_uuid(), '{"google": {"x": 1}}'),
        (gen_random_uuid(), '{"cafe24": {"mall_id": "summarynokey"}}'),
        (gen_random_uuid(), '{"cafe24": {"mall_id": "summarybroken", "refresh_token": 7}}')`;

    const first = await (await stack.refresh()).json();
    assert.equal(first.scanned, 6);
    assert.equal(first.eligible, 3, "three rows have a mall_id and a refresh_token");
    assert.equal(first.due, 2);
    assert.equal(first.refreshed, 1);
    assert.equal(first.failed, 1);
    assert.equal(first.scanned, first.refreshed + first.failed + first.skipped);
    assert.deepEqual(
      Object.keys(first).slice(0, 5),
      ["run_id", "scanned", "eligible", "due", "refreshed"],
    );

    // The dead mall is now reconnect_required and the refreshed one not due: still eligible,
    // nothing due.
    const second = await (await stack.refresh()).json();
    assert.equal(second.eligible, 3);
    assert.equal(second.due, 0);
    assert.equal(second.skipped_reasons.reconnect_required, 1);
    assert.equal(second.skipped_reasons.not_due, 2);
    assert.equal(second.scanned, second.refreshed + second.failed + second.skipped);

    // The stored history says the same as the response.
    const [run] = await db.sql<{ summary: { eligible: number; due: number } }[]>`
      select summary from cafe24_private.refresh_runs where id = ${second.run_id}`;
    assert.equal(run!.summary.eligible, 3);
    assert.equal(run!.summary.due, 0);
  } finally {
    await stack.stop();
  }
});
