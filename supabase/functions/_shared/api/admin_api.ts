import type postgres from "postgres";
import { classifyAppAccess } from "../cafe24/app_status.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { verifyAfterNotice } from "../connect/app_uninstalled.ts";
import { createLifecycleStore } from "../connect/lifecycle_store.ts";
import { type ConnectionTarget, parseConnectionTarget } from "../connect/target.ts";
import { continueAfterResponse } from "../platform/background.ts";
import {
  ADMIN_API_CONFIG_REQUIRED,
  type AdminApiSettings,
  adminApiSettings,
  FUNCTION_SETTINGS,
  loadConfig,
} from "../platform/config.ts";
import { database } from "../platform/db.ts";
import { RequestError, type RequestErrorCode } from "../platform/errors.ts";
import { reportFailure } from "../platform/failure.ts";
import { configErrorResponse, errorResponse } from "../platform/http.ts";
import { logEvent } from "../platform/log.ts";
import { type Cafe24AccessToken, getCafe24AccessToken } from "../tokens/get_token.ts";
import {
  createBucketStore,
  noteFromHeaders,
  retryWaitMs,
  type SlotClock,
  systemSlotClock,
  waitForSlot,
} from "./bucket.ts";
import { adminApiUrl, checkAdminPath, pathTemplate, type QueryValue } from "./path.ts";

/**
 * The Cafe24 Admin API through the connector, for the app's server code: in-process
 * (`cafe24Fetch`) or over HTTP (cafe24-api, which calls the same `callAdminApi`). A call gets the
 * connection's token through the token API's path (getCafe24AccessToken: single flight, lease),
 * goes only to the connection's own mall under /api/v2/admin/, takes a slot of the mall's bucket
 * shared by every process (bucket.ts), and is retried only where Cafe24 cannot have acted on it:
 * once after a 401 with a replaced or refreshed token, once after a 429, and a GET once after a
 * timeout, a network error or a 5xx.
 *
 * Every answer carries `X-Cafe24-Connector: <outcome>` and `X-Cafe24-Connector-Waited-Ms`.
 * Cafe24's own answers keep their status, body, `X-Api-Call-Limit`, `X-Cafe24-*` and
 * `Retry-After`; no other header of Cafe24's comes back (no Set-Cookie, no hop-by-hop header).
 * Answers the connector makes itself carry this project's error body.
 */

export const API_METHODS = ["GET", "POST", "PUT", "DELETE"] as const;
export type ApiMethod = (typeof API_METHODS)[number];

/** How long a caller waits for a slot of the mall's bucket by default, and at most. */
export const DEADLINE_MS_DEFAULT = 10_000;
export const DEADLINE_MS_MAX = 60_000;
/** Cafe24's answer is streamed back up to this many bytes; beyond it the stream is cut. */
export const MAX_ANSWER_BYTES = 10 * 1024 * 1024;
/** A call's token stays valid at least this long (the token API's default). */
const MIN_VALID_S = 300;
/** An error message is short: a 403 is read this far to tell a deleted app. */
const MAX_403_BYTES = 16 * 1024;
const APP_DELETED_EVENT = 90077;

/** How a call ended: `X-Cafe24-Connector`, and the log line's `outcome`. */
export type CallOutcome =
  /** Cafe24's answer, first time. */
  | "answered"
  /** Cafe24's answer after one retry with a replaced or refreshed token. */
  | "retried_after_401"
  /** Cafe24's answer after waiting out a 429 once. */
  | "retried_after_429"
  /** A GET's answer after one retry following a timeout, network error or 5xx. */
  | "retried_after_error"
  /** Cafe24 rejected the token, and a replaced or refreshed one if there was one: 401 as sent. */
  | "token_rejected"
  /** Cafe24 says the app was deleted from the shop; a verification was started. */
  | "app_deleted"
  /** A POST/PUT/DELETE met a timeout, network error or 5xx: Cafe24 may have acted on it. */
  | "outcome_unknown"
  /** The connector's own answers: the lowercase error code (rate_limited, invalid_path, …). */
  | Lowercase<RequestErrorCode>;

