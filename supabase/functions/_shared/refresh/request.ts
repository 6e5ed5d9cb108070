import { RequestError } from "../platform/errors.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import type { RunTrigger } from "./store.ts";

/** What a caller of cafe24-refresh asked for, validated. */
export interface RefreshRequestOptions {
  mallId: string | null;
  force: boolean;
  trigger: RunTrigger;
  respondAsync: boolean;
}

const SECRET_CALLER_TRIGGERS = new Set<RunTrigger>(["cron", "manual", "cli"]);

/**
 * `mall_id` (one mall only), `force` (refresh even if not due) and, for secret callers, the
 * `trigger` recorded in the run history. `Prefer: respond-async` asks for 202 at once.
 */
export function parseRefreshRequest(
  request: Request,
  parameters: Record<string, unknown>,
  caller: "secret" | "user",
): RefreshRequestOptions {
  const mallId = parameters.mall_id;
  if (mallId !== undefined && !isValidMallId(mallId)) {
    throw new RequestError("INVALID_MALL_ID");
  }
  const force = parseBoolean(parameters.force, "force");
  let trigger: RunTrigger = caller === "user" ? "user" : "manual";
  if (caller === "secret" && parameters.trigger !== undefined) {
    if (!SECRET_CALLER_TRIGGERS.has(parameters.trigger as RunTrigger)) {
      throw new RequestError("INVALID_REQUEST", { detail: "trigger must be cron, manual or cli" });
    }
    trigger = parameters.trigger as RunTrigger;
  }
  const prefer = request.headers.get("prefer") ?? "";
  return {
    mallId: mallId ?? null,
    force,
    trigger,
    respondAsync: /(^|[\s,;])respond-async($|[\s,;])/i.test(prefer),
  };
}

function parseBoolean(value: unknown, name: string): boolean {
  if (value === undefined || value === false || value === "false" || value === "0") return false;
  if (value === true || value === "true" || value === "1") return true;
  throw new RequestError("INVALID_REQUEST", { detail: `${name} must be true or false` });
}
