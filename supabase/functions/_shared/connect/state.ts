import { isValidMallId } from "../cafe24/mall_id.ts";
import { isScopeList } from "../cafe24/scopes.ts";
import { base64url, fromBase64url } from "../platform/base64url.ts";
import { secretsMatch } from "../platform/secrets.ts";

/**
 * The OAuth `state` of one connection attempt: `<payload>.<signature>`, both base64url. The
 * payload is JSON `{v, n, u, m, s, e}`: version, a random nonce, the user id, the mall id, the
 * requested scopes and the expiry in epoch seconds. The signature is HMAC-SHA256 under CAFE24_OAUTH_STATE_SECRET over a
 * label and the payload text, so the state cannot be altered or minted without the secret.
 *
 * A signature cannot make a state single-use: the nonce is also recorded in the database by
 * cafe24-authorize and deleted by the callback that uses it (cafe24_private.oauth_states, in
 * supabase/schemas/60_connect_and_custody.sql).
 */

export const STATE_TTL_MS = 10 * 60 * 1000;
const STATE_VERSION = 2;
const SIGNING_LABEL = "cafe24-oauth-state.v2.";
const NONCE_BYTES = 32;
// Room for MAX_SCOPES scope names in the payload, and a bound on what is parsed.
const MAX_STATE_LENGTH = 4096;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const NONCE = /^[A-Za-z0-9_-]{43}$/;

export interface OAuthState {
  nonce: string;
  /** The Supabase user who started the attempt (lowercase uuid). */
  userId: string;
  mallId: string;
  /** The scopes the user asked for, from the server's allow-list. */
  scopes: string[];
  /** Epoch seconds. */
  expiresAt: number;
}

export type StateCheck =
  | { ok: true; state: OAuthState }
  | { ok: false; code: "STATE_INVALID" | "STATE_EXPIRED" };

export function newNonce(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
}

/** A fresh state for `userId`, `mallId` and `scopes`, valid for STATE_TTL_MS from `nowMs`. */
export async function createState(
  secret: string,
  binding: { userId: string; mallId: string; scopes: string[] },
  nowMs = Date.now(),
): Promise<{ value: string; state: OAuthState }> {
  const state: OAuthState = {
    nonce: newNonce(),
    userId: binding.userId.toLowerCase(),
    mallId: binding.mallId,
    scopes: [...binding.scopes],
    expiresAt: Math.floor((nowMs + STATE_TTL_MS) / 1000),
  };
  return { value: await signState(secret, state), state };
}

/** Serializes and signs a state (exported so tests can build states the server did not issue). */
export async function signState(secret: string, state: OAuthState): Promise<string> {
  const payload = base64url(
    new TextEncoder().encode(JSON.stringify({
      v: STATE_VERSION,
      n: state.nonce,
      u: state.userId,
      m: state.mallId,
      s: state.scopes,
      e: state.expiresAt,
    })),
  );
  return `${payload}.${await signature(secret, payload)}`;
}

/**
 * Checks the signature (in constant time), the shape and the expiry. Does not look at the
 * database: whether the nonce is still unused is for the caller to settle, atomically.
 */
export async function verifyState(
  secret: string,
  value: string | null | undefined,
  nowMs = Date.now(),
): Promise<StateCheck> {
  const invalid = { ok: false, code: "STATE_INVALID" } as const;
  if (typeof value !== "string" || value.length > MAX_STATE_LENGTH) return invalid;
  const parts = value.split(".");
  if (parts.length !== 2) return invalid;
  const [payload, presented] = parts as [string, string];
  if (!BASE64URL.test(payload) || !BASE64URL.test(presented)) return invalid;
  if (!secretsMatch(presented, await signature(secret, payload))) return invalid;

  let fields: unknown;
  try {
    fields = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(fromBase64url(payload)));
  } catch {
    return invalid;
  }
  if (fields === null || typeof fields !== "object") return invalid;
  const { v, n, u, m, s, e } = fields as Record<string, unknown>;
  if (
    v !== STATE_VERSION || typeof n !== "string" || !NONCE.test(n) || typeof u !== "string" ||
    !UUID.test(u) || !isValidMallId(m) || !isScopeList(s) || typeof e !== "number" ||
    !Number.isSafeInteger(e)
  ) {
    return invalid;
  }
  if (e * 1000 <= nowMs) return { ok: false, code: "STATE_EXPIRED" };
  return { ok: true, state: { nonce: n, userId: u, mallId: m, scopes: s, expiresAt: e } };
}

const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (key === undefined) {
    key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    keys.set(secret, key);
  }
  return key;
}

async function signature(secret: string, payload: string): Promise<string> {
  const mac = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(secret),
    new TextEncoder().encode(SIGNING_LABEL + payload),
  );
  return base64url(new Uint8Array(mac));
}
