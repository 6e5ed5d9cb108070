/**
 * Tokens at rest: the functions store a mall's access and refresh tokens only as ciphertext they
 * make themselves, so a database dump, a backup or a role that can read the rows
 * yields nothing usable without the key ring, which lives only in the functions' secrets.
 *
 *   v1.<kid>.<base64url salt>.<base64url iv>.<base64url ciphertext+tag>
 *
 * Each value gets its own AES-256-GCM key, derived with HKDF-SHA256 from the ring key `kid` and a
 * random 16-byte salt, and a random 96-bit IV: one GCM key with random IVs is good for 2^32
 * encryptions, and a ring key outlives far more refreshes than that. The primitives are
 * node:crypto's (Deno's own implementation, as on the Edge Runtime), called synchronously: a
 * refresh opens one value and seals two, and WebCrypto's asynchronous calls cost it about four
 * times the CPU for the same bytes (bench/token_crypto_bench.ts). The associated data binds a
 * value to its place, `v1|<kid>|<auth_settings_id>|<field>` for a connection and
 * `v1|<kid>|<handle hash hex>|<field>` for a pending connection: a ciphertext copied to another
 * row or field does not decrypt. The kid is bound too, so rewriting it cannot steer a value to
 * another key.
 *
 * Nothing here logs, and no error or result carries a key, a plaintext or a ciphertext: only kids,
 * which are names, not secrets.
 */
import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  type KeyObject,
} from "node:crypto";
import { base64url, fromBase64url } from "./base64url.ts";

export const TOKEN_CIPHERTEXT_VERSION = "v1";
/** A key id: short, and safe inside the dotted format and the associated data. */
export const KID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
export const TOKEN_KEY_BYTES = 32;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** HKDF's info: the derived keys serve this purpose and no other. */
const HKDF_INFO = new TextEncoder().encode("cafe24-connector token v1");
const SALT = /^[A-Za-z0-9_-]{22}$/;
const IV = /^[A-Za-z0-9_-]{16}$/;
const BODY = /^[A-Za-z0-9_-]{22,}$/;
const HASH_HEX = /^[0-9a-f]{64}$/;

type Bytes = Uint8Array<ArrayBuffer>;

/** Bytes backed by an ArrayBuffer, which the crypto calls take; the decoders' type does not promise one. */
function decode(text: string): Bytes {
  const decoded = fromBase64url(text);
  const bytes = new Uint8Array(decoded.length);
  bytes.set(decoded);
  return bytes;
}

/** The token fields a place holds; the name is the column's (or JSON key's) name. */
export type TokenField = "access_token" | "refresh_token";

/**
 * Where a value is stored: a connection (its auth_settings id) or a pending connection (the
 * SHA-256 of its handle, as stored). The associated data names it.
 */
export type TokenPlace =
  | { kind: "connection"; authSettingsId: string }
  | { kind: "pending"; handleHash: Uint8Array };

/** What is wrong with a ring's configuration; entries name kids, never key material. */
export type KeyRingProblem =
  | { code: "keys_missing" }
  | { code: "keys_not_object" }
  /** The n-th entry (0-based) has a key id that does not match KID_PATTERN. */
  | { code: "kid_invalid"; index: number }
  /** The key is not base64 (or base64url) of exactly 32 bytes. */
  | { code: "key_invalid"; kid: string }
  | { code: "active_missing" }
  /** CAFE24_TOKEN_KEY_ID names no valid key of the ring (or is not a key id at all). */
  | { code: "active_unknown" };

export interface KeyRing {
  /** Every valid key of the ring, as a secret key object (its bytes live outside the JS heap). */
  ring: ReadonlyMap<string, KeyObject>;
  /** The kid new values are written with; null when CAFE24_TOKEN_KEY_ID names no valid key. */
  active: string | null;
  problems: KeyRingProblem[];
}

export type EncryptResult =
  | { ok: true; value: string }
  | { ok: false; reason: "key_unavailable"; kid: string | null };

export type DecryptResult =
  /** `legacy`: the stored value was plaintext from before encryption; `kid` null then. */
  | { ok: true; value: string; legacy: boolean; kid: string | null }
  /** The value names a kid the ring does not hold: add the key back (TOKEN_KEY_UNAVAILABLE). */
  | { ok: false; reason: "key_unavailable"; kid: string }
  /**
   * The value is malformed, tampered with, or belongs to another place or field; `kid` null when
   * the value is too malformed to name one. Retrying does not help.
   */
  | { ok: false; reason: "undecryptable"; kid: string | null };

