/**
 * Tokens at rest (token_crypto.ts): values round-trip, stay bound to their row and field, name
 * their key, refuse tampering, and let legacy plaintext through; the ring reports what is wrong
 * with it by kid, never by key.
 */
import { tokenSeal } from "../../../supabase/functions/_shared/platform/token_seal.ts";
import assert from "node:assert/strict";
import {
  decryptToken,
  encryptToken,
  isCiphertext,
  KID_PATTERN,
  kidOf,
  parseKeyRing,
  readKeyRing,
  type TokenPlace,
} from "../../../supabase/functions/_shared/platform/token_crypto.ts";

const KEY_A = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
const KEY_B = btoa(String.fromCharCode(...new Uint8Array(32).fill(9)));
const RING = JSON.stringify({ "k2025-01": KEY_A, k2: KEY_B });
const ROW_ID = "6f1c1f4e-8a52-4f0e-9d5e-2f6a0b1c2d3e";
const ROW: TokenPlace = { kind: "connection", authSettingsId: ROW_ID };
const OTHER_ROW: TokenPlace = {
  kind: "connection",
  authSettingsId: "0e9b4c1d-1111-4a2b-8c3d-4e5f60718293",
};
const PENDING: TokenPlace = { kind: "pending", handleHash: new Uint8Array(32).fill(0xab) };
const TOKEN = "AbCdEf0123456789xyzTOKEN";

Deno.test("a token round-trips and is stored in the v1 format with the active kid", async () => {
  const ring = await parseKeyRing(RING, "k2025-01");
  assert.deepEqual(ring.problems, []);
  assert.equal(ring.active, "k2025-01");
  const sealed = encryptToken(ring, ROW, "refresh_token", TOKEN);
  assert.ok(sealed.ok);
  assert.match(
    sealed.value,
    /^v1\.k2025-01\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/,
  );
  assert.ok(!sealed.value.includes(TOKEN));
  assert.ok(isCiphertext(sealed.value));
  assert.equal(kidOf(sealed.value), "k2025-01");
  assert.deepEqual(decryptToken(ring, ROW, "refresh_token", sealed.value), {
    ok: true,
    value: TOKEN,
    legacy: false,
    kid: "k2025-01",
  });
  const pending = encryptToken(ring, PENDING, "access_token", "é토큰");
  assert.ok(pending.ok);
  const opened = decryptToken(ring, PENDING, "access_token", pending.value);
  assert.ok(opened.ok && opened.value === "é토큰");
});

Deno.test("the same token twice gives two different values (fresh salt and IV)", async () => {
  const ring = await parseKeyRing(RING, "k2");
  const one = encryptToken(ring, ROW, "access_token", TOKEN);
  const two = encryptToken(ring, ROW, "access_token", TOKEN);
  assert.ok(one.ok && two.ok);
  assert.notEqual(one.value, two.value);
  assert.notEqual(one.value.split(".")[2], two.value.split(".")[2], "salt");
  assert.notEqual(one.value.split(".")[3], two.value.split(".")[3], "iv");
});

Deno.test("a value copied to another row, field or kind of place does not decrypt", async () => {
  const ring = await parseKeyRing(RING, "k2");
  const sealed = encryptToken(ring, ROW, "refresh_token", TOKEN);
  assert.ok(sealed.ok);
  const undecryptable = { ok: false, reason: "undecryptable", kid: "k2" };
  assert.deepEqual(
    decryptToken(ring, OTHER_ROW, "refresh_token", sealed.value),
    undecryptable,
  );
  assert.deepEqual(decryptToken(ring, ROW, "access_token", sealed.value), undecryptable);
  assert.deepEqual(decryptToken(ring, PENDING, "refresh_token", sealed.value), undecryptable);
  // The row's id in upper case is the same row.
  const upper: TokenPlace = { kind: "connection", authSettingsId: ROW_ID.toUpperCase() };
  assert.ok((decryptToken(ring, upper, "refresh_token", sealed.value)).ok);
});

Deno.test("a kid the ring lacks is key_unavailable, naming the kid", async () => {
  const full = await parseKeyRing(RING, "k2");
  const sealed = encryptToken(full, ROW, "access_token", TOKEN);
  assert.ok(sealed.ok);
  const without = await parseKeyRing(JSON.stringify({ "k2025-01": KEY_A }), "k2025-01");
  assert.deepEqual(decryptToken(without, ROW, "access_token", sealed.value), {
    ok: false,
    reason: "key_unavailable",
    kid: "k2",
  });
});

Deno.test("a kid rewritten to another key of the ring does not decrypt", async () => {
  const ring = await parseKeyRing(RING, "k2");
  const sealed = encryptToken(ring, ROW, "access_token", TOKEN);
  assert.ok(sealed.ok);
  const moved = sealed.value.replace(/^v1\.k2\./, "v1.k2025-01.");
  assert.deepEqual(decryptToken(ring, ROW, "access_token", moved), {
    ok: false,
    reason: "undecryptable",
    kid: "k2025-01",
  });
});

