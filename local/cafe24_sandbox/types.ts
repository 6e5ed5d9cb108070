// Public types of the Cafe24 sandbox, shaped after Cafe24's Admin API reference (OAuth, token,
// revoke, shops). Behaviour Cafe24 leaves undocumented is a setting, never a guess.

export type FaultKind =
  | "server_error"
  | "rate_limited"
  | "rate_limited_retry_after"
  | "hang"
  | "html_error"
  | "malformed_200"
  | "reset";

// Fixed order: probability draws walk it, so a seed maps to the same faults on every run.
export const FAULT_KINDS: readonly FaultKind[] = [
  "server_error",
  "rate_limited",
  "rate_limited_retry_after",
  "hang",
  "html_error",
  "malformed_200",
  "reset",
];

export type MalformedVariant = "html" | "text" | "missing_refresh_token" | "wrong_types" | "empty";

export const MALFORMED_VARIANTS: readonly MalformedVariant[] = [
  "html",
  "text",
  "missing_refresh_token",
  "wrong_types",
  "empty",
];

export type ServerErrorStatus = 500 | 502 | 503 | 504;

/** A queued fault with its details pinned instead of drawn from the PRNG. */
export interface FaultSpec {
  kind: FaultKind;
  variant?: MalformedVariant;
  status?: ServerErrorStatus;
}

export interface FaultPlan {
  latencyMs?: number;
  jitterMs?: number;
  probabilities?: Partial<Record<FaultKind, number>>;
  retryAfterSeconds?: number;
  hangMs?: number;
  /** Pins the malformed_200 variant; otherwise the PRNG picks one per fault. */
  malformedVariant?: MalformedVariant;
}

/**
 * What the token endpoint answers a refresh for a mall whose app was deleted (uninstalled). Cafe24
 * documents only the Admin API's 403; the token endpoint's answer is unconfirmed.
 * - `invalid_grant`: the same answer as a dead refresh token (status `invalidGrantStatus`);
 * - `forbidden`: 403 in the Admin API's shape, with the app-deleted message;
 * - `issued`: the token endpoint ignores the uninstall and rotates as usual.
 */
export type AppDeletedRefresh = "invalid_grant" | "forbidden" | "issued";

export const APP_DELETED_REFRESH_ANSWERS: readonly AppDeletedRefresh[] = [
  "invalid_grant",
  "forbidden",
  "issued",
];

/**
 * The Admin API's 403 message once the app is deleted from the shop. Cafe24's real wording is not
 * captured yet; its guide describes the case in Korean ("쇼핑몰에서 해당 앱이 삭제된 경우"), so the
 * sandbox says it in Korean and English, and classifyAppAccess recognises either.
 */
export const APP_DELETED_MESSAGE =
  "[Not Authorized] 쇼핑몰에서 해당 앱이 삭제되었습니다. This app has been deleted from the shop.";
/** The Admin API's 403 message when the token lacks the scope the call needs. */
export const INSUFFICIENT_SCOPE_MESSAGE = "Insufficient scope: mall.read_store is required";

/** Sandbox-wide behaviour that may also be changed while it runs (`configure`). */
export interface SandboxSettings {
  /**
   * Default false: authorize redirects at once. True: authorize answers an HTML consent page whose
   * Approve (`#approve`) and Deny (`#deny`) buttons post the decision back, for browser tests.
   */
  consentPage: boolean;
  /**
   * Cafe24 does not document what a new grant (a code exchange) does to the mall's older pairs.
   * Default true: the new pair becomes the mall's only live one and older refresh tokens are dead
   * (refresh log `presented: "superseded_by_grant"`, not counted as reuse). False: every grant is
   * an independent pair that rotates on its own; older grants' pairs live until they rotate,
   * expire or are revoked. A mall may override it (`MallOptions.newGrantRevokesOlderPairs`).
   */
  newGrantRevokesOlderPairs: boolean;
  /** Default `invalid_grant`. */
  appDeletedRefresh: AppDeletedRefresh;
  /**
   * Whether a grant that includes `mall.write_X` also lists `mall.read_X` in its `scopes`
   * (unconfirmed: Cafe24's answers are not documented for it). Default false: the scopes asked for.
   */
  writeScopeGrantsRead: boolean;
}

