/**
 * The local stack's token key ring (CAFE24_TOKEN_KEYS and CAFE24_TOKEN_KEY_ID, see
 * token_crypto.ts). A ring belongs to a database: values written with it decrypt only with it. So
 * `npm start` makes one the first time it starts on a data dir and keeps it beside the database,
 * in `<data dir>/token_keys.json` (mode 0600), and `--reset` removes both together. A ring set in
 * .env or the shell wins, as with every other variable. Tests and benchmarks, whose databases are
 * thrown away, make a fresh ring per database with newTokenRing() and keep no file.
 *
 * Nothing here prints a key.
 */
import { base64url } from "../../supabase/functions/_shared/platform/base64url.ts";
import {
  KID_PATTERN,
  readKeyRing,
  TOKEN_KEY_BYTES,
} from "../../supabase/functions/_shared/platform/token_crypto.ts";
import type { LocalEnv } from "./local_env.ts";

/** A ring as the functions read it: the two variables' values. */
export interface TokenRingEnv {
  CAFE24_TOKEN_KEYS: string;
  CAFE24_TOKEN_KEY_ID: string;
}

/** A key id from today's date (`local20250101`): says when the key was made. */
export function dateKid(prefix: string, now = new Date()): string {
  return `${prefix}${now.toISOString().slice(0, 10).replaceAll("-", "")}`;
}

/** One fresh random key under `kid`, and that kid as the active one. */
export function newTokenRing(kid = dateKid("local")): TokenRingEnv {
  if (!KID_PATTERN.test(kid)) throw new TypeError("not a key id");
  const key = base64url(crypto.getRandomValues(new Uint8Array(TOKEN_KEY_BYTES)));
  return { CAFE24_TOKEN_KEYS: JSON.stringify({ [kid]: key }), CAFE24_TOKEN_KEY_ID: kid };
}

export function tokenRingPath(dataDir: string): string {
  return `${dataDir}/token_keys.json`;
}

/**
 * The data dir's ring, made (mode 0600) when there is none. A file that is there but unusable is
 * an error, never replaced: a new ring would leave the database's values unreadable.
 */
export async function loadOrCreateTokenRing(
  dataDir: string,
): Promise<{ ring: TokenRingEnv; created: boolean }> {
  const path = tokenRingPath(dataDir);
  const existing = await readTokenRing(path);
  if (existing !== null) return { ring: existing, created: false };
  const ring = newTokenRing();
  try {
    await Deno.writeTextFile(path, JSON.stringify(ring, null, 2) + "\n", {
      mode: 0o600,
      createNew: true,
    });
  } catch (error) {
    // Another start made it in the meantime: use that one.
    if (error instanceof Deno.errors.AlreadyExists) {
      const made = await readTokenRing(path);
      if (made !== null) return { ring: made, created: false };
    }
    throw error;
  }
  // The mode given at creation is subject to the umask; this one is not.
  await Deno.chmod(path, 0o600);
  return { ring, created: true };
}

/** The data dir's ring; null when it has none. An unusable file is an error (see above). */
export function loadTokenRing(dataDir: string): Promise<TokenRingEnv | null> {
  return readTokenRing(tokenRingPath(dataDir));
}

async function readTokenRing(path: string): Promise<TokenRingEnv | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const unusable = new Error(
    `${path} is not a usable token key ring: restore it from a copy, or start with --reset ` +
      `(which also wipes the database, whose tokens only that ring can read)`,
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw unusable;
  }
  const ring = parsed as Partial<TokenRingEnv> | null;
  if (
    typeof ring?.CAFE24_TOKEN_KEYS !== "string" || typeof ring.CAFE24_TOKEN_KEY_ID !== "string" ||
    readKeyRing(ring.CAFE24_TOKEN_KEYS, ring.CAFE24_TOKEN_KEY_ID).problems.length > 0
  ) {
    throw unusable;
  }
  // Kept private even if something loosened it since.
  await Deno.chmod(path, 0o600);
  return {
    CAFE24_TOKEN_KEYS: ring.CAFE24_TOKEN_KEYS,
    CAFE24_TOKEN_KEY_ID: ring.CAFE24_TOKEN_KEY_ID,
  };
}

/** Removes the data dir's ring; true when there was one. */
export async function removeTokenRing(dataDir: string): Promise<boolean> {
  try {
    await Deno.remove(tokenRingPath(dataDir));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Puts the ring into the stack's environment: the one from .env or the shell when either
 * variable is set there (that pair is the user's to get right), else the data dir's.
 */
export async function applyTokenRing(
  env: LocalEnv,
  dataDir: string,
): Promise<"env" | "created" | "kept"> {
  if (env.has("CAFE24_TOKEN_KEYS") || env.has("CAFE24_TOKEN_KEY_ID")) return "env";
  const { ring, created } = await loadOrCreateTokenRing(dataDir);
  env.fallback("CAFE24_TOKEN_KEYS", ring.CAFE24_TOKEN_KEYS);
  env.fallback("CAFE24_TOKEN_KEY_ID", ring.CAFE24_TOKEN_KEY_ID);
  return created ? "created" : "kept";
}
