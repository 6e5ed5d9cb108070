import { z } from "zod";
import { parseCafe24Timestamp } from "./time.ts";
import { mallApiUrl } from "./mall_id.ts";
import { type Cafe24App, clientAuthorization } from "./app.ts";
import type { RefreshFailureCode } from "../platform/errors.ts";

/**
 * Cafe24's token endpoint, as two steps: `send…` builds and sends the request and returns the
 * raw Response; `processTokenResponse` treats the answer as untrusted input and either returns a
 * complete token set or throws a TokenRequestError with a stable code.
 */

export interface TokenSet {
  accessToken: string;
  refreshToken: string;
  /** ISO-8601 instants (UTC, `Z`). */
  accessTokenExpiresAt: string;
  refreshTokenExpiresAt: string | null;
  scopes: string[] | null;
  shopNo: string | null;
  /** The mall Cafe24 says the pair is for, when it says so. */
  mallId: string | null;
}

export class TokenRequestError extends Error {
  readonly code: RefreshFailureCode;
  /** Cafe24 may have processed the request (and rotated the token) although we got no pair. */
  readonly outcomeUnknown: boolean;
  /** How long Cafe24 asked us to wait, from Retry-After or X-Cafe24-Call-Remain. */
  readonly retryAfterMs: number | null;
  /** Cafe24's OAuth `error` field when it was a well-formed one, e.g. `invalid_grant`. */
  readonly oauthError: string | null;

  constructor(
    code: RefreshFailureCode,
    detail: string,
    options: {
      outcomeUnknown?: boolean;
      retryAfterMs?: number | null;
      oauthError?: string | null;
      cause?: unknown;
    } = {},
  ) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TokenRequestError";
    this.code = code;
    this.outcomeUnknown = options.outcomeUnknown ?? false;
    this.retryAfterMs = options.retryAfterMs ?? null;
    this.oauthError = options.oauthError ?? null;
  }
}

export function sendRefreshTokenRequest(
  app: Cafe24App,
  request: { mallId: string; refreshToken: string },
): Promise<Response> {
  return sendTokenRequest(
    app,
    request.mallId,
    new URLSearchParams({ grant_type: "refresh_token", refresh_token: request.refreshToken }),
  );
}

export function sendAuthorizationCodeRequest(
  app: Cafe24App,
  request: { mallId: string; code: string; redirectUri: string },
): Promise<Response> {
  return sendTokenRequest(
    app,
    request.mallId,
    new URLSearchParams({
      grant_type: "authorization_code",
      code: request.code,
      redirect_uri: request.redirectUri,
    }),
  );
}

async function sendTokenRequest(
  app: Cafe24App,
  mallId: string,
  body: URLSearchParams,
): Promise<Response> {
  // Throws RangeError before anything leaves the machine when the mall id is unsafe.
  const url = mallApiUrl(app.apiBaseUrl, mallId, "api/v2/oauth/token");
  try {
    return await (app.fetch ?? fetch)(url, {
      method: "POST",
      headers: {
        "Authorization": clientAuthorization(app),
        "Content-Type": "application/x-www-form-urlencoded",
      },
      body,
      signal: AbortSignal.timeout(app.requestTimeoutMs),
      redirect: "manual",
    });
  } catch (error) {
    // Either way the request may have reached Cafe24 and rotated the token.
    if (error instanceof DOMException && error.name === "TimeoutError") {
      throw new TokenRequestError("CAFE24_TIMEOUT", `No answer within ${app.requestTimeoutMs} ms`, {
        outcomeUnknown: true,
      });
    }
    throw new TokenRequestError("CAFE24_NETWORK_ERROR", "The connection to Cafe24 failed", {
      outcomeUnknown: true,
    });
  }
}

const TokenBody = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1),
  expires_at: z.string(),
  refresh_token_expires_at: z.string().optional(),
  issued_at: z.string().optional(),
  scopes: z.array(z.string()).optional(),
  shop_no: z.union([z.string(), z.number()]).optional(),
  mall_id: z.string().optional(),
});

const OAuthErrorBody = z.object({
  error: z.string().regex(/^[a-z_]{1,64}$/),
  error_description: z.string().optional(),
});

const MAX_BODY_BYTES = 64 * 1024;

const HTTP_DATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * Reads a token endpoint answer. `receivedAtMs` is when the answer arrived: an expiry is never
 * stored later than `receivedAtMs + (expires_at − issued_at)`, so a host clock or zone error
 * cannot make a token look valid longer than Cafe24 granted.
 */
