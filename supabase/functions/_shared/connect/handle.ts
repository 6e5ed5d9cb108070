import { base64url } from "../platform/base64url.ts";

/**
 * The handle of a pending connection: what cafe24-callback gives the browser (in the URL
 * fragment) and what the app sends back with the user's session to complete. 256 random bits,
 * base64url. Only its SHA-256 is stored, so a database read does not yield usable handles.
 */

const HANDLE_BYTES = 32;
const HANDLE = /^[A-Za-z0-9_-]{43}$/;

export function newHandle(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(HANDLE_BYTES)));
}

export function isWellFormedHandle(value: unknown): value is string {
  return typeof value === "string" && HANDLE.test(value);
}

export async function handleHash(handle: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(handle)));
}
