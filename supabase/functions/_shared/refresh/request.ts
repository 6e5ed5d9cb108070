import { RequestError } from "../platform/errors.ts";
import { prefersRespondAsync } from "../platform/http.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import type { RunTrigger } from "./scope.ts";

/** What a caller of cafe24-refresh asked for, validated. */
export interface RefreshRequestOptions {
  mallId: string | null;
  force: boolean;
  trigger: RunTrigger;
  respondAsync: boolean;
  /** At most this many connections (the schedule's per-invocation cap); null: the config's. */
  maxConnections: number | null;
  /** The schedule tick that sent this request (cafe24_private.refresh_ticks). */
  tickId: number | null;
}

const SECRET_CALLER_TRIGGERS = new Set<RunTrigger>(["cron", "manual", "cli"]);

/**
 * `mall_id` (one mall only), `force` (refresh even if not due) and, for secret callers, the
 * `trigger` recorded in the run history, `max_connections` (a cap below the function's own) and
 * `tick` (the schedule tick that sent the request: pg_cron's job sends both). `Prefer:
 * respond-async` asks for 202 at once.
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
  return {
    mallId: mallId ?? null,
    force,
    trigger,
    respondAsync: prefersRespondAsync(request),
    maxConnections: secretOnly(parameters, "max_connections", caller, MAX_CONNECTIONS_LIMIT),
    tickId: secretOnly(parameters, "tick", caller, Number.MAX_SAFE_INTEGER),
  };
}

/** The schedule never asks for more; the function's own cap bounds it again. */
const MAX_CONNECTIONS_LIMIT = 1_000_000;

/** A positive integer (a number or its decimal digits) only the scheduler may send. */
function secretOnly(
  parameters: Record<string, unknown>,
  name: string,
  caller: "secret" | "user",
  max: number,
): number | null {
  const value = parameters[name];
  if (value === undefined) return null;
  if (caller !== "secret") {
    throw new RequestError("INVALID_REQUEST", { detail: `${name} is for the scheduler only` });
  }
  const n = typeof value === "string" && /^[0-9]{1,16}$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new RequestError("INVALID_REQUEST", {
      detail: `${name} must be an integer from 1 to ${max}`,
    });
  }
  return n;
}

function parseBoolean(value: unknown, name: string): boolean {
  if (value === undefined || value === false || value === "false" || value === "0") return false;
  if (value === true || value === "true" || value === "1") return true;
  throw new RequestError("INVALID_REQUEST", { detail: `${name} must be true or false` });
}
