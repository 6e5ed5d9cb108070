/**
 * The Cafe24 app this project acts as: where a mall's API is, the app's client credentials, and
 * how each call to Cafe24 is made. Built once per request from the configuration and handed to
 * every call to Cafe24 (token, revoke, shops).
 */
export interface Cafe24App {
  /** A mall's API base URL with `{mall_id}` in it, e.g. `https://{mall_id}.cafe24api.com`. */
  apiBaseUrl: string;
  clientId: string;
  clientSecret: string;
  /** Every request to Cafe24 is aborted after this long. */
  requestTimeoutMs: number;
  /** `X-Cafe24-Api-Version` (YYYY-MM-DD) of Admin API calls; null: the app's version at Cafe24. */
  apiVersion: string | null;
  /** The fetch every call to Cafe24 goes through; the global one where not given (tests). */
  fetch?: typeof fetch;
}

/**
 * The configuration fields the app is built from, as loadConfig (platform/config.ts) answers
 * them. Named here rather than imported: config.ts builds the refresh settings with cafe24App.
 */
export interface Cafe24AppConfig {
  CAFE24_API_BASE_URL: string;
  CAFE24_CLIENT_ID: string;
  CAFE24_CLIENT_SECRET_KEY: string;
  CAFE24_REQUEST_TIMEOUT_MS: number;
  CAFE24_API_VERSION?: string | undefined;
}

export function cafe24App(config: Cafe24AppConfig): Cafe24App {
  return {
    apiBaseUrl: config.CAFE24_API_BASE_URL,
    clientId: config.CAFE24_CLIENT_ID,
    clientSecret: config.CAFE24_CLIENT_SECRET_KEY,
    requestTimeoutMs: config.CAFE24_REQUEST_TIMEOUT_MS,
    apiVersion: config.CAFE24_API_VERSION ?? null,
  };
}

/** The `Authorization` header of the OAuth endpoints (token, revoke): HTTP Basic, the app's. */
export function clientAuthorization(app: Cafe24App): string {
  return `Basic ${btoa(`${app.clientId}:${app.clientSecret}`)}`;
}