export async function processTokenResponse(
  response: Response,
  receivedAtMs: number,
): Promise<TokenSet> {
  const text = await readBody(response);

  if (response.status === 200) {
    return parseTokenBody(text, receivedAtMs);
  }

  const retryAfterMs = retryAfterFromHeaders(response.headers, receivedAtMs);
  if (response.status === 429) {
    throw new TokenRequestError("CAFE24_RATE_LIMITED", "HTTP 429", { retryAfterMs });
  }
  if (response.status >= 500) {
    throw new TokenRequestError("CAFE24_SERVER_ERROR", `HTTP ${response.status}`, {
      outcomeUnknown: true,
      retryAfterMs,
    });
  }

  const oauth = OAuthErrorBody.safeParse(safeJson(text));
  if (!oauth.success) {
    throw new TokenRequestError("CAFE24_UNEXPECTED_STATUS", `HTTP ${response.status}`, {
      retryAfterMs,
    });
  }
  const { error, error_description: description = "" } = oauth.data;
  // Cafe24 reports a wrong client secret as invalid_grant too. That is the app's configuration,
  // not the mall's token: marking every mall disconnected for it would be a disaster.
  if (
    error === "invalid_client" || error === "unauthorized_client" ||
    /client[_ ]?(secret|id)/i.test(description)
  ) {
    throw new TokenRequestError("CAFE24_CLIENT_AUTH_FAILED", `HTTP ${response.status} ${error}`, {
      oauthError: error,
    });
  }
  if (error === "invalid_grant") {
    throw new TokenRequestError("CAFE24_INVALID_GRANT", `HTTP ${response.status} invalid_grant`, {
      oauthError: error,
    });
  }
  throw new TokenRequestError("CAFE24_REJECTED", `HTTP ${response.status} ${error}`, {
    oauthError: error,
    retryAfterMs,
  });
}

function parseTokenBody(text: string, receivedAtMs: number): TokenSet {
  // A 200 we cannot use may still mean Cafe24 rotated the token: outcome unknown.
  const malformed = (detail: string) =>
    new TokenRequestError("CAFE24_MALFORMED_RESPONSE", detail, { outcomeUnknown: true });
  const json = safeJson(text);
  if (json === undefined) throw malformed("200 without a JSON body");
  const body = TokenBody.safeParse(json);
  if (!body.success) {
    const fields = [...new Set(body.error.issues.map((i) => String(i.path[0] ?? "body")))];
    throw malformed(`200 with missing or mistyped fields: ${fields.join(", ")}`);
  }
  try {
    const expiresAt = parseCafe24Timestamp(body.data.expires_at).getTime();
    const refreshExpiresAt = body.data.refresh_token_expires_at === undefined
      ? null
      : parseCafe24Timestamp(body.data.refresh_token_expires_at).getTime();
    const issuedAt = body.data.issued_at === undefined
      ? null
      : parseCafe24Timestamp(body.data.issued_at).getTime();
    const bound = (instant: number) =>
      issuedAt === null ? instant : Math.min(instant, receivedAtMs + (instant - issuedAt));
    return {
      accessToken: body.data.access_token,
      refreshToken: body.data.refresh_token,
      accessTokenExpiresAt: new Date(bound(expiresAt)).toISOString(),
      refreshTokenExpiresAt: refreshExpiresAt === null
        ? null
        : new Date(bound(refreshExpiresAt)).toISOString(),
      scopes: body.data.scopes ?? null,
      shopNo: body.data.shop_no === undefined ? null : String(body.data.shop_no),
      mallId: body.data.mall_id ?? null,
    };
  } catch (error) {
    if (error instanceof SyntaxError) throw malformed("200 with an unreadable timestamp");
    throw error;
  }
}

async function readBody(response: Response): Promise<string> {
  // Bounded: a proxy streaming an endless error page must not be buffered in full.
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    const reader = response.body?.getReader();
    while (reader !== undefined && size < MAX_BODY_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
    if (size >= MAX_BODY_BYTES) await reader?.cancel().catch(() => {});
  } catch (error) {
    // The status line arrived but the body did not: Cafe24 may well have rotated the token.
    if (error instanceof DOMException && error.name === "TimeoutError") {
      throw new TokenRequestError("CAFE24_TIMEOUT", "The answer's body did not arrive in time", {
        outcomeUnknown: true,
      });
    }
    throw new TokenRequestError(
      "CAFE24_NETWORK_ERROR",
      "The connection broke while reading the answer",
      { outcomeUnknown: true },
    );
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes.subarray(0, MAX_BODY_BYTES));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Retry-After (seconds or an HTTP date) when present, else Cafe24's X-Cafe24-Call-Remain
 * (seconds to wait once the bucket is full), else null.
 */
export function retryAfterFromHeaders(headers: Headers, nowMs: number): number | null {
  const retryAfter = headers.get("retry-after")?.trim();
  if (retryAfter) {
    if (/^\d+$/.test(retryAfter)) return Number(retryAfter) * 1000;
    // Only an HTTP date (RFC 9110 IMF-fixdate): Date.parse would read "1.5" as a past date.
    if (HTTP_DATE.test(retryAfter)) return Math.max(0, Date.parse(retryAfter) - nowMs);
  }
  const remain = headers.get("x-cafe24-call-remain")?.trim();
  if (remain && /^\d+(\.\d+)?$/.test(remain)) return Math.ceil(Number(remain) * 1000);
  return null;
}

/** The token pair as stored under providers.cafe24. */
export function storedTokenFields(tokens: TokenSet): Record<string, unknown> {
  return {
    access_token: tokens.accessToken,
    refresh_token: tokens.refreshToken,
    expires_at: tokens.accessTokenExpiresAt,
    ...(tokens.refreshTokenExpiresAt === null
      ? {}
      : { refresh_token_expires_at: tokens.refreshTokenExpiresAt }),
    ...(tokens.scopes === null ? {} : { scopes: tokens.scopes }),
  };
}