/**
 * The ring's entries checked and decoded, without importing anything: what configuration
 * warnings need, synchronously. Invalid entries are left out and reported; the valid ones stay
 * usable, so one bad entry never costs the values written with the others.
 */
export function readKeyRing(
  keysJson: string | undefined,
  activeKid: string | undefined,
): {
  keys: Map<string, Bytes>;
  active: string | null;
  problems: KeyRingProblem[];
} {
  const keys = new Map<string, Bytes>();
  const problems: KeyRingProblem[] = [];
  if (keysJson === undefined || keysJson === "") {
    problems.push({ code: "keys_missing" });
    return { keys, active: null, problems };
  }
  const entries = jsonObjectEntries(keysJson);
  if (entries === null) problems.push({ code: "keys_not_object" });
  for (const [index, [kid, value]] of (entries ?? []).entries()) {
    if (!KID_PATTERN.test(kid)) {
      problems.push({ code: "kid_invalid", index });
      continue;
    }
    const bytes = typeof value === "string" ? decodeKey(value) : null;
    if (bytes === null) problems.push({ code: "key_invalid", kid });
    else keys.set(kid, bytes);
  }
  let active: string | null = null;
  if (activeKid === undefined || activeKid === "") problems.push({ code: "active_missing" });
  else if (keys.has(activeKid)) active = activeKid;
  else problems.push({ code: "active_unknown" });
  return { keys, active, problems };
}

function jsonObjectEntries(text: string): [string, unknown][] | null {
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return null;
    return Object.entries(parsed);
  } catch {
    return null;
  }
}

/** Base64 as `openssl rand -base64 32` writes it, or base64url; padding optional. */
function decodeKey(text: string): Bytes | null {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(trimmed)) return null;
  try {
    const bytes = decode(
      trimmed.replace(/=$/, "").replaceAll("+", "-").replaceAll("/", "_"),
    );
    return bytes.length === TOKEN_KEY_BYTES ? bytes : null;
  } catch {
    return null;
  }
}

/** Whether CAFE24_TOKEN_KEYS is a JSON object at all (its entries are checked by readKeyRing). */
export function isKeyRingObject(keysJson: string): boolean {
  return jsonObjectEntries(keysJson) !== null;
}

let cached:
  | { keysJson: string | undefined; activeKid: string | undefined; ring: Promise<KeyRing> }
  | null = null;

/**
 * The ring from CAFE24_TOKEN_KEYS and CAFE24_TOKEN_KEY_ID, imported once per process: importing is
 * the costly part, and a refresh's whole budget is about 2 ms of CPU. The cache holds the last
 * pair of strings given, so a changed secret (a new worker) is imported anew.
 */
export function parseKeyRing(
  keysJson: string | undefined,
  activeKid: string | undefined,
): Promise<KeyRing> {
  if (cached !== null && cached.keysJson === keysJson && cached.activeKid === activeKid) {
    return cached.ring;
  }
  const ring = importKeyRing(keysJson, activeKid);
  cached = { keysJson, activeKid, ring };
  // A failed import is not kept: the next call tries again.
  ring.catch(() => {
    if (cached?.ring === ring) cached = null;
  });
  return ring;
}

function importKeyRing(
  keysJson: string | undefined,
  activeKid: string | undefined,
): Promise<KeyRing> {
  const { keys, active, problems } = readKeyRing(keysJson, activeKid);
  const ring = new Map<string, KeyObject>();
  for (const [kid, bytes] of keys) {
    ring.set(kid, createSecretKey(bytes));
    // The key object holds its own copy; the decoded bytes need not outlive the import.
    bytes.fill(0);
  }
  return Promise.resolve({ ring, active, problems });
}

/** Whether a stored value is ciphertext of this module; anything else is legacy plaintext. */
export function isCiphertext(stored: string): boolean {
  return stored.startsWith(`${TOKEN_CIPHERTEXT_VERSION}.`);
}

/** The kid a stored ciphertext names; null for legacy plaintext or a malformed value. */
export function kidOf(stored: string): string | null {
  return parse(stored)?.kid ?? null;
}

interface Parsed {
  kid: string;
  salt: Bytes;
  iv: Bytes;
  body: Bytes;
}

