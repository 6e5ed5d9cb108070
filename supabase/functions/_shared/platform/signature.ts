import { createHmac } from "node:crypto";
import { secretsMatch } from "./secrets.ts";

/**
 * How a request proves where it came from without carrying the secret: HMAC-SHA256 keyed with a
 * shared secret over `<timestamp>.<body>` (the timestamp in Unix seconds, the body exactly as
 * sent), hex-encoded and sent as `v1=<hex>` beside the timestamp. The timestamp is signed too, so a
 * receiver that refuses old timestamps also refuses replays of old requests. Used for the event
 * deliveries to the app (CAFE24_EVENTS_WEBHOOK_SECRET). The scheduled calls pg_net makes to the
 * functions (CRON_SECRET), whose queue other database roles can read, sign more: see
 * signCronCall.
 */

export const SIGNATURE_VERSION = "v1";

/** How far a receiver should let a delivery's timestamp be from its own clock. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function signBody(secret: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`, "utf8").digest("hex");
  return `${SIGNATURE_VERSION}=${mac}`;
}

/**
 * The receiver's check, as the README shows it for events: the signature matches (constant time) and the
 * timestamp is within `toleranceSeconds` of `nowSeconds`.
 */
export function verifySignedBody(
  secret: string,
  headers: { timestamp: string | null; signature: string | null },
  body: string,
  nowSeconds: number,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): boolean {
  if (headers.timestamp === null || headers.signature === null) return false;
  if (!/^\d{1,12}$/.test(headers.timestamp)) return false;
  const timestamp = Number(headers.timestamp);
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  return secretsMatch(headers.signature, signBody(secret, timestamp, body));
}

/**
 * A scheduled call's signature (call_project_function in
 * supabase/schemas/50_schedule_and_project_calls.sql makes it): HMAC-SHA256 keyed with
 * CRON_SECRET over `<function>.<timestamp>.<nonce>.<body>`. The function name binds it to the
 * function it was made for; the nonce, random per call, tells apart the calls of one tick (same
 * body, same timestamp) so that the receiver can take each signature once (caller.ts records the
 * nonces it has taken).
 */
export function signCronCall(
  secret: string,
  functionName: string,
  timestamp: number,
  nonce: string,
  body: string,
): string {
  const mac = createHmac("sha256", secret)
    .update(`${functionName}.${timestamp}.${nonce}.${body}`, "utf8")
    .digest("hex");
  return `${SIGNATURE_VERSION}=${mac}`;
}

/** What a nonce looks like: the database sends a UUID; anything unlike one is refused unread. */
export const CRON_NONCE_PATTERN = /^[A-Za-z0-9-]{16,64}$/;

/**
 * The signature and timestamp of a scheduled call, as verifySignedBody checks a delivery; the
 * nonce's freshness is the caller's to check (it needs the database).
 */
export function verifyCronCall(
  secret: string,
  functionName: string,
  headers: { timestamp: string | null; nonce: string | null; signature: string | null },
  body: string,
  nowSeconds: number,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): boolean {
  if (headers.timestamp === null || headers.signature === null || headers.nonce === null) {
    return false;
  }
  if (!/^\d{1,12}$/.test(headers.timestamp) || !CRON_NONCE_PATTERN.test(headers.nonce)) {
    return false;
  }
  const timestamp = Number(headers.timestamp);
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  return secretsMatch(
    headers.signature,
    signCronCall(secret, functionName, timestamp, headers.nonce, body),
  );
}
