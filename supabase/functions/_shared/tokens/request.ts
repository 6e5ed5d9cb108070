import { type ConnectionTarget, parseConnectionTarget } from "../connect/target.ts";
import { RequestError } from "../platform/errors.ts";

/** What a caller of cafe24-token (or getCafe24AccessToken) asks for, validated. */
export interface TokenRequest extends ConnectionTarget {
  /** The answer's access token stays valid for at least this many seconds. */
  minValidS: number;
}

/** Enough for a few API calls without racing the expiry. */
export const MIN_VALID_S_DEFAULT = 300;

/**
 * Cafe24's access tokens live 2 hours. Asking for at most 90 minutes leaves 30: a token refreshed
 * within the last half hour satisfies every caller, so no value a caller can ask for makes each
 * request refresh again.
 */
export const MIN_VALID_S_MAX = 5400;

/**
 * The connection (see parseConnectionTarget) and an optional `min_valid_s`, an integer from 0 to
 * MIN_VALID_S_MAX, as a number (JSON body) or a string (query). Throws RequestError
 * INVALID_REQUEST or INVALID_MALL_ID.
 */
export function parseTokenRequest(parameters: Record<string, unknown>): TokenRequest {
  const target = parseConnectionTarget(parameters);
  return { ...target, minValidS: parseMinValidS(parameters.min_valid_s) };
}

export function parseMinValidS(value: unknown): number {
  if (value === undefined) return MIN_VALID_S_DEFAULT;
  const number = typeof value === "string" && /^\d{1,6}$/.test(value) ? Number(value) : value;
  if (
    typeof number !== "number" || !Number.isInteger(number) || number < 0 ||
    number > MIN_VALID_S_MAX
  ) {
    throw new RequestError("INVALID_REQUEST", {
      detail: `min_valid_s must be an integer from 0 to ${MIN_VALID_S_MAX}`,
    });
  }
  return number;
}
