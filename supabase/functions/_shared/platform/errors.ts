/**
 * Every error this project reports, in one place. Codes are stable: callers, dashboards and
 * tests switch on them. Messages are ours, short, and never carry a token, a secret or an
 * upstream body.
 */
import { SECRET_MIN_LENGTH } from "./secrets.ts";

/** Errors a function answers a request with, and the HTTP status of each. */
export const REQUEST_ERRORS = {
  UNAUTHORIZED: { status: 401, message: "Missing or invalid credentials" },
  CRON_SECRET_NOT_CONFIGURED: { status: 500, message: "CRON_SECRET is not set" },
  CONFIG_MISSING: { status: 500, message: "Required configuration is missing" },
  CONFIG_INVALID: { status: 500, message: "Configuration has invalid values" },
  INVALID_REQUEST: { status: 400, message: "The request is malformed" },
  BODY_TOO_LARGE: { status: 413, message: "The request body is larger than the functions accept" },
  RATE_LIMITED: {
    status: 429,
    message: "Too many calls moments ago; try again after Retry-After seconds",
  },
  INVALID_MALL_ID: { status: 400, message: "mall_id must be 4-16 lowercase letters or digits" },
  INVALID_SCOPE: {
    status: 400,
    message: "scope must be comma-separated Cafe24 scope names from the app's allowed scopes",
  },
  METHOD_NOT_ALLOWED: { status: 405, message: "Method not allowed" },
  NOT_FOUND: { status: 404, message: "Not found" },
  REFRESH_RUN_FAILED: { status: 500, message: "The refresh run could not complete" },
  INTERNAL_ERROR: { status: 500, message: "Internal error" },
  DATABASE_UNAVAILABLE: { status: 503, message: "The database could not be reached; try again" },
  // cafe24-callback: the reasons a connection attempt ends without a connection. They go to the
  // app as `?cafe24=error&reason=CODE`; the HTML page shows the message.
  STATE_INVALID: {
    status: 400,
    message: "The connection attempt could not be verified; start it again from the app",
  },
  STATE_EXPIRED: {
    status: 400,
    message: "The connection attempt took longer than 10 minutes; start it again from the app",
  },
  STATE_REPLAYED: {
    status: 400,
    message: "This connection link was already used; start again from the app",
  },
  STATE_MALL_MISMATCH: {
    status: 400,
    message: "Cafe24 answered for another mall than the one the connection was started for",
  },
  ACCESS_DENIED: { status: 403, message: "The mall's operator did not allow the app access" },
  AUTHORIZATION_FAILED: {
    status: 400,
    message: "Cafe24 reported an error instead of an authorization code",
  },
  MISSING_CODE: { status: 400, message: "Cafe24 sent no authorization code" },
  TOKEN_EXCHANGE_REJECTED: {
    status: 502,
    message: "Cafe24 rejected the authorization code (expired, used or not issued for this app)",
  },
  CAFE24_UNAVAILABLE: {
    status: 502,
    message: "Cafe24 could not be reached or answered with an error; try again",
  },
  TOKEN_RESPONSE_INVALID: {
    status: 502,
    message: "Cafe24 answered without a usable token pair; try again",
  },
  CONNECTION_STORE_FAILED: {
    status: 500,
    message: "Cafe24 issued tokens but they could not be saved; connect again",
  },
  SCOPE_NOT_REQUESTED: {
    status: 400,
    message:
      "Cafe24 granted scopes the app did not ask for (was the Cafe24 link changed?); nothing was kept: start again from the app",
  },
  TOO_MANY_PENDING_CONNECTIONS: {
    status: 429,
    message:
      "Too many connections are waiting to be completed; complete or let them expire (10 minutes), then start again",
  },
  // cafe24-callback POST: completing a pending connection with the user's session.
  HANDLE_INVALID: {
    status: 400,
    message: "This connection result is unknown, already used or expired; start again from the app",
  },
  CONNECT_USER_MISMATCH: {
    status: 403,
    message:
      "This connection was started by another account; it was cancelled. Start again while signed in as yourself",
  },
  // cafe24-token: handing a connection's access token to the app's server code.
  RECONNECT_REQUIRED: {
    status: 409,
    message: "The connection has no usable tokens until the mall's owner connects it again",
  },
  MALL_ID_AMBIGUOUS: {
    status: 409,
    message: "Several active connections hold this mall_id; name one by auth_settings_id",
  },
  TOKEN_UNAVAILABLE: {
    status: 503,
    message: "No access token valid long enough: its refresh failed (see reason); try again later",
  },
  // A stored token names a key (details.kid) that CAFE24_TOKEN_KEYS no longer holds: it comes
  // back once the key is restored, so the connection is not given up.
  TOKEN_KEY_UNAVAILABLE: {
    status: 503,
    message:
      "The connection's tokens are encrypted with a key the functions do not have (details.kid); try again once the operator restores it",
  },
  // cafe24-api / cafe24Fetch: the Admin API through the connector.
  INVALID_PATH: {
    status: 400,
    message:
      "path must be a plain Admin API path under /api/v2/admin/ (no .., encoded dots or slashes, backslashes, //, @, fragment or scheme)",
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type RequestErrorCode = keyof typeof REQUEST_ERRORS;

/** Things that went wrong after a mall was connected; the connection stands. */
export const CONNECT_WARNINGS = {
  SHOPS_LOOKUP_FAILED: {
    message: "The mall is connected, but its shops could not be read; shop_no was not set",
  },
} as const satisfies Record<string, { message: string }>;

export type ConnectWarningCode = keyof typeof CONNECT_WARNINGS;

/**
 * Settings that work but should be changed. Reported in every run summary's `warnings` and in the
 * log, never as a failure: refusing them would stop refreshes and disconnect every mall.
 */
export const CONFIG_WARNINGS = {
  CRON_SECRET_WEAK: {
    message:
      `CRON_SECRET is shorter than ${SECRET_MIN_LENGTH} characters; set a longer one (openssl rand -base64 32) in the functions' secrets and in the Vault secret cafe24_cron_secret`,
  },
  TOKEN_KEYS_MISSING: {
    message:
      'CAFE24_TOKEN_KEYS is not set, so tokens cannot be encrypted or read at rest; set it in the functions\' secrets to {"<key id>":"<openssl rand 32 | base64>"} and CAFE24_TOKEN_KEY_ID to that key id, and keep a copy outside Supabase',
  },
  TOKEN_KEY_ID_UNKNOWN: {
    message:
      "CAFE24_TOKEN_KEY_ID is unset or names no valid key of CAFE24_TOKEN_KEYS, so new tokens cannot be written; set it to one of the ring's key ids",
  },
  TOKEN_KEYS_INVALID: {
    message:
      "CAFE24_TOKEN_KEYS is not a JSON object, or some of its entries are not a key id (1-32 letters, digits, _ or -) with base64 of exactly 32 bytes; those entries are unusable (values written with them do not decrypt): fix them from your copy of the ring",
  },
  TOKEN_KEY_NOT_IN_RING: {
    message:
      "Some connections' tokens are sealed with a key id CAFE24_TOKEN_KEYS does not hold: they are skipped (key_unavailable), their grants untouched, until that key is added back to the ring; the log line cafe24_refresh_keys_missing names the key ids",
  },
  CONFIG_VALUE_IGNORED: {
    message:
      "A setting has an invalid value and its default is used instead; the functions' log line config_value_ignored names it and its rule",
  },
  PLAINTEXT_TOKEN_COPY: {
    message:
      "CAFE24_PLAINTEXT_TOKEN_COPY is on: every refresh also copies the access token and its expiry into public.auth_settings.providers.cafe24 in plaintext and rewrites that document; turn it off once the app reads tokens through cafe24-token",
  },
} as const satisfies Record<string, { message: string }>;

export type ConfigWarningCode = keyof typeof CONFIG_WARNINGS;

/**
 * Why one connection's refresh failed. `permanent` failures need the mall's owner to reconnect;
 * the others are retried on later runs with backoff.
 */
export const REFRESH_FAILURES = {
  INVALID_MALL_ID: {
    permanent: true,
    message: "mall_id is not a valid Cafe24 mall id; no request was sent",
  },
  CAFE24_INVALID_GRANT: {
    permanent: true,
    message: "Cafe24 rejected the refresh token (invalid_grant); the mall must reconnect",
  },
  CAFE24_ANSWER_LOST: {
    permanent: true,
    message:
      "Cafe24 rejected the refresh token after an earlier refresh's answer was lost (crash, timeout or bad response); the mall must reconnect",
  },
  CAFE24_CLIENT_AUTH_FAILED: {
    permanent: false,
    message: "Cafe24 rejected the app's client credentials; check CAFE24_CLIENT_ID/SECRET_KEY",
  },
  CAFE24_REJECTED: { permanent: false, message: "Cafe24 rejected the token request" },
  CAFE24_RATE_LIMITED: { permanent: false, message: "Cafe24 rate limit reached (429)" },
  CAFE24_SERVER_ERROR: { permanent: false, message: "Cafe24 answered with a server error" },
  CAFE24_UNEXPECTED_STATUS: {
    permanent: false,
    message: "Cafe24 answered with an unexpected status",
  },
  CAFE24_MALFORMED_RESPONSE: {
    permanent: false,
    message: "Cafe24 answered 200 without a usable token pair; no token was changed",
  },
  CAFE24_TIMEOUT: { permanent: false, message: "Cafe24 did not answer in time" },
  CAFE24_NETWORK_ERROR: { permanent: false, message: "Cafe24 could not be reached" },
  STORE_FAILED: {
    permanent: false,
    message: "Cafe24 issued new tokens but they could not be written to the database",
  },
  LEASE_LOST: { permanent: false, message: "The connection's lease expired during the refresh" },
} as const satisfies Record<string, { permanent: boolean; message: string }>;

export type RefreshFailureCode = keyof typeof REFRESH_FAILURES;

/**
 * Why cafe24-token has no token valid long enough (`reason`, `refresh_failed`) when no refresh
 * failed; otherwise those carry the REFRESH_FAILURES code of the failed refresh.
 */
export const TOKEN_WAIT_FAILURES = {
  REFRESH_IN_PROGRESS: {
    message: "Another refresh of this connection was still running when the wait for it ended",
  },
} as const satisfies Record<string, { message: string }>;

export type TokenWaitFailureCode = keyof typeof TOKEN_WAIT_FAILURES;

/**
 * Why cafe24-disconnect could not revoke a connection's pair at Cafe24 (`revoke_error` in its
 * answer). The tokens are removed from the row all the same.
 */
export const REVOKE_FAILURES = {
  REVOKE_REJECTED: { message: "Cafe24 refused to revoke the tokens" },
  REVOKE_UNREACHABLE: { message: "Cafe24 could not be reached to revoke the tokens" },
  NO_TOKENS: { message: "The connection held no tokens; there was nothing to revoke" },
} as const satisfies Record<string, { message: string }>;

export type RevokeFailureCode = keyof typeof REVOKE_FAILURES;

/** An error that maps to one of REQUEST_ERRORS; `details` are safe to show the caller. */
export class RequestError extends Error {
  readonly code: RequestErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: RequestErrorCode, details?: Record<string, unknown>) {
    super(REQUEST_ERRORS[code].message);
    this.name = "RequestError";
    this.code = code;
    this.details = details;
  }
}