Deno.test("tampered or malformed ciphertext is undecryptable", async () => {
  const ring = await parseKeyRing(RING, "k2");
  const sealed = encryptToken(ring, ROW, "access_token", TOKEN);
  assert.ok(sealed.ok);
  const parts = sealed.value.split(".");
  const flip = (text: string, at: number) =>
    text.slice(0, at) + (text[at] === "A" ? "B" : "A") + text.slice(at + 1);
  const variants = [
    [...parts.slice(0, 4), flip(parts[4]!, 3)].join("."), // ciphertext
    [...parts.slice(0, 4), flip(parts[4]!, parts[4]!.length - 2)].join("."), // tag
    [...parts.slice(0, 3), flip(parts[3]!, 0), parts[4]].join("."), // iv
    [...parts.slice(0, 2), flip(parts[2]!, 0), ...parts.slice(3)].join("."), // salt
    parts.slice(0, 4).join(".") + "." + parts[4]!.slice(0, 10), // truncated below a tag
    sealed.value + ".extra",
    "v1.k2.!!!.???.***",
  ];
  for (const variant of variants) {
    const result = decryptToken(ring, ROW, "access_token", variant);
    assert.deepEqual(result, { ok: false, reason: "undecryptable", kid: "k2" }, variant);
  }
  assert.deepEqual(decryptToken(ring, ROW, "access_token", "v1."), {
    ok: false,
    reason: "undecryptable",
    kid: null,
  });
});

Deno.test("a value that is not v1 ciphertext is legacy plaintext, passed through", async () => {
  const ring = await parseKeyRing(RING, "k2");
  for (const legacy of ["plainRefreshToken123", "V1.k2.a.b.c", "v2.k2.a.b.c", ""]) {
    assert.equal(isCiphertext(legacy), false, legacy);
    assert.equal(kidOf(legacy), null);
    assert.deepEqual(decryptToken(ring, ROW, "refresh_token", legacy), {
      ok: true,
      value: legacy,
      legacy: true,
      kid: null,
    });
  }
});

Deno.test("without an active key nothing is encrypted, and the reason says so", async () => {
  const ring = await parseKeyRing(RING, "gone");
  assert.equal(ring.active, null);
  assert.deepEqual(ring.problems, [{ code: "active_unknown" }]);
  assert.deepEqual(encryptToken(ring, ROW, "access_token", TOKEN), {
    ok: false,
    reason: "key_unavailable",
    kid: null,
  });
});

Deno.test("the ring keeps its valid entries and names the invalid ones by kid", async () => {
  const json = JSON.stringify({
    good: KEY_A,
    url: KEY_B.replaceAll("+", "-").replaceAll("/", "_").replace(/=$/, ""),
    short: btoa("sixteen bytes!!!"),
    "not a kid": KEY_A,
    number: 42,
  });
  const ring = await parseKeyRing(json, "good");
  assert.deepEqual([...ring.ring.keys()], ["good", "url"]);
  assert.deepEqual(ring.problems, [
    { code: "key_invalid", kid: "short" },
    { code: "kid_invalid", index: 3 },
    { code: "key_invalid", kid: "number" },
  ]);
  assert.ok(!JSON.stringify(ring.problems).includes(KEY_A), "no key in a problem");
  assert.deepEqual(readKeyRing(undefined, undefined).problems, [
    { code: "keys_missing" },
  ]);
  assert.deepEqual(readKeyRing("[1,2]", "a").problems, [
    { code: "keys_not_object" },
    { code: "active_unknown" },
  ]);
  assert.deepEqual(readKeyRing("{not json", "").problems, [
    { code: "keys_not_object" },
    { code: "active_missing" },
  ]);
});

Deno.test("the ring is imported once per pair of settings", async () => {
  const first = parseKeyRing(RING, "k2");
  assert.equal(parseKeyRing(RING, "k2"), first);
  assert.notEqual(parseKeyRing(RING, "k2025-01"), first);
  await first;
});

Deno.test("kids are 1-32 letters, digits, _ or -", () => {
  for (const kid of ["a", "k2025-01_b", "x".repeat(32)]) assert.match(kid, KID_PATTERN);
  for (const kid of ["", "x".repeat(33), "a.b", "a|b", "ä", "a b"]) {
    assert.doesNotMatch(kid, KID_PATTERN);
  }
});

Deno.test("an invalid place is a programming error", async () => {
  const ring = await parseKeyRing(RING, "k2");
  assert.throws(
    () =>
      encryptToken(ring, { kind: "pending", handleHash: new Uint8Array(8) }, "access_token", TOKEN),
    TypeError,
  );
  assert.throws(
    () => encryptToken(ring, { kind: "connection", authSettingsId: "" }, "access_token", TOKEN),
    TypeError,
  );
});

Deno.test("the seal opens legacy plaintext, never a dotted value that is not sealed", async () => {
  const place = {
    kind: "connection",
    authSettingsId: "00000000-0000-4000-8000-000000000001",
  } as const;
  for (
    const seal of [
      tokenSeal(undefined, undefined),
      tokenSeal(JSON.stringify({ k1: "A".repeat(43) }), "k1"),
    ]
  ) {
    assert.deepEqual(await seal.open(place, "refresh_token", "rt-legacy"), {
      ok: true,
      value: "rt-legacy",
    });
    const altered = await seal.open(place, "refresh_token", "V1.k1.salt.iv.body");
    assert.deepEqual(altered, { ok: false, problem: { reason: "undecryptable", kid: null } });
  }
});
