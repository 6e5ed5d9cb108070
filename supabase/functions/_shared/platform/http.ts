import { REQUEST_ERRORS, RequestError, type RequestErrorCode } from "./errors.ts";
import { configRules } from "./config.ts";
import { logEvent } from "./log.ts";

/** JSON responses, CORS, request bodies and credentials, shared by every function. */

/**
 * The largest request body any function reads. Every parameter a function takes is a few short
 * strings (a mall id, a scope list, a flag), so 16 KiB is generous; anything larger is refused
 * with 413 BODY_TOO_LARGE before it can cost memory or CPU: by its Content-Length before a byte
 * is read, and otherwise by reading at most MAX_REQUEST_BODY_BYTES + 1 bytes.
 */
export const MAX_REQUEST_BODY_BYTES = 16 * 1024;

/**
 * cafe24-api forwards a caller's body to the Admin API (a product with its description, a batch
 * of orders): up to 1 MiB, the one function that reads more than MAX_REQUEST_BODY_BYTES.
 */
export const MAX_API_REQUEST_BODY_BYTES = 1024 * 1024;

const ALLOWED_HEADERS = "authorization, x-client-info, apikey, content-type, x-cron-secret, prefer";

export function jsonResponse(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json; charset=utf-8", ...headers },
  });
}

/**
 * 302 to `location`. Never cached, and no Referer from it: the URLs around an OAuth redirect
 * carry states and codes.
 */
export function redirectResponse(
  location: string | URL,
  headers: Record<string, string> = {},
): Response {
  return new Response(null, {
    status: 302,
    headers: {
      ...headers,
      "Location": String(location),
      "Cache-Control": "no-store",
      "Referrer-Policy": "no-referrer",
    },
  });
}

/** `{"error": CODE}` plus any safe details, with the code's status. */
export function errorResponse(
  code: RequestErrorCode,
  details: Record<string, unknown> = {},
  headers: HeadersInit = {},
): Response {
  return jsonResponse({ error: code, ...details }, REQUEST_ERRORS[code].status, headers);
}

/**
 * 500 naming the missing or invalid variables and the rule each must follow (never their values),
 * logged for the operator.
 */
export function configErrorResponse(
  functionName: string,
  code: "CONFIG_MISSING" | "CONFIG_INVALID",
  names: string[],
  headers: HeadersInit = {},
): Response {
  const rules = configRules(code, names);
  logEvent("error", "config_missing", { function: functionName, code, names, rules });
  return errorResponse(
    code,
    { [code === "CONFIG_MISSING" ? "missing" : "invalid"]: names, rules },
    headers,
  );
}

export function requestErrorResponse(error: RequestError, headers: HeadersInit = {}): Response {
  return errorResponse(error.code, error.details ?? {}, headers);
}

/**
 * CORS headers for a request's Origin. `allowed` is CORS_ALLOWED_ORIGINS: `*` (the default,
 * fine because every call carries its credentials in a header, never a cookie) or a
 * comma-separated list of exact origins.
 */
export function corsHeaders(request: Request, allowed: string): Record<string, string> {
  const origin = request.headers.get("origin");
  const list = allowed.split(",").map((o) => o.trim()).filter((o) => o !== "");
  const base = {
    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Max-Age": "86400",
  };
  if (list.includes("*")) return { ...base, "Access-Control-Allow-Origin": "*" };
  if (origin !== null && list.includes(origin)) {
    return { ...base, "Access-Control-Allow-Origin": origin, "Vary": "Origin" };
  }
  return { ...base, "Vary": "Origin" };
}

export function preflightResponse(request: Request, allowed: string): Response {
  return new Response(null, { status: 204, headers: corsHeaders(request, allowed) });
}

/**
 * What every function does first: work out the CORS headers, answer a preflight, refuse other
 * methods and bodies announced larger than MAX_REQUEST_BODY_BYTES. Returns the headers to send,
 * or the response that already ends the request.
 */
export function openRequest(
  request: Request,
  env: Record<string, string | undefined>,
  methods: readonly string[],
  maxBodyBytes = MAX_REQUEST_BODY_BYTES,
): { cors: Record<string, string>; early: Response | null } {
  const allowed = env.CORS_ALLOWED_ORIGINS ?? "*";
  const cors = corsHeaders(request, allowed);
  if (request.method === "OPTIONS") return { cors, early: preflightResponse(request, allowed) };
  if (!methods.includes(request.method)) {
    return { cors, early: errorResponse("METHOD_NOT_ALLOWED", {}, cors) };
  }
  if (announcedBodyTooLarge(request, maxBodyBytes)) {
    return { cors, early: errorResponse("BODY_TOO_LARGE", {}, cors) };
  }
  return { cors, early: null };
}

function announcedBodyTooLarge(request: Request, maxBytes = MAX_REQUEST_BODY_BYTES): boolean {
  const length = request.headers.get("content-length")?.trim();
  return length !== undefined && /^\d+$/.test(length) && Number(length) > maxBytes;
}

/**
 * The request body as text. A body announced larger than `maxBytes` is refused before a byte is
 * read; one sent without a Content-Length (chunked) is read until more than `maxBytes` have
 * arrived (16 KiB + 1 byte when it comes byte by byte), then cancelled and refused. Either way
 * BODY_TOO_LARGE, and no caller can make a function buffer more than one chunk past the limit.
 */
export async function readBodyText(
  request: Request,
  maxBytes = MAX_REQUEST_BODY_BYTES,
): Promise<string> {
  if (announcedBodyTooLarge(request, maxBytes)) throw new RequestError("BODY_TOO_LARGE");
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new RequestError("BODY_TOO_LARGE");
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof RequestError) throw error;
    throw new RequestError("INVALID_REQUEST", { detail: "the body could not be read" });
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** True when the caller sent `Prefer: respond-async` (RFC 7240): answer 202, work on after. */
export function prefersRespondAsync(request: Request): boolean {
  return /(^|[\s,;])respond-async($|[\s,;])/i.test(request.headers.get("prefer") ?? "");
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(request: Request): string | null {
  const header = request.headers.get("authorization");
  if (header === null) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

/** Query parameters and, for POST, a JSON object body; query parameters win. */
export async function requestParameters(request: Request): Promise<Record<string, unknown>> {
  const url = new URL(request.url);
  let body: Record<string, unknown> = {};
  if (request.method === "POST") {
    const text = await readBodyText(request);
    if (text.trim() !== "") {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new RequestError("INVALID_REQUEST", { detail: "body is not JSON" });
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new RequestError("INVALID_REQUEST", { detail: "body must be a JSON object" });
      }
      body = parsed as Record<string, unknown>;
    }
  }
  return { ...body, ...Object.fromEntries(url.searchParams) };
}

/**
 * 429 RATE_LIMITED with `Retry-After` in whole seconds, readable by a browser app through CORS
 * (`Access-Control-Expose-Headers`).
 */
export function rateLimitedResponse(retryAfterSeconds: number, headers: Record<string, string>) {
  return errorResponse("RATE_LIMITED", {}, {
    ...headers,
    "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))),
    "Access-Control-Expose-Headers": "Retry-After",
  });
}