export interface Cafe24SandboxOptions extends Partial<SandboxSettings> {
  hostname?: string;
  port?: number;
  /**
   * What the /__sandbox control API wants as `Authorization: Bearer …`: it hands out live tokens.
   * Default: a fresh random one, read back from `controlToken`.
   */
  controlToken?: string;
  /**
   * `Host` values answered besides `127.0.0.1:<port>` and `localhost:<port>` (and the host it
   * was told to listen on), e.g. `host.docker.internal:54329` for functions in Docker. Anything
   * else gets 421: a web page that points its own hostname at this machine (DNS rebinding) gets
   * no answer it can read.
   */
  allowedHosts?: string[];
  clientId: string;
  clientSecret: string;
  /** When unset, any redirect_uri is accepted at authorize (it must still match at exchange). */
  redirectUri?: string;
  seed?: number;
  latencyMs?: number;
  jitterMs?: number;
  invalidGrantStatus?: number;
  rateLimitTokenEndpoint?: boolean;
  bucketCapacity?: number;
  bucketDrainPerSecond?: number;
  accessTokenLifetimeMs?: number;
  refreshTokenLifetimeMs?: number;
  quiet?: boolean;
  tls?: { cert: string; key: string };
  /**
   * Cafe24 does not document whether the previous access token survives a refresh. Default false:
   * it stays valid until its own expiry. True: a refresh kills it at once.
   */
  revokeOldAccessTokenOnRefresh?: boolean;
  /**
   * Default false: a grant request whose client disconnects during injected latency is dropped
   * with no state change. True: it is still processed (the token rotates) and the answer is lost,
   * which is the unrecoverable case: Cafe24 rotated, the client never saw the new pair.
   */
  commitOnClientAbort?: boolean;
  /**
   * Default false: connections are kept alive. True: every answer carries `Connection: close`, so
   * each request opens its own connection (and TLS handshake), as each mall's own host
   * `{mall_id}.cafe24api.com` forces on a real client. Over HTTPS only HTTP/1.1 is then offered
   * (HTTP/2 would carry every request on one connection). The benchmark uses it.
   */
  closeConnections?: boolean;
}

/** How a refresh request ended, from the sandbox's side. */
export type RefreshLogOutcome =
  /** A new pair was issued and sent. */
  | "issued"
  /** A new pair was issued after the client had gone (commitOnClientAbort): the answer is lost. */
  | "lost"
  /** The client went away before anything happened; nothing changed. */
  | "aborted"
  /** An injected fault answered (see `fault`); nothing changed. */
  | "fault"
  | "invalid_grant"
  /** The per-mall bucket was full. */
  | "rate_limited"
  | "client_auth_failed"
  | "bad_request"
  /** The mall's app is deleted; the answer follows `appDeletedRefresh` (not `issued`). */
  | "app_deleted";

/** One refresh_token grant request as the sandbox saw it. Holds no token values. */
export interface RefreshLogEntry {
  mallId: string;
  /** Sandbox clock when the request arrived and when its answer (or abandonment) was decided. */
  receivedAtMs: number;
  settledAtMs: number;
  /**
   * What the presented refresh token was when the request arrived. `rotated_out`: its pair was
   * refreshed before (presenting it again is the reuse the counters catch). `superseded_by_grant`:
   * a later grant of the same mall ended its pair (`newGrantRevokesOlderPairs`); the holder did
   * nothing wrong, so it is not reuse. `revoked`: revoked through /oauth/revoke or the control API.
   */
  presented: PresentedToken;
  outcome: RefreshLogOutcome;
  fault: FaultKind | null;
  /** The pair the presented token belongs to; null when the token is unknown. */
  pairId: string | null;
}

export type PresentedToken =
  | "live"
  | "expired"
  | "rotated_out"
  | "superseded_by_grant"
  | "revoked"
  | "unknown";

/** Which endpoint a request was for; the keys of `SandboxCounters.requests`. */
export type RequestKind =
  | "authorize"
  | "consent"
  | "token_refresh"
  | "token_code"
  | "revoke"
  | "shops"
  | "other";

