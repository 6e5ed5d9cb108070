import { REQUEST_ERRORS, RequestError, type RequestErrorCode } from "./errors.ts";
import { logEvent } from "./log.ts";

/** JSON responses and CORS, shared by every function. */

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

/** 500 naming the missing or invalid variables (never their values), logged for the operator. */
export function configErrorResponse(
  functionName: string,
  code: "CONFIG_MISSING" | "CONFIG_INVALID",
  names: string[],
  headers: HeadersInit = {},
): Response {
  logEvent("error", "config_missing", { function: functionName, names });
  return errorResponse(
    code,
    { [code === "CONFIG_MISSING" ? "missing" : "invalid"]: names },
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
 * methods. Returns the headers to send, or the response that already ends the request.
 */
export function openRequest(
  request: Request,
  env: Record<string, string | undefined>,
  methods: readonly string[],
): { cors: Record<string, string>; early: Response | null } {
  const allowed = env.CORS_ALLOWED_ORIGINS ?? "*";
  const cors = corsHeaders(request, allowed);
  if (request.method === "OPTIONS") return { cors, early: preflightResponse(request, allowed) };
  if (!methods.includes(request.method)) {
    return { cors, early: errorResponse("METHOD_NOT_ALLOWED", {}, cors) };
  }
  return { cors, early: null };
}

/** Query parameters and, for POST, a JSON object body; query parameters win. */
export async function requestParameters(request: Request): Promise<Record<string, unknown>> {
  const url = new URL(request.url);
  let body: Record<string, unknown> = {};
  if (request.method === "POST") {
    const text = await request.text();
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