function parse(stored: string): Parsed | null {
  if (!isCiphertext(stored)) return null;
  const parts = stored.split(".");
  if (parts.length !== 5) return null;
  const [, kid, salt, iv, body] = parts as [string, string, string, string, string];
  if (!KID_PATTERN.test(kid) || !SALT.test(salt) || !IV.test(iv) || !BODY.test(body)) return null;
  try {
    const parsed = {
      kid,
      salt: decode(salt),
      iv: decode(iv),
      body: decode(body),
    };
    return parsed.body.length >= TAG_BYTES ? parsed : null;
  } catch {
    return null;
  }
}

/** `v1|<kid>|<place>|<field>`. */
function associatedData(kid: string, place: TokenPlace, field: TokenField): Bytes {
  return new TextEncoder().encode(
    `${TOKEN_CIPHERTEXT_VERSION}|${kid}|${placeId(place)}|${field}`,
  );
}

function placeId(place: TokenPlace): string {
  if (place.kind === "connection") {
    // A uuid as PostgreSQL prints it; lower case so that the same row always names itself alike.
    const id = place.authSettingsId.toLowerCase();
    if (id === "" || id.includes("|")) throw new TypeError("authSettingsId is not an id");
    return id;
  }
  const hex = Array.from(place.handleHash, (b) => b.toString(16).padStart(2, "0")).join("");
  if (!HASH_HEX.test(hex)) throw new TypeError("handleHash is not a SHA-256 digest");
  return hex;
}

/** The value's own AES-256 key: HKDF-SHA256 of the ring key with the value's salt. */
function valueKey(base: KeyObject, salt: Bytes): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", base, salt, HKDF_INFO, 32));
}

/** Encrypts `plaintext` for `place`/`field` with the ring's active key. */
export function encryptToken(
  ring: KeyRing,
  place: TokenPlace,
  field: TokenField,
  plaintext: string,
): EncryptResult {
  const kid = ring.active;
  const base = kid === null ? undefined : ring.ring.get(kid);
  if (kid === null || base === undefined) return { ok: false, reason: "key_unavailable", kid };
  const aad = associatedData(kid, place, field);
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const key = valueKey(base, salt);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const head = cipher.update(new TextEncoder().encode(plaintext));
  const tail = cipher.final();
  const body = new Uint8Array(head.length + tail.length + TAG_BYTES);
  body.set(head);
  body.set(tail, head.length);
  body.set(cipher.getAuthTag(), head.length + tail.length);
  key.fill(0);
  return {
    ok: true,
    value: [TOKEN_CIPHERTEXT_VERSION, kid, base64url(salt), base64url(iv), base64url(body)]
      .join("."),
  };
}

/**
 * The plaintext of a stored value. A value that is not `v1.` ciphertext is legacy plaintext and
 * comes back as it is (`legacy: true`), so rows written before encryption keep working until
 * they are rewritten.
 */
export function decryptToken(
  ring: KeyRing,
  place: TokenPlace,
  field: TokenField,
  stored: string,
): DecryptResult {
  if (!isCiphertext(stored)) return { ok: true, value: stored, legacy: true, kid: null };
  const parsed = parse(stored);
  if (parsed === null) {
    return { ok: false, reason: "undecryptable", kid: kidFromPrefix(stored) };
  }
  const base = ring.ring.get(parsed.kid);
  if (base === undefined) return { ok: false, reason: "key_unavailable", kid: parsed.kid };
  const aad = associatedData(parsed.kid, place, field);
  const key = valueKey(base, parsed.salt);
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, parsed.iv, {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(aad);
    decipher.setAuthTag(parsed.body.subarray(parsed.body.length - TAG_BYTES));
    const head = decipher.update(parsed.body.subarray(0, parsed.body.length - TAG_BYTES));
    const tail = decipher.final();
    const plain = new Uint8Array(head.length + tail.length);
    plain.set(head);
    plain.set(tail, head.length);
    return {
      ok: true,
      value: new TextDecoder("utf-8", { fatal: true }).decode(plain),
      legacy: false,
      kid: parsed.kid,
    };
  } catch {
    // The tag did not verify (tampered, or another place's value) or the bytes are not text.
    return { ok: false, reason: "undecryptable", kid: parsed.kid };
  } finally {
    key.fill(0);
  }
}

/** The kid of a malformed value, when its second part is one: helps say which key it meant. */
function kidFromPrefix(stored: string): string | null {
  const kid = stored.split(".")[1] ?? "";
  return KID_PATTERN.test(kid) ? kid : null;
}
