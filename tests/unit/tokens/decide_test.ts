/**
 * What cafe24-token answers for a connection as read: which row a request means, and whether its
 * token is answered, refreshed first, waited for, or unavailable and why.
 */
import assert from "node:assert/strict";
import {
  decideToken,
  selectConnection,
  type TokenRow,
} from "../../../supabase/functions/_shared/tokens/decide.ts";

const NOW = Date.parse("2026-12-01T03:00:00Z");
const at = (offsetMs: number) => new Date(NOW + offsetMs);

function row(overrides: Partial<TokenRow> = {}): TokenRow {
  return {
    authSettingsId: "00000000-0000-4000-8000-000000000001",
    mallId: "shopone",
    rowState: "ok",
    status: "active",
    accessToken: "at",
    storedAccessToken: "at",
    keyProblem: null,
    accessExpiresAt: at(3_600_000),
    shopNo: 1,
    scopes: ["mall.read_store"],
    leaseExpiresAt: null,
    nextAttemptAt: null,
    lastErrorCode: null,
    dbNow: new Date(NOW),
    ...overrides,
  };
}

Deno.test("selectConnection: one row by id, the one usable row of a mall, else why not", () => {
  assert.deepEqual(selectConnection([]), { kind: "not_found" });
  assert.deepEqual(selectConnection([row({ rowState: "no_cafe24" })]), { kind: "not_found" });
  const usable = row();
  assert.deepEqual(selectConnection([usable]), { row: usable });
  const dead = row({ status: "reconnect_required" });
  assert.deepEqual(selectConnection([dead]), { row: dead }, "decided on: 409");
  assert.deepEqual(selectConnection([usable, dead]), { row: usable });
  assert.deepEqual(selectConnection([dead, row({ status: "disconnected" })]), { row: dead });
  assert.deepEqual(selectConnection([usable, row()]), { kind: "ambiguous" });
});

Deno.test("decideToken: valid for as long as asked → the stored token", () => {
  assert.deepEqual(decideToken(row(), 300, null), {
    kind: "answer",
    token: {
      access_token: "at",
      expires_at: "2026-12-01T04:00:00.000Z",
      mall_id: "shopone",
      shop_no: 1,
      scopes: ["mall.read_store"],
    },
  });
  // Exactly as long as asked is long enough; the database's clock decides, not the caller's.
  assert.equal(decideToken(row({ accessExpiresAt: at(300_000) }), 300, null).kind, "answer");
  assert.equal(decideToken(row({ accessExpiresAt: at(299_999) }), 300, null).kind, "refresh");
  assert.equal(decideToken(row({ accessExpiresAt: at(-1) }), 0, null).kind, "refresh");
  // Settings the app wrote in another shape are not guessed at.
  const odd = decideToken(row({ shopNo: "2", scopes: "mall.read_store" }), 300, null);
  assert.ok(odd.kind === "answer");
  assert.equal(odd.token.shop_no, null);
  assert.equal(odd.token.scopes, null);
});

Deno.test("decideToken: an unknown expiry or no access token needs a refresh", () => {
  assert.equal(decideToken(row({ accessExpiresAt: null }), 0, null).kind, "refresh");
  assert.equal(decideToken(row({ accessToken: null }), 0, null).kind, "refresh");
});

Deno.test("decideToken: rows that need their owner, or are not connections", () => {
  for (
    const overrides of [
      { status: "reconnect_required" },
      { status: "disconnected", rowState: "missing_keys" },
      { rowState: "missing_keys" },
      { rowState: "malformed" },
    ]
  ) {
    assert.deepEqual(decideToken(row(overrides), 300, null), { kind: "reconnect_required" });
  }
  assert.deepEqual(decideToken(row({ rowState: "no_cafe24" }), 300, null), { kind: "not_found" });
});

Deno.test("decideToken: someone else's lease is waited for until it ends", () => {
  assert.deepEqual(
    decideToken(row({ accessExpiresAt: at(60_000), leaseExpiresAt: at(75_000) }), 300, null),
    { kind: "wait", leaseEndsInMs: 75_000 },
  );
  assert.equal(
    decideToken(row({ accessExpiresAt: at(60_000), leaseExpiresAt: at(0) }), 300, null).kind,
    "refresh",
    "a lease that has run out is nobody's",
  );
  assert.equal(
    decideToken(row({ leaseExpiresAt: at(75_000) }), 300, null).kind,
    "answer",
    "a valid token is answered whoever refreshes it",
  );
});

Deno.test("decideToken: a failed refresh answers the still-valid token, else unavailable", () => {
  const valid = decideToken(row({ accessExpiresAt: at(60_000) }), 300, "CAFE24_SERVER_ERROR");
  assert.ok(valid.kind === "answer");
  assert.equal(valid.token.refresh_failed, "CAFE24_SERVER_ERROR");
  assert.equal(valid.token.access_token, "at");
  assert.deepEqual(
    decideToken(row({ accessExpiresAt: at(0) }), 300, "CAFE24_TIMEOUT"),
    { kind: "unavailable", reason: "CAFE24_TIMEOUT", retryAfterS: null },
  );
});

Deno.test("decideToken: a connection backing off counts as failed with its last code", () => {
  const backingOff = { nextAttemptAt: at(42_500), lastErrorCode: "CAFE24_RATE_LIMITED" };
  const valid = decideToken(row({ ...backingOff, accessExpiresAt: at(60_000) }), 300, null);
  assert.ok(valid.kind === "answer");
  assert.equal(valid.token.refresh_failed, "CAFE24_RATE_LIMITED");
  assert.deepEqual(
    decideToken(row({ ...backingOff, accessExpiresAt: at(-60_000) }), 300, null),
    { kind: "unavailable", reason: "CAFE24_RATE_LIMITED", retryAfterS: 43 },
  );
  // A backoff that is over is no reason any more.
  assert.equal(
    decideToken(row({ ...backingOff, nextAttemptAt: at(0), accessExpiresAt: at(0) }), 300, null)
      .kind,
    "refresh",
  );
  // A fresh token is answered as such, whatever failed before.
  const fresh = decideToken(row(backingOff), 300, null);
  assert.ok(fresh.kind === "answer");
  assert.equal(Object.hasOwn(fresh.token, "refresh_failed"), false);
});
