import { createHmac } from "node:crypto";
import { secretsMatch } from "./secrets.ts";

/**
 * How a request proves where it came from without carrying the secret: HMAC-SHA256 keyed with a
 * shared secret over `<timestamp>.<body>` (the timestamp in Unix seconds, the body exactly as
 * sent), hex-encoded and sent as `v1=<hex>` beside the timestamp. The timestamp is signed too, so a
 * receiver that refuses old timestamps also refuses replays of old requests. Used for the event
 * deliveries to the app (CAFE24_EVENTS_WEBHOOK_SECRET) and for the scheduled calls pg_net makes
 * to the functions (CRON_SECRET), whose queue other database roles can read.
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
