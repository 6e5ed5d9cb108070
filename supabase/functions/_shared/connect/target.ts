import { isValidMallId } from "../cafe24/mall_id.ts";
import { RequestError } from "../platform/errors.ts";

/**
 * Which connection a request names: by its `auth_settings` row or by its mall. Callers that act
 * on one connection (cafe24-disconnect, cafe24-token) take it the same way.
 */
export interface ConnectionTarget {
  /** Exactly one of the two is set. */
  authSettingsId: string | null;
  mallId: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Exactly one of `auth_settings_id` (a uuid, answered in lower case) and `mall_id`. Throws
 * RequestError INVALID_REQUEST, or INVALID_MALL_ID for a mall id that is not one.
 */
export function parseConnectionTarget(parameters: Record<string, unknown>): ConnectionTarget {
  const { auth_settings_id: id, mall_id: mallId } = parameters;
  if ((id === undefined) === (mallId === undefined)) {
    throw new RequestError("INVALID_REQUEST", {
      detail: "give exactly one of auth_settings_id and mall_id",
    });
  }
  if (id !== undefined) {
    if (typeof id !== "string" || !UUID.test(id)) {
      throw new RequestError("INVALID_REQUEST", { detail: "auth_settings_id must be a uuid" });
    }
    return { authSettingsId: id.toLowerCase(), mallId: null };
  }
  if (!isValidMallId(mallId)) throw new RequestError("INVALID_MALL_ID");
  return { authSettingsId: null, mallId };
}
