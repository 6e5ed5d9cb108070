import type { RequestErrorCode } from "./errors.ts";
import { logEvent, type LogValue } from "./log.ts";

/**
 * What an unexpected error answers, and the one log line that says what it was. A request
 * answers 503 DATABASE_UNAVAILABLE only when the database could not be reached, which the caller
 * may try again in a moment; anything else (a constraint, a bug) is 500 INTERNAL_ERROR, which no
 * retry fixes.
 *
 * The line names the error by its name and its code: a PostgresError's SQLSTATE, or the code of
 * a connection that failed (postgres.js's own, such as CONNECT_TIMEOUT, or the socket's, such as
 * ECONNREFUSED). Never the error's message or detail: PostgreSQL quotes the offending values there,
 * a token in a unique violation's detail for one.
 */

export type FailureCode = Extract<RequestErrorCode, "DATABASE_UNAVAILABLE" | "INTERNAL_ERROR">;

/** Codes of a connection that could not be opened or was lost, not of a query's error. */
const CONNECTION_ERROR_CODES = new Set([
  // postgres.js (src/errors.js: Errors.connection)
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  // the socket's, as node:net reports them (in Deno too)
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * SQLSTATEs of a server that cannot serve the connection: class 08 (connection exception),
 * 57P01-57P05 (shutting down, crashed, starting up, database dropped, idle session ended) and
 * 53300 (no connection slot left).
 */
const CONNECTION_SQLSTATE = /^(08[0-9A-Z]{3}|57P[0-9A-Z]{2}|53300)$/;

const CODE = /^[A-Z0-9_]{1,40}$/;
const NAME = /^[A-Za-z_$][\w$]{0,63}$/;

interface ErrorKind {
  name: string;
  /** The SQLSTATE of an error the database answered with. */
  sqlstate: string | null;
  /** Any other error's code, e.g. ECONNREFUSED. */
  code: string | null;
}

function kindOf(error: unknown): ErrorKind {
  if (!(error instanceof Error)) return { name: "unknown", sqlstate: null, code: null };
  const name = NAME.test(error.name) ? error.name : "unknown";
  const raw = (error as { code?: unknown }).code;
  const code = typeof raw === "string" && CODE.test(raw) ? raw : null;
  // postgres.js names the errors the server sent PostgresError; their code is the SQLSTATE.
  return name === "PostgresError"
    ? { name, sqlstate: code, code: null }
    : { name, sqlstate: null, code };
}

export function failureCode(error: unknown): FailureCode {
  const { sqlstate, code } = kindOf(error);
  const unreachable = (sqlstate !== null && CONNECTION_SQLSTATE.test(sqlstate)) ||
    (code !== null && CONNECTION_ERROR_CODES.has(code));
  return unreachable ? "DATABASE_UNAVAILABLE" : "INTERNAL_ERROR";
}

export interface FailureContext {
  /** The SQL function the failed call ran, e.g. `cafe24_private.defer_event_deliveries`. */
  sqlFunction?: string;
  /** What places the failure (a user, a run, a mall): ids and codes, never a value. */
  fields?: Record<string, LogValue>;
}

/**
 * Logs `event` at level error with what kind of error it was and returns what the request
 * answers (failureCode).
 */
export function reportFailure(
  event: string,
  error: unknown,
  context: FailureContext = {},
): FailureCode {
  const failure = failureCode(error);
  const { name, sqlstate, code } = kindOf(error);
  logEvent("error", event, {
    ...context.fields,
    failure,
    error: name,
    ...(sqlstate === null ? {} : { sqlstate }),
    ...(code === null ? {} : { error_code: code }),
    ...(context.sqlFunction === undefined ? {} : { sql_function: context.sqlFunction }),
  });
  return failure;
}
