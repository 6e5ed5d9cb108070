// Public types of the Cafe24 sandbox. Facts behind the shapes: shared/docs/cafe24.md.

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

export interface Cafe24SandboxOptions {
  hostname?: string;
  port?: number;
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
   * which is the unrecoverable case described in cafe24.md section 3.
   */
  commitOnClientAbort?: boolean;
  /**
   * Default false: connections are kept alive. True: every answer carries `Connection: close`, so
   * each request opens its own connection (and TLS handshake), as each mall's own host
   * `{mall_id}.cafe24api.com` forces on a real client. The benchmark uses it.
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
  | "bad_request";

/** One refresh_token grant request as the sandbox saw it. Holds no token values. */
export interface RefreshLogEntry {
  mallId: string;
  /** Sandbox clock when the request arrived and when its answer (or abandonment) was decided. */
  receivedAtMs: number;
  settledAtMs: number;
  /** What the presented refresh token was when the request arrived. */
  presented: "live" | "expired" | "rotated_out" | "revoked" | "unknown";
  outcome: RefreshLogOutcome;
  fault: FaultKind | null;
}

export interface MallOptions {
  scopes?: string[];
  shops?: object[];
  denyAuthorization?: boolean;
  shopsStatus?: number;
  userId?: string;
}

export interface IssueOptions {
  accessTokenLifetimeMs?: number;
  refreshTokenLifetimeMs?: number;
}

export interface IssuedTokens {
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
  shopsRequests: number;
  /** X-Cafe24-Api-Version of the latest shops request; null when it carried none. */
  lastApiVersion: string | null;
}

export interface SandboxCounters {
  requests: {
    token_refresh: number;
    token_code: number;
    authorize: number;
    shops: number;
    revoke: number;
    other: number;
  };
  refreshSuccesses: number;
  deadTokenReuses: number;
  /** invalid_grant answers to refresh and code grants (not client-authentication failures). */
  invalidGrants: number;
  concurrentRefreshViolations: number;
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
  byMall: Record<string, MallCounters>;
}

export interface Cafe24Sandbox {
  url: string;
  baseUrlTemplate: string;
  clock: SandboxClock;
  addMall(mallId: string, options?: MallOptions): void;
  issueTokens(mallId: string, options?: IssueOptions): IssuedTokens;
  liveRefreshToken(mallId: string): string | undefined;
  revokeRefreshToken(mallId: string): void;
  setFaults(scope: string, plan: FaultPlan): void;
  queueFaults(scope: string, kinds: (FaultKind | FaultSpec)[]): void;
  clearFaults(): void;
  counters(): SandboxCounters;
  /** Every refresh request since the start or the last resetCounters(), oldest first (at most
   * the latest 100,000). A copy. */
  refreshLog(): RefreshLogEntry[];
  resetCounters(): void;
  close(): Promise<void>;
}