/** One call, validated: what both forms hand to callAdminApi. */
export interface ApiCall {
  target: ConnectionTarget;
  method: ApiMethod;
  path: string;
  query: Record<string, QueryValue>;
  /** The request body as sent to Cafe24 (JSON); null for none. */
  body: string | null;
  /** Sent as the query's shop_no when given; otherwise the connection's stored one. */
  shopNo: number | null;
  deadlineMs: number;
  /** The caller's X-Cafe24-Api-Version for this call; null: CAFE24_API_VERSION's. */
  apiVersion: string | null;
}

/**
 * The call a caller describes: `mall_id` or `auth_settings_id`, `method` (GET default), `path`,
 * `query` (an object of strings, numbers and booleans), `body` (any JSON; POST and PUT only),
 * `shop_no`, `deadline_ms`. Throws RequestError INVALID_REQUEST, INVALID_MALL_ID or INVALID_PATH.
 */
export function parseApiCall(
  parameters: Record<string, unknown>,
  apiVersion: string | null = null,
): ApiCall {
  const target = parseConnectionTarget(parameters);
  const invalid = (detail: string) => new RequestError("INVALID_REQUEST", { detail });
  const method = parameters.method ?? "GET";
  if (typeof method !== "string" || !(API_METHODS as readonly string[]).includes(method)) {
    throw invalid("method must be GET, POST, PUT or DELETE");
  }
  const path = checkAdminPath(parameters.path);
  const query: Record<string, QueryValue> = {};
  const rawQuery = parameters.query ?? {};
  if (rawQuery === null || typeof rawQuery !== "object" || Array.isArray(rawQuery)) {
    throw invalid("query must be an object");
  }
  for (const [name, value] of Object.entries(rawQuery)) {
    if (!["string", "number", "boolean"].includes(typeof value)) {
      throw invalid("query values must be strings, numbers or booleans");
    }
    query[name] = value as QueryValue;
  }
  let body: string | null = null;
  if (parameters.body !== undefined && parameters.body !== null) {
    if (method !== "POST" && method !== "PUT") throw invalid("only POST and PUT carry a body");
    body = typeof parameters.body === "string" ? parameters.body : JSON.stringify(parameters.body);
  }
  const shopNo = parameters.shop_no ?? null;
  if (shopNo !== null && (!Number.isInteger(shopNo) || (shopNo as number) < 1)) {
    throw invalid("shop_no must be a positive integer");
  }
  const deadlineMs = parameters.deadline_ms ?? DEADLINE_MS_DEFAULT;
  if (
    !Number.isInteger(deadlineMs) || (deadlineMs as number) < 0 ||
    (deadlineMs as number) > DEADLINE_MS_MAX
  ) {
    throw invalid(`deadline_ms must be an integer from 0 to ${DEADLINE_MS_MAX}`);
  }
  if (apiVersion !== null && !/^\d{4}-\d{2}-\d{2}$/.test(apiVersion)) {
    throw invalid("X-Cafe24-Api-Version must be a date written YYYY-MM-DD");
  }
  return {
    target,
    method: method as ApiMethod,
    path,
    query,
    body,
    shopNo: shopNo as number | null,
    deadlineMs: deadlineMs as number,
    apiVersion,
  };
}

export interface AdminApiDeps {
  sql: postgres.Sql;
  settings: AdminApiSettings;
  /** The system clock where not given (tests). */
  clock?: SlotClock;
}

/** What cafe24Fetch takes besides the mall and the path. */
export interface Cafe24FetchInit {
  method?: ApiMethod;
  query?: Record<string, QueryValue>;
  /** A string is sent as it is; anything else as JSON. */
  body?: unknown;
  /** Only X-Cafe24-Api-Version is read: this call's version instead of CAFE24_API_VERSION. */
  headers?: HeadersInit;
  shopNo?: number;
  /** How long to wait for a slot of the mall's bucket (default 10 s, at most 60 s). */
  deadlineMs?: number;
  /** Names the connection instead of the mall (when several rows hold one mall). */
  authSettingsId?: string;
}