/**
 * One request to a mall endpoint (control requests are not logged). Holds no token values.
 * `outcome` is a short word per kind:
 * - authorize: `code`, `denied` (redirected), `consent_page`, `invalid_request`;
 * - consent (the page's POST): `code`, `denied`, `invalid_request`;
 * - token_refresh, token_code: a `RefreshLogOutcome`;
 * - revoke: `revoked` (a live pair), `access_token_revoked` (a leftover access token of a pair
 *   that had already rotated), `no_match` (nothing to revoke; still 200), `client_auth_failed`,
 *   `rate_limited`, `invalid_request`;
 * - shops and other Admin API calls: `ok`, `invalid_token`, `expired_token`,
 *   `insufficient_scope`, `app_deleted`, `configured_status`, `rate_limited`, `fault`, `aborted`,
 *   `not_found`;
 * - any kind: `method_not_allowed`, `unknown_mall`.
 */
export interface RequestLogEntry {
  /** Increases by one per request for the sandbox's whole life; resetCounters() keeps it going. */
  seq: number;
  kind: RequestKind;
  /** Null when the path named no mall the sandbox knows. */
  mallId: string | null;
  method: string;
  /** 499 when the client went away before the answer. */
  status: number;
  outcome: string;
  /** Sandbox clock when the answer was decided. */
  atMs: number;
}

/** One pair revoked, by /oauth/revoke or through the control API. Holds no token values. */
export interface RevocationLogEntry {
  mallId: string;
  pairId: string;
  grantId: string;
  via: "revoke_endpoint" | "control";
  /** The `token_hint` sent to /oauth/revoke (as sent, even when wrong); null when absent. */
  hint: string | null;
  /** Which half of the pair the presented token was; null for control revocations. */
  matched: "access_token" | "refresh_token" | null;
  atMs: number;
}

export interface MallOptions {
  scopes?: string[];
  shops?: object[];
  denyAuthorization?: boolean;
  shopsStatus?: number;
  userId?: string;
  /** Overrides the sandbox's setting for this mall; null goes back to following it. */
  newGrantRevokesOlderPairs?: boolean | null;
  /**
   * True: the app is deleted from the shop (uninstalled). Admin API calls answer 403 with
   * APP_DELETED_MESSAGE; refreshes answer as `appDeletedRefresh` says. A completed authorization
   * (code exchange) installs the app again, as it does on Cafe24.
   */
  appDeleted?: boolean;
}

export interface IssueOptions {
  accessTokenLifetimeMs?: number;
  refreshTokenLifetimeMs?: number;
}

export interface IssuedTokens {
  /** The sandbox's name for this pair ("pair-N"); never a token. */
  pairId: string;
  /** The grant (code exchange or issueTokens) the pair descends from ("grant-N"). */
  grantId: string;
  accessToken: string;
  refreshToken: string;
  /** KST wall time, no offset, like Cafe24's expires_at. */
  expiresAt: string;
  refreshTokenExpiresAt: string;
  issuedAt: string;
  scopes: string[];
}

export interface SandboxClock {
  now(): number;
  advance(ms: number): void;
  set(ms: number): void;
}

export interface MallCounters {
  refreshRequests: number;
  refreshSuccesses: number;
  deadTokenReuses: number;
  maxConcurrentRefreshes: number;
  /** Successful authorization_code exchanges (failed attempts are not counted here). */
  codeExchanges: number;
  /** Two refreshes in flight at once presenting the same refresh token. */
  samePairConcurrentRefreshes: number;
  /** Pairs revoked through /oauth/revoke (control revocations are in the revocation log only). */
  revokedPairs: number;
  shopsRequests: number;
  /** X-Cafe24-Api-Version of the latest shops request; null when it carried none. */
  lastApiVersion: string | null;
}

