/**
 * What the stores do with token text at the database boundary: seal a token before it is written
 * and open it after it is read, so that everything above the stores deals in plaintext and
 * everything below (SQL, pg_net, dumps, replicas) holds ciphertext (token_crypto.ts).
 *
 * Three states, from CAFE24_TOKEN_KEYS and CAFE24_TOKEN_KEY_ID:
 * - `encrypting`: the ring holds the active key; new values are sealed with it, and values under
 *   any key of the ring (or legacy plaintext) open.
 * - `plaintext`: no ring is set. Tokens are written as they are (legacy plaintext), because
 *   refusing to store a refreshed pair would cost the mall its grant; every run warns
 *   TOKEN_KEYS_MISSING. A sealed value does not open (key_unavailable).
 * - `blocked`: a ring is set but CAFE24_TOKEN_KEY_ID names none of its usable keys. Nothing may be
 *   written, so nothing is refreshed (the old refresh token would die with the answer unstored);
 *   values still open with the keys the ring holds.
 */
import {
  decryptToken,
  encryptToken,
  isCiphertext,
  type KeyRing,
  kidOf,
  parseKeyRing,
  readKeyRing,
  type TokenField,
  type TokenPlace,
} from "./token_crypto.ts";

export type SealMode = "encrypting" | "plaintext" | "blocked";

const TOKEN_FIELDS: readonly TokenField[] = ["access_token", "refresh_token"];

/** Why a stored value cannot be opened here; `kid` names the key it needs (null: none named). */
export interface KeyProblem {
  reason: "key_unavailable" | "undecryptable";
  kid: string | null;
}

export type Opened = { ok: true; value: string } | { ok: false; problem: KeyProblem };

export interface TokenSeal {
  readonly mode: SealMode;
  /** The kid new values are written with (null unless `encrypting`). */
  readonly activeKid: string | null;
  /** Whether a value may be written now (not `blocked`). */
  readonly writable: boolean;
  /**
   * The key ids of the ring's usable keys (none without a ring): a value sealed under any other
   * does not open here, so a run tells the SQL rules to skip it (refresh_runs.token_key_ids).
   */
  readonly keyIds: readonly string[];
  /** The value to store for `plaintext` at `place`/`field`. Throws when not `writable`. */
  seal(place: TokenPlace, field: TokenField, plaintext: string): Promise<string>;
  /** The plaintext of a stored value (legacy plaintext opens as it is). */
  open(place: TokenPlace, field: TokenField, stored: string): Promise<Opened>;
  /** Whether a stored value is already as `seal` would write it now (right form, right key). */
  isCurrent(stored: string): boolean;
}

export class TokenKeyUnavailableError extends Error {
  constructor() {
    super("no active token key: CAFE24_TOKEN_KEY_ID names no usable key of CAFE24_TOKEN_KEYS");
    this.name = "TokenKeyUnavailableError";
  }
}

const seals = new Map<string, TokenSeal>();

/** The seal for a ring's configuration; one per configuration and process. */
export function tokenSeal(
  keysJson: string | undefined,
  activeKid: string | undefined,
): TokenSeal {
  const cacheKey = JSON.stringify([keysJson ?? null, activeKid ?? null]);
  let seal = seals.get(cacheKey);
  if (seal === undefined) {
    seal = createSeal(keysJson, activeKid);
    seals.set(cacheKey, seal);
  }
  return seal;
}

function createSeal(keysJson: string | undefined, activeKid: string | undefined): TokenSeal {
  const { keys, active, problems } = readKeyRing(keysJson, activeKid);
  const keyIds = [...keys.keys()];
  // Only the ids are kept; the key material is imported (not extractable) on first use.
  for (const bytes of keys.values()) bytes.fill(0);
  const mode: SealMode = problems.some((problem) => problem.code === "keys_missing")
    ? "plaintext"
    : active === null
    ? "blocked"
    : "encrypting";
  // Imported on first use only: a function that never touches a token pays nothing.
  let ring: Promise<KeyRing> | null = null;
  const keyRing = () => ring ??= parseKeyRing(keysJson, activeKid);

  return {
    mode,
    activeKid: mode === "encrypting" ? active : null,
    writable: mode !== "blocked",
    keyIds,

    async seal(place, field, plaintext) {
      if (mode === "plaintext") return plaintext;
      if (mode === "blocked") throw new TokenKeyUnavailableError();
      const sealed = encryptToken(await keyRing(), place, field, plaintext);
      if (!sealed.ok) throw new TokenKeyUnavailableError();
      return sealed.value;
    },

    async open(place, field, stored) {
      if (!isCiphertext(stored)) {
        // Legacy plaintext is a Cafe24 token as stored before the ring: never a dotted value. A
        // dotted one is a sealed value with its prefix altered (`V1.…`): taken for a token it
        // would be sent to Cafe24 and resealed as genuine, so it does not open.
        return stored.includes(".")
          ? { ok: false, problem: { reason: "undecryptable", kid: null } }
          : { ok: true, value: stored };
      }
      if (mode === "plaintext") {
        return { ok: false, problem: { reason: "key_unavailable", kid: kidOf(stored) } };
      }
      const opened = decryptToken(await keyRing(), place, field, stored);
      return opened.ok
        ? { ok: true, value: opened.value }
        : { ok: false, problem: { reason: opened.reason, kid: opened.kid } };
    },

    isCurrent(stored) {
      if (mode === "plaintext") return !isCiphertext(stored);
      return mode === "encrypting" && kidOf(stored) === active;
    },
  };
}

/** The seal of the functions' configuration. */
export function configuredTokenSeal(
  config: { CAFE24_TOKEN_KEYS?: string | undefined; CAFE24_TOKEN_KEY_ID?: string | undefined },
): TokenSeal {
  return tokenSeal(config.CAFE24_TOKEN_KEYS, config.CAFE24_TOKEN_KEY_ID);
}

/** A connection's place: its auth_settings id. */
export const connectionPlace = (authSettingsId: string): TokenPlace => ({
  kind: "connection",
  authSettingsId,
});

/** Where a pending connection's pair is sealed: its handle hash. */
export const pendingPlace = (handleHash: Uint8Array): TokenPlace => ({
  kind: "pending",
  handleHash,
});

/** A pair's fields as they are stored: both tokens sealed for `place`, the rest as they are. */
export async function sealPair<T extends Record<string, unknown>>(
  seal: TokenSeal,
  place: TokenPlace,
  pair: T,
): Promise<T> {
  const sealed: Record<string, unknown> = { ...pair };
  for (const field of TOKEN_FIELDS) {
    const value = pair[field];
    if (typeof value === "string") sealed[field] = await seal.seal(place, field, value);
  }
  return sealed as T;
}

/**
 * A stored pair opened for revocation: the fields that open, in plaintext; the others left out
 * (a token that cannot be opened cannot be revoked either, and is never sent as it is).
 */
export async function openPair<T extends { access_token?: unknown; refresh_token?: unknown }>(
  seal: TokenSeal,
  place: TokenPlace,
  pair: T,
): Promise<T> {
  const opened: T = { ...pair };
  for (const field of TOKEN_FIELDS) {
    const stored = pair[field];
    if (typeof stored !== "string") continue;
    const result = await seal.open(place, field, stored);
    if (result.ok) opened[field] = result.value as T[typeof field];
    else delete opened[field];
  }
  return opened;
}