/**
 * Calls the Admin API of `mallId` (null with init.authSettingsId) at `path`, e.g.
 * `cafe24Fetch("mymall", "/api/v2/admin/products", { query: { limit: 10 } })`. Always resolves
 * to a Response: Cafe24's answer, or the connector's own error (see the module comment). `deps`
 * defaults to the functions' environment (the cafe24-api function's settings and database).
 */
export async function cafe24Fetch(
  mallId: string | null,
  path: string,
  init: Cafe24FetchInit = {},
  deps?: AdminApiDeps,
): Promise<Response> {
  let call: ApiCall;
  try {
    call = parseApiCall(
      {
        ...(mallId === null ? {} : { mall_id: mallId }),
        ...(init.authSettingsId === undefined ? {} : { auth_settings_id: init.authSettingsId }),
        method: init.method,
        path,
        query: init.query,
        body: init.body,
        shop_no: init.shopNo,
        deadline_ms: init.deadlineMs,
      },
      new Headers(init.headers).get("x-cafe24-api-version"),
    );
  } catch (error) {
    if (error instanceof RequestError) return connectorAnswer(error.code, error.details, 0);
    throw error;
  }
  if (deps === undefined) {
    const settings = FUNCTION_SETTINGS["cafe24-api"];
    const loaded = loadConfig(
      Deno.env.toObject(),
      ADMIN_API_CONFIG_REQUIRED,
      settings.uses,
      settings.tolerates,
    );
    if (!loaded.ok) return configErrorResponse("cafe24-api", loaded.code, loaded.names);
    deps = {
      sql: database(loaded.config.SUPABASE_DB_URL),
      settings: adminApiSettings(loaded.config),
    };
  }
  return await callAdminApi(deps, call);
}