export interface SandboxCounters {
  requests: {
    token_refresh: number;
    token_code: number;
    authorize: number;
    /** Decisions posted from the consent page. */
    consent: number;
    shops: number;
    revoke: number;
    other: number;
  };
  refreshSuccesses: number;
  deadTokenReuses: number;
  /** invalid_grant answers to refresh and code grants (not client-authentication failures). */
  invalidGrants: number;
  /**
   * Refreshes of one mall in flight at once, whatever tokens they present (one refresher per mall
   * is the project's rule). With independent grants (`newGrantRevokesOlderPairs: false`) two
   * pairs of one mall may legitimately overlap: samePairConcurrentRefreshes is the one that
   * always matters.
   */
  concurrentRefreshViolations: number;
  samePairConcurrentRefreshes: number;
  maxConcurrentRefreshesPerMall: number;
  /** 429s from the leaky bucket; injected 429s are in faultsInjected. */
  rateLimited: number;
  faultsInjected: Record<FaultKind, number>;
  /** Wrong or missing client credentials at the token and revoke endpoints. */
  clientAuthFailures: number;
  /** Requests whose client disconnected while the sandbox was delaying or hanging them. */
  clientAborts: number;
  /** Grants committed after the client had gone (commitOnClientAbort). */
  lostResponses: number;
  /** Pairs revoked through /oauth/revoke. */
  revokedPairs: number;
  /**
   * Connections accepted over HTTPS with closeConnections (counted by the HTTP/1.1 front that
   * gives each request its own); 0 otherwise, where the server does not count them.
   */
  tlsConnections: number;
  byMall: Record<string, MallCounters>;
}

export interface Cafe24Sandbox {
  url: string;
  baseUrlTemplate: string;
  /** The control API's token (`Authorization: Bearer …` on /__sandbox/*). */
  controlToken: string;
  clock: SandboxClock;
  addMall(mallId: string, options?: MallOptions): void;
  /**
   * A new grant, as if the owner had just authorized the app: under `newGrantRevokesOlderPairs`
   * it ends the mall's older pairs (superseded, not rotated), otherwise it adds a pair.
   */
  issueTokens(mallId: string, options?: IssueOptions): IssuedTokens;
  /** The refresh token of the mall's newest live pair (expired or not). */
  liveRefreshToken(mallId: string): string | undefined;
  /** Every live pair of the mall, oldest first (expired ones included until they rotate). */
  livePairs(mallId: string): IssuedTokens[];
  /** Revokes the pair holding `refreshToken`, or the newest live pair when it is omitted. */
  revokeRefreshToken(mallId: string, refreshToken?: string): void;
  settings(): SandboxSettings;
  configure(settings: Partial<SandboxSettings>): void;
  setFaults(scope: string, plan: FaultPlan): void;
  queueFaults(scope: string, kinds: (FaultKind | FaultSpec)[]): void;
  clearFaults(): void;
  /**
   * Faults for the next Admin API calls (shops, products, …) of a mall or `*`, in order, e.g.
   * `rate_limited` (429 without Retry-After) or `rate_limited_retry_after` (429 with
   * `Retry-After: retryAfterSeconds` of the plan, default 2).
   */
  queueAdminFaults(scope: string, kinds: (FaultKind | FaultSpec)[]): void;
  /** Kills the mall's access tokens now (401 Invalid access_token); its refresh tokens live. */
  killAccessTokens(mallId: string): number;
  /** Admin API calls of the mall that arrived in each second of the sandbox clock, by second. */
  callsPerSecond(mallId: string): Record<string, number>;
  counters(): SandboxCounters;
  /** Every refresh request since the start or the last resetCounters(), oldest first (at most
   * the latest 100,000). A copy. */
  refreshLog(): RefreshLogEntry[];
  /** Requests to mall endpoints with seq > since (default 0), oldest first; a copy. Kept like
   * the refresh log. */
  requestLog(since?: number): RequestLogEntry[];
  /** The entries after `since`; waits up to timeoutMs (real time) for one when there are none.
   * Empty when none came. */
  waitForRequests(since: number, timeoutMs: number): Promise<RequestLogEntry[]>;
  /** Every pair revocation since the start or the last resetCounters(), oldest first. */
  revocationLog(): RevocationLogEntry[];
  /**
   * Every access and refresh token value the sandbox ever handed out (code exchanges, rotations,
   * issueTokens, a fault's fake body), oldest first; resetCounters() keeps them. A copy.
   */
  issuedTokens(): string[];
  resetCounters(): void;
  close(): Promise<void>;
}
