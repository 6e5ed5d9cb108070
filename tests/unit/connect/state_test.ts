import assert from "node:assert/strict";
import {
  createState,
  type OAuthState,
  signState,
  STATE_TTL_MS,
  verifyState,
} from "../../../supabase/functions/_shared/connect/state.ts";
import { MAX_SCOPES } from "../../../supabase/functions/_shared/cafe24/scopes.ts";
import { base64url } from "../../../supabase/functions/_shared/platform/base64url.ts";

const SECRET = "unit-test-state-secret-0123456789";
const USER = "6f1c2a4e-8b1d-4c3a-9e2f-0a1b2c3d4e5f";
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const SCOPES = ["mall.read_store", "mall.read_product"];
const BINDING = { userId: USER, mallId: "shopalpha", scopes: SCOPES };

const invalid = { ok: false, code: "STATE_INVALID" } as const;

/** The JSON fields inside a state's payload. */
function payloadOf(value: string): Record<string, unknown> {
  const payload = value.split(".")[0]!;
  return JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
}

/**
 * A state with exactly these payload fields, signed under `label` the way state.ts signs (HMAC-SHA256
 * over the label and the payload text): for payloads signState cannot produce.
 */
async function signFields(fields: Record<string, unknown>, label: string): Promise<string> {
  const payload = base64url(new TextEncoder().encode(JSON.stringify(fields)));
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(label + payload));
  return `${payload}.${base64url(new Uint8Array(mac))}`;
}

Deno.test("createState() signs nonce, user, mall, scopes and a 10-minute expiry that verifyState() reads back", async () => {
  const { value, state } = await createState(SECRET, BINDING, NOW);
  assert.equal(state.expiresAt * 1000, NOW + STATE_TTL_MS);
  assert.match(state.nonce, /^[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(state.scopes, SCOPES);
  assert.deepEqual(await verifyState(SECRET, value, NOW + 60_000), { ok: true, state });
});

Deno.test("createState() writes a version 2 payload that carries the scopes in order", async () => {
  const scopes = ["mall.write_order", "mall.read_store", "mall.read_order"];
  const { value, state } = await createState(SECRET, { ...BINDING, scopes }, NOW);
  assert.deepEqual(payloadOf(value), {
    v: 2,
    n: state.nonce,
    u: USER,
    m: "shopalpha",
    s: scopes,
    e: state.expiresAt,
  });
});

Deno.test("createState() keeps its own copy of the scopes and lowercases the user id", async () => {
  const scopes = [...SCOPES];
  const { state } = await createState(
    SECRET,
    { ...BINDING, userId: USER.toUpperCase(), scopes },
    NOW,
  );
  scopes.push("mall.write_store");
  assert.deepEqual(state.scopes, SCOPES);
  assert.equal(state.userId, USER);
});

Deno.test("createState() draws a new nonce every time", async () => {
  const a = await createState(SECRET, BINDING, NOW);
  const b = await createState(SECRET, BINDING, NOW);
  assert.notEqual(a.state.nonce, b.state.nonce);
  assert.notEqual(a.value, b.value);
});

Deno.test("verifyState() refuses another secret, an altered payload and malformed values", async () => {
  const { value } = await createState(SECRET, BINDING, NOW);
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
    assert.deepEqual(await verifyState(SECRET, candidate, NOW), invalid);
  }
  assert.deepEqual(await verifyState(`${SECRET}x`, value, NOW), invalid);
});

Deno.test("verifyState() refuses a signed state with an unsafe mall id or a non-uuid user", async () => {
  const base = (await createState(SECRET, BINDING, NOW)).state;
  for (const state of [{ ...base, mallId: "evil.example/x#" }, { ...base, userId: "root" }]) {
    assert.deepEqual(await verifyState(SECRET, await signState(SECRET, state), NOW), invalid);
  }
});

Deno.test("verifyState() refuses a signed state whose scopes are not a list of Cafe24 scope names", async () => {
  const base = (await createState(SECRET, BINDING, NOW)).state;
  const badLists: unknown[] = [
    ["openid"],
    ["mall.read_store", "mall.delete_store"],
    ["mall.read_store,mall.read_product"],
    ["MALL.READ_STORE"],
    [""],
    [42],
    [null],
    Array.from({ length: MAX_SCOPES + 1 }, () => "mall.read_store"),
    "mall.read_store",
    { 0: "mall.read_store" },
    null,
  ];
  for (const scopes of badLists) {
    const state = { ...base, scopes } as unknown as OAuthState;
    assert.deepEqual(
      await verifyState(SECRET, await signState(SECRET, state), NOW),
      invalid,
      JSON.stringify(scopes),
    );
  }
});

Deno.test("verifyState() refuses a version 2 payload without scopes and a version 1 state", async () => {
  const { state } = await createState(SECRET, BINDING, NOW);
  const fields = { n: state.nonce, u: USER, m: "shopalpha", e: state.expiresAt };
  // Signed correctly, but without `s`: a state must say which scopes it was issued for.
  const withoutScopes = await signFields({ v: 2, ...fields }, "cafe24-oauth-state.v2.");
  assert.deepEqual(await verifyState(SECRET, withoutScopes, NOW), invalid);
  // Issued before scopes were bound into the state: refused rather than read with no scopes.
  const versionOne = await signFields({ v: 1, ...fields }, "cafe24-oauth-state.v1.");
  assert.deepEqual(await verifyState(SECRET, versionOne, NOW), invalid);
  // The control: the same helper with the current version and scopes signs a state that holds.
  const control = await signFields({ v: 2, ...fields, s: SCOPES }, "cafe24-oauth-state.v2.");
  assert.deepEqual(await verifyState(SECRET, control, NOW), { ok: true, state });
});

Deno.test("a state issued for every Cafe24 scope, or for MAX_SCOPES of them, verifies", async () => {
  const resources = [
    "application",
    "category",
    "product",
    "collection",
    "supply",
    "personal",
    "order",
    "community",
    "customer",
    "notification",
    "store",
    "promotion",
    "design",
    "privacy",
    "mileage",
    "shipping",
    "translation",
  ];
  const everyScope = [
    ...resources.flatMap((name) => [`mall.read_${name}`, `mall.write_${name}`]),
    "mall.read_salesreport",
    "mall.read_analytics",
  ];
  // As many names as a request or CAFE24_SCOPES may hold, each as long as the longest above.
  const most = Array.from(
    { length: MAX_SCOPES },
    (_, i) => `mall.write_notification_${"abcdefghijklmnopqrstuvwxyz"[i % 26]}${i < 26 ? "" : "x"}`,
  );
  for (const scopes of [everyScope, most]) {
    const { value, state } = await createState(SECRET, { ...BINDING, scopes }, NOW);
    assert.deepEqual(
      await verifyState(SECRET, value, NOW),
      { ok: true, state },
      `${scopes.length}`,
    );
  }
});

Deno.test("verifyState() reports STATE_EXPIRED from the expiry on", async () => {
  const { value } = await createState(SECRET, BINDING, NOW);
  assert.equal((await verifyState(SECRET, value, NOW + STATE_TTL_MS - 1000)).ok, true);
  assert.deepEqual(await verifyState(SECRET, value, NOW + STATE_TTL_MS), {
    ok: false,
    code: "STATE_EXPIRED",
  });
});