/** One call as both forms make it; always resolves to the answer to send. */
export async function callAdminApi(deps: AdminApiDeps, call: ApiCall): Promise<Response> {
  const clock = deps.clock ?? systemSlotClock;
  const started = clock.now();
  const deadline = started + call.deadlineMs;
  const { app } = deps.settings;
  const bucket = createBucketStore(deps.sql);
  let waitedMs = 0;
  let mall = call.target.mallId ?? "(by id)";
  const finish = (response: Response, outcome: CallOutcome, attempts: number): Response => {
    response.headers.set("X-Cafe24-Connector", outcome);
    response.headers.set("X-Cafe24-Connector-Waited-Ms", String(Math.round(waitedMs)));
    logEvent(response.status >= 500 ? "warn" : "info", "cafe24_api_call", {
      mall_id: mall,
      method: call.method,
      path: pathTemplate(call.path),
      status: response.status,
      waited_ms: Math.round(waitedMs),
      attempts,
      outcome,
    });
    return response;
  };
  const refused = (code: RequestErrorCode, details: Record<string, unknown> = {}) =>
    finish(connectorAnswer(code, details, waitedMs), lower(code), 0);

  let token: Cafe24AccessToken;
  try {
    token = await accessToken(deps, call.target);
  } catch (error) {
    if (error instanceof RequestError) return refused(error.code, error.details);
    return refused(reportFailure("cafe24_api_crashed", error));
  }
  if (!isValidMallId(token.mall_id)) return refused("RECONNECT_REQUIRED");
  mall = token.mall_id;
  let url: URL;
  try {
    url = adminApiUrl(app.apiBaseUrl, mall, call.path, call.query, call.shopNo ?? token.shop_no);
  } catch (error) {
    if (error instanceof RequestError) return refused(error.code, error.details);
    throw error;
  }

  let retried: CallOutcome | null = null;
  let after401 = false;
  let after429 = false;
  let afterError = false;
  for (let attempt = 1;; attempt++) {
    const slot = await waitForSlot(bucket, mall, deps.settings, deadline, clock).catch(
      (error) => ({ granted: false as const, failure: reportFailure("cafe24_api_crashed", error) }),
    );
    waitedMs = clock.now() - started;
    if (!slot.granted) {
      if ("failure" in slot) return refused(slot.failure);
      const answer = connectorAnswer("RATE_LIMITED", {}, waitedMs);
      answer.headers.set("Retry-After", String(Math.max(1, Math.ceil(slot.waitMs / 1000))));
      return finish(answer, "rate_limited", attempt - 1);
    }
    const sent = token.access_token;
    let response: Response;
    try {
      response = await send(app, url, call, sent);
    } catch {
      // A timeout or a network error: Cafe24 may have acted on a write.
      if (call.method === "GET" && !afterError) {
        afterError = true;
        retried = "retried_after_error";
        continue;
      }
      const outcome = call.method === "GET" ? "cafe24_unavailable" : "outcome_unknown";
      return finish(connectorAnswer("CAFE24_UNAVAILABLE", {}, waitedMs), outcome, attempt);
    }
    await noteAnswer(bucket, mall, response, deps.settings);

    if (response.status >= 500) {
      if (call.method === "GET" && !afterError) {
        await response.body?.cancel();
        afterError = true;
        retried = "retried_after_error";
        continue;
      }
      const outcome = call.method === "GET" ? retried ?? "answered" : "outcome_unknown";
      return finish(cafe24Answer(response), outcome, attempt);
    }
    if (response.status === 429 && after429) {
      return finish(cafe24Answer(response), "rate_limited", attempt);
    }
    if (response.status === 429) {
      const waitMs = retryWaitMs(response.headers, deps.settings.bucketDrainPerS);
      if (clock.now() + waitMs <= deadline) {
        await response.body?.cancel();
        after429 = true;
        retried = "retried_after_429";
        await clock.sleep(waitMs);
        continue;
      }
      return finish(cafe24Answer(response), "rate_limited", attempt);
    }
    if (response.status === 401) {
      if (after401) return finish(cafe24Answer(response), "token_rejected", attempt);
      after401 = true;
      let replaced: Cafe24AccessToken;
      try {
        replaced = await accessToken(deps, call.target, sent);
      } catch (error) {
        await response.body?.cancel();
        if (error instanceof RequestError) return refused(error.code, error.details);
        return refused(reportFailure("cafe24_api_crashed", error));
      }
      if (replaced.access_token === sent) {
        return finish(cafe24Answer(response), "token_rejected", attempt);
      }
      await response.body?.cancel();
      token = replaced;
      retried = "retried_after_401";
      continue;
    }
    if (response.status === 403) {
      const text = await readCapped(response, MAX_403_BYTES);
      const answer = new Response(text, { status: 403, headers: passedHeaders(response.headers) });
      if (classifyAppAccess(403, text) === "app_deleted") {
        continueAfterResponse(verifyDeleted(deps, mall));
        return finish(answer, "app_deleted", attempt);
      }
      return finish(answer, retried ?? "answered", attempt);
    }
    return finish(cafe24Answer(response), retried ?? "answered", attempt);
  }
}

async function accessToken(
  deps: AdminApiDeps,
  target: ConnectionTarget,
  rejectedToken?: string,
): Promise<Cafe24AccessToken> {
  return await getCafe24AccessToken(
    deps.sql,
    {
      ...(target.authSettingsId === null ? {} : { authSettingsId: target.authSettingsId }),
      ...(target.mallId === null ? {} : { mallId: target.mallId }),
      minValidS: MIN_VALID_S,
      ...(rejectedToken === undefined ? {} : { rejectedToken }),
    },
    deps.settings,
  );
}

