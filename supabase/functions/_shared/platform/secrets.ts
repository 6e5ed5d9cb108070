import { createHash, timingSafeEqual } from "node:crypto";

/**
 * The shortest secret accepted for signing OAuth states, and recommended for CRON_SECRET:
 * 32 characters of `openssl rand -base64 32` (44 characters) carry far more than the 128 bits a
 * guessed or brute-forced secret would need.
 */
export const SECRET_MIN_LENGTH = 32;

/**
 * Compares a presented secret with the expected one in constant time. Both sides are hashed
 * first so that neither the content nor the length of the expected secret leaks through timing.
 */
export function secretsMatch(presented: string, expected: string): boolean {
  const a = createHash("sha256").update(presented, "utf8").digest();
  const b = createHash("sha256").update(expected, "utf8").digest();
  return timingSafeEqual(a, b);
}
