import { createHmac } from "node:crypto";
import { secretsMatch } from "../platform/secrets.ts";

/**
 * How an event delivery proves where it came from: HMAC-SHA256, keyed with
 * CAFE24_EVENTS_WEBHOOK_SECRET, over `<timestamp>.<body>` (the timestamp in Unix seconds, the body
 * exactly as sent), hex-encoded and sent as `v1=<hex>`. The timestamp is signed too, so a
 * receiver that refuses old timestamps also refuses replays of old deliveries.
 */

export const EVENT_HEADERS = {
  id: "X-Cafe24-Connector-Event-Id",
  timestamp: "X-Cafe24-Connector-Timestamp",
  signature: "X-Cafe24-Connector-Signature",
} as const;

export const SIGNATURE_VERSION = "v1";

/** How far a receiver should let a delivery's timestamp be from its own clock. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function signEvent(secret: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`, "utf8").digest("hex");
  return `${SIGNATURE_VERSION}=${mac}`;
}

/**
 * The receiver's check, as the README shows it: the signature matches (constant time) and the
 * timestamp is within `toleranceSeconds` of `nowSeconds`.
 */
export function verifyEventSignature(
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
  return secretsMatch(headers.signature, signEvent(secret, timestamp, body));
}