async function send(
  app: AdminApiDeps["settings"]["app"],
  url: URL,
  call: ApiCall,
  accessToken: string,
): Promise<Response> {
  const headers: Record<string, string> = { "Authorization": `Bearer ${accessToken}` };
  if (call.body !== null) headers["Content-Type"] = "application/json";
  const version = call.apiVersion ?? app.apiVersion;
  if (version !== null) headers["X-Cafe24-Api-Version"] = version;
  return await (app.fetch ?? fetch)(url, {
    method: call.method,
    headers,
    body: call.body,
    signal: AbortSignal.timeout(app.requestTimeoutMs),
    redirect: "manual",
  });
}

async function noteAnswer(
  bucket: ReturnType<typeof createBucketStore>,
  mallId: string,
  response: Response,
  settings: AdminApiSettings,
): Promise<void> {
  const note = noteFromHeaders(response.status, response.headers, settings.bucketDrainPerS);
  if (note === null) return;
  // The bucket is a courtesy to Cafe24: the answer goes back even when it cannot be noted.
  await bucket.note(mallId, note, settings).catch((error) =>
    reportFailure("cafe24_api_bucket_note_failed", error, { fields: { mall_id: mallId } })
  );
}

/** Cafe24's headers that come back: its rate-limit figures and the body's type, nothing else. */
function passedHeaders(from: Headers): Headers {
  const headers = new Headers({ "Cache-Control": "no-store" });
  for (const [name, value] of from) {
    if (
      name === "content-type" || name === "retry-after" || name === "x-api-call-limit" ||
      name.startsWith("x-cafe24-")
    ) {
      headers.set(name, value);
    }
  }
  return headers;
}

/** Cafe24's answer, streamed, cut off after MAX_ANSWER_BYTES. */
function cafe24Answer(response: Response): Response {
  const body = response.body === null ? null : response.body.pipeThrough(capped(MAX_ANSWER_BYTES));
  return new Response(body, { status: response.status, headers: passedHeaders(response.headers) });
}

function capped(maxBytes: number): TransformStream<Uint8Array, Uint8Array> {
  let size = 0;
  return new TransformStream({
    transform(chunk, controller) {
      size += chunk.byteLength;
      if (size > maxBytes) {
        controller.error(new RangeError("Cafe24's answer is larger than the connector passes on"));
        return;
      }
      controller.enqueue(chunk);
    },
  });
}

async function readCapped(response: Response, maxBytes: number): Promise<string> {
  try {
    const bytes = new Uint8Array(await response.arrayBuffer());
    return new TextDecoder().decode(bytes.subarray(0, maxBytes));
  } catch {
    return "";
  }
}

/** The connector's own answer: this project's error body. */
function connectorAnswer(
  code: RequestErrorCode,
  details: Record<string, unknown> | undefined,
  waitedMs: number,
): Response {
  const response = errorResponse(code, details ?? {}, { "Cache-Control": "no-store" });
  response.headers.set("X-Cafe24-Connector", lower(code));
  response.headers.set("X-Cafe24-Connector-Waited-Ms", String(Math.round(waitedMs)));
  return response;
}

function lower(code: RequestErrorCode): Lowercase<RequestErrorCode> {
  return code.toLowerCase() as Lowercase<RequestErrorCode>;
}

/**
 * Cafe24 said the app is gone: the same verification an app notice starts (at most one per mall
 * per 10 minutes, decided in the database), after the answer. It never refreshes: a dead token
 * met on the way waits for the mall's next refresh (verifyAfterRefresh).
 */
async function verifyDeleted(deps: AdminApiDeps, mallId: string): Promise<void> {
  try {
    await verifyAfterNotice({
      store: createLifecycleStore(deps.sql, deps.settings.tokenSeal),
      settings: { app: deps.settings.app },
    }, { eventNo: APP_DELETED_EVENT, mallId });
  } catch (error) {
    reportFailure("cafe24_api_verification_failed", error, { fields: { mall_id: mallId } });
  }
}
