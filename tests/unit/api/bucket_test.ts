/** What Cafe24's headers say about a mall's bucket, and how long a 429 asks to wait. */
import assert from "node:assert/strict";
import { noteFromHeaders, retryWaitMs } from "../../../supabase/functions/_shared/api/bucket.ts";

Deno.test("X-Api-Call-Limit gives the level and the capacity", () => {
  const note = noteFromHeaders(200, new Headers({ "x-api-call-limit": "21/40" }), 2);
  assert.deepEqual(note, { used: 21, capacity: 40, blockedMs: null });
  assert.equal(noteFromHeaders(200, new Headers(), 2), null);
  assert.equal(noteFromHeaders(200, new Headers({ "x-api-call-limit": "lots" }), 2), null);
});

Deno.test("a 429 blocks for Retry-After, else the Remain headers, else one drain step", () => {
  assert.equal(retryWaitMs(new Headers({ "retry-after": "3" }), 2), 3000);
  assert.equal(retryWaitMs(new Headers({ "x-cafe24-call-remain": "2" }), 2), 2000);
  assert.equal(
    retryWaitMs(new Headers({ "x-cafe24-call-remain": "1", "x-cafe24-time-remain": "4" }), 2),
    4000,
  );
  assert.equal(retryWaitMs(new Headers(), 2), 500);
  assert.deepEqual(noteFromHeaders(429, new Headers({ "x-api-call-limit": "40/40" }), 2), {
    used: 40,
    capacity: 40,
    blockedMs: 500,
  });
});

Deno.test("Remain headers block only a 429 or a usage at 100%", () => {
  const remain = { "x-api-call-limit": "40/40", "x-cafe24-call-remain": "1" };
  assert.equal(noteFromHeaders(200, new Headers(remain), 2)?.blockedMs, null);
  assert.equal(
    noteFromHeaders(200, new Headers({ ...remain, "x-cafe24-call-usage": "100" }), 2)?.blockedMs,
    1000,
  );
});
