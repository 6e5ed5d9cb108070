import assert from "node:assert/strict";
import {
  createState,
  signState,
  STATE_TTL_MS,
  verifyState,
} from "../../../supabase/functions/_shared/connect/state.ts";

const SECRET = "unit-test-state-secret-0123456789";
const USER = "6f1c2a4e-8b1d-4c3a-9e2f-0a1b2c3d4e5f";
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

Deno.test("createState() signs nonce, user, mall and a 10-minute expiry that verifyState() reads back", async () => {
  const { value, state } = await createState(SECRET, { userId: USER, mallId: "shopalpha" }, NOW);
  assert.equal(state.expiresAt * 1000, NOW + STATE_TTL_MS);
  assert.match(state.nonce, /^[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(await verifyState(SECRET, value, NOW + 60_000), { ok: true, state });
});

Deno.test("createState() draws a new nonce every time", async () => {
  const a = await createState(SECRET, { userId: USER, mallId: "shopalpha" }, NOW);
  const b = await createState(SECRET, { userId: USER, mallId: "shopalpha" }, NOW);
  assert.notEqual(a.state.nonce, b.state.nonce);
  assert.notEqual(a.value, b.value);
});

Deno.test("verifyState() refuses another secret, an altered payload and malformed values", async () => {
  const { value } = await createState(SECRET, { userId: USER, mallId: "shopalpha" }, NOW);
  const [payload, signature] = value.split(".") as [string, string];
  const altered = payload.slice(0, 5) + (payload[5] === "a" ? "b" : "a") + payload.slice(6);
  for (
    const candidate of [
      `${altered}.${signature}`,
      `${payload}.${signature.slice(1)}`,
      `${payload}.`,
      payload,
      `${value}.x`,
      "",
      "a".repeat(2000),
      null,
      undefined,
    ]
  ) {
    assert.deepEqual(await verifyState(SECRET, candidate, NOW), {
      ok: false,
      code: "STATE_INVALID",
    });
  }
  assert.deepEqual(await verifyState(`${SECRET}x`, value, NOW), {
    ok: false,
    code: "STATE_INVALID",
  });
});

Deno.test("verifyState() refuses a signed state with an unsafe mall id or a non-uuid user", async () => {
  const base = (await createState(SECRET, { userId: USER, mallId: "shopalpha" }, NOW)).state;
  for (const state of [{ ...base, mallId: "evil.example/x#" }, { ...base, userId: "root" }]) {
    assert.deepEqual(await verifyState(SECRET, await signState(SECRET, state), NOW), {
      ok: false,
      code: "STATE_INVALID",
    });
  }
});

Deno.test("verifyState() reports STATE_EXPIRED from the expiry on", async () => {
  const { value } = await createState(SECRET, { userId: USER, mallId: "shopalpha" }, NOW);
  assert.equal((await verifyState(SECRET, value, NOW + STATE_TTL_MS - 1000)).ok, true);
  assert.deepEqual(await verifyState(SECRET, value, NOW + STATE_TTL_MS), {
    ok: false,
    code: "STATE_EXPIRED",
  });
});
