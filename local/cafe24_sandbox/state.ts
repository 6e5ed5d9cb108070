// Mall, token and counter state. No I/O here: the HTTP layer decides when state may change.

import {
  FAULT_KINDS,
  type FaultKind,
  type IssuedTokens,
  type IssueOptions,
  type MallCounters,
  type MallOptions,
  type PresentedToken,
  type RefreshLogEntry,
  type RequestLogEntry,
  type RevocationLogEntry,
  type SandboxClock,
  type SandboxCounters,
  type SandboxSettings,
} from "./types.ts";
import { assertMallId, formatKst, randomToken } from "./util.ts";

export const CODE_LIFETIME_MS = 60_000;
/** How long a consent page's decision may be posted back. */
export const CONSENT_LIFETIME_MS = 10 * 60_000;
const DEFAULT_SCOPES = ["mall.read_store", "mall.read_community"];

export interface TokenPair {
  id: string;
  grantId: string;
  accessToken: string;
  refreshToken: string;
  issuedMs: number;
  accessExpiresMs: number;
  refreshExpiresMs: number;
  scopes: string[];
}

interface AccessGrant {
  expiresMs: number;
  scopes: string[];
  pairId: string;
}

/** Why a refresh token stopped working. Only `rotated_out` makes presenting it again a reuse. */
type DeathReason = "rotated_out" | "superseded_by_grant" | "revoked";

interface DeadRefreshToken {
  reason: DeathReason;
  pairId: string;
}

interface AuthCode {
  issuedMs: number;
  redirectUri: string;
  scopes: string[];
  used: boolean;
}

/** An authorize request waiting on the consent page's decision; already validated. */
export interface PendingConsent {
  issuedMs: number;
  redirectUri: string;
  state: string | null;
  scopes: string[];
}

export interface MallConfig {
  scopes: string[];
  shops: object[];
  denyAuthorization: boolean;
  shopsStatus: number | undefined;
  userId: string;
  /** Undefined: the sandbox's setting applies. */
  newGrantRevokesOlderPairs: boolean | undefined;
  appDeleted: boolean;
}

export interface Mall {
  id: string;
  config: MallConfig;
  /** Live pairs keyed by refresh token, in issue order: the last one is the newest. */
  live: Map<string, TokenPair>;
  /** Refresh tokens that no longer work, and why. */
  dead: Map<string, DeadRefreshToken>;
  accessTokens: Map<string, AccessGrant>;
  codes: Map<string, AuthCode>;
  consents: Map<string, PendingConsent>;
  bucket: { level: number; lastMs: number };
  /** Admin API calls that arrived in each second of the sandbox clock (floor(ms / 1000)). */
  callsBySecond: Map<number, number>;
  inFlightRefreshes: number;
  /** In-flight refreshes per presented refresh token. */
  inFlightByToken: Map<string, number>;
}

export interface Lifetimes {
  accessTokenLifetimeMs: number;
  refreshTokenLifetimeMs: number;
}

function defaultShops(mallId: string): object[] {
  return [{
    shop_no: 1,
    default: "T",
    shop_name: `${mallId} shop`,
    language_code: "ko_KR",
    currency_code: "KRW",
    base_domain: `${mallId}.cafe24.com`,
    primary_domain: `${mallId}.cafe24.com`,
    active: "T",
    timezone: "Asia/Seoul",
  }];
}

function zeroMallCounters(): MallCounters {
  return {
    refreshRequests: 0,
    refreshSuccesses: 0,
    deadTokenReuses: 0,
    maxConcurrentRefreshes: 0,
    codeExchanges: 0,
    samePairConcurrentRefreshes: 0,
    revokedPairs: 0,
    shopsRequests: 0,
    lastApiVersion: null,
  };
}

function zeroCounters(mallIds: Iterable<string>): SandboxCounters {
  const faultsInjected = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<
    FaultKind,
    number
  >;
  const byMall: Record<string, MallCounters> = {};
  for (const id of mallIds) byMall[id] = zeroMallCounters();
  return {
    requests: {
      token_refresh: 0,
      token_code: 0,
      authorize: 0,
      consent: 0,
      shops: 0,
      revoke: 0,
      other: 0,
    },
    refreshSuccesses: 0,
    deadTokenReuses: 0,
    invalidGrants: 0,
    concurrentRefreshViolations: 0,
    samePairConcurrentRefreshes: 0,
    maxConcurrentRefreshesPerMall: 0,
    rateLimited: 0,
    faultsInjected,
    clientAuthFailures: 0,
    clientAborts: 0,
    lostResponses: 0,
    revokedPairs: 0,
    tlsConnections: 0,
    byMall,
  };
}

export type RefreshOutcome =
  | { ok: true; pair: TokenPair }
  | { ok: false; reason: "expired" | DeathReason | "unknown" };

export type CodeOutcome =
  | { ok: true; pair: TokenPair }
  | { ok: false; description: string };

export type RevokeOutcome = "revoked" | "access_token_revoked" | "no_match";

/** The logs keep this many entries each; older ones are dropped in chunks. */
export const MAX_REFRESH_LOG_ENTRIES = 100_000;

function append<T>(log: T[], entry: T): void {
  if (log.length >= MAX_REFRESH_LOG_ENTRIES) log.splice(0, MAX_REFRESH_LOG_ENTRIES / 10);
  log.push(entry);
}

export class SandboxState {
  readonly malls = new Map<string, Mall>();
  counters: SandboxCounters = zeroCounters([]);
  refreshLog: RefreshLogEntry[] = [];
  requestLog: RequestLogEntry[] = [];
  revocationLog: RevocationLogEntry[] = [];
  /**
   * Every access and refresh token value handed out, in order, never cleared (resetCounters
   * keeps it): what a test asserts never leaks. It holds what the sandbox issued, not what a
   * database stored, so it stays true once the functions store tokens only as ciphertext.
   */
  readonly issued: string[] = [];
  private lastSeq = 0;
  private nextPairNumber = 1;
  private nextGrantNumber = 1;
  private readonly requestListeners = new Set<() => void>();

  constructor(
    readonly clock: SandboxClock,
    readonly lifetimes: Lifetimes,
    readonly revokeOldAccessTokenOnRefresh: boolean,
    /** Shared with the HTTP layer; `configure` changes it in place. */
    readonly settings: SandboxSettings,
  ) {}

  addMall(mallId: string, options: MallOptions = {}): Mall {
    assertMallId(mallId);
    const existing = this.malls.get(mallId);
    const base: MallConfig = existing?.config ?? {
      scopes: [...DEFAULT_SCOPES],
      shops: defaultShops(mallId),
      denyAuthorization: false,
      shopsStatus: undefined,
      userId: `${mallId}op`, // deliberately != mall_id: it names the operator, never the mall
      newGrantRevokesOlderPairs: undefined,
      appDeleted: false,
    };
    const config: MallConfig = {
      scopes: options.scopes ? [...options.scopes] : base.scopes,
      shops: options.shops ? structuredClone(options.shops) : base.shops,
      denyAuthorization: options.denyAuthorization ?? base.denyAuthorization,
      shopsStatus: options.shopsStatus ?? base.shopsStatus,
      userId: options.userId ?? base.userId,
      newGrantRevokesOlderPairs: options.newGrantRevokesOlderPairs === undefined
        ? base.newGrantRevokesOlderPairs
        : options.newGrantRevokesOlderPairs ?? undefined,
      appDeleted: options.appDeleted ?? base.appDeleted,
    };
    if (existing) {
      existing.config = config;
      return existing;
    }
    const mall: Mall = {
      id: mallId,
      config,
      live: new Map(),
      dead: new Map(),
      accessTokens: new Map(),
      codes: new Map(),
      consents: new Map(),
      bucket: { level: 0, lastMs: this.clock.now() },
      callsBySecond: new Map(),
      inFlightRefreshes: 0,
      inFlightByToken: new Map(),
    };
    this.malls.set(mallId, mall);
    this.counters.byMall[mallId] = zeroMallCounters();
    return mall;
  }

  mallCounters(mall: Mall): MallCounters {
    let c = this.counters.byMall[mall.id];
    if (!c) {
      c = zeroMallCounters();
      this.counters.byMall[mall.id] = c;
    }
    return c;
  }

  resetCounters(): void {
    this.counters = zeroCounters(this.malls.keys());
    this.refreshLog = [];
    this.requestLog = [];
    this.revocationLog = [];
  }

  logRefresh(entry: RefreshLogEntry): void {
    append(this.refreshLog, entry);
  }

  logRequest(entry: Omit<RequestLogEntry, "seq" | "atMs">): void {
    append(this.requestLog, { seq: ++this.lastSeq, ...entry, atMs: this.clock.now() });
    for (const listener of this.requestListeners) listener();
  }

  requestsSince(since: number): RequestLogEntry[] {
    // Entries are in seq order: walk back from the end to the first one past `since`.
    let first = this.requestLog.length;
    while (first > 0 && (this.requestLog[first - 1]?.seq ?? 0) > since) first--;
    return this.requestLog.slice(first).map((entry) => ({ ...entry }));
  }

  /** Calls `listener` after every logged request until the returned function is called. */
  onRequest(listener: () => void): () => void {
    this.requestListeners.add(listener);
    return () => void this.requestListeners.delete(listener);
  }

  /** Whether a new grant of this mall ends its older pairs. */
  grantRevokesOlderPairs(mall: Mall): boolean {
    return mall.config.newGrantRevokesOlderPairs ?? this.settings.newGrantRevokesOlderPairs;
  }

  newestPair(mall: Mall): TokenPair | undefined {
    let newest: TokenPair | undefined;
    for (const pair of mall.live.values()) newest = pair;
    return newest;
  }

  /** What a presented refresh token is right now, without changing anything. */
  classifyRefreshToken(
    mall: Mall,
    refreshToken: string,
  ): { presented: PresentedToken; pairId: string | null } {
    const live = mall.live.get(refreshToken);
    if (live) {
      return {
        presented: this.clock.now() >= live.refreshExpiresMs ? "expired" : "live",
        pairId: live.id,
      };
    }
    const dead = mall.dead.get(refreshToken);
    if (dead) return { presented: dead.reason, pairId: dead.pairId };
    return { presented: "unknown", pairId: null };
  }

  /** A new grant (code exchange, issueTokens): a new pair, and older pairs end or not. */
  grant(mall: Mall, scopes: string[], lifetimes: Partial<Lifetimes> = {}): TokenPair {
    if (this.grantRevokesOlderPairs(mall)) {
      for (const pair of [...mall.live.values()]) this.end(mall, pair, "superseded_by_grant");
    }
    return this.mint(mall, `grant-${this.nextGrantNumber++}`, scopes, lifetimes);
  }

  /** A refresh: this pair ends, its successor continues the same grant. Other pairs are untouched. */
  private rotate(mall: Mall, pair: TokenPair): TokenPair {
    this.end(mall, pair, "rotated_out");
    return this.mint(mall, pair.grantId, pair.scopes);
  }

  private end(mall: Mall, pair: TokenPair, reason: DeathReason): void {
    mall.live.delete(pair.refreshToken);
    mall.dead.set(pair.refreshToken, { reason, pairId: pair.id });
    // A revocation kills the access token too; a rotation or a newer grant only when configured
    // (whether the old access token survives is undocumented).
    if (reason === "revoked" || this.revokeOldAccessTokenOnRefresh) {
      mall.accessTokens.delete(pair.accessToken);
    }
  }

  private mint(
    mall: Mall,
    grantId: string,
    scopes: string[],
    lifetimes: Partial<Lifetimes> = {},
  ): TokenPair {
    const now = this.clock.now();
    const pair: TokenPair = {
      id: `pair-${this.nextPairNumber++}`,
      grantId,
      accessToken: randomToken(),
      refreshToken: randomToken(),
      issuedMs: now,
      accessExpiresMs: now +
        (lifetimes.accessTokenLifetimeMs ?? this.lifetimes.accessTokenLifetimeMs),
      refreshExpiresMs: now +
        (lifetimes.refreshTokenLifetimeMs ?? this.lifetimes.refreshTokenLifetimeMs),
      scopes: [...scopes],
    };
    for (const [token, grant] of mall.accessTokens) {
      if (grant.expiresMs <= now) mall.accessTokens.delete(token);
    }
    mall.accessTokens.set(pair.accessToken, {
      expiresMs: pair.accessExpiresMs,
      scopes: pair.scopes,
      pairId: pair.id,
    });
    mall.live.set(pair.refreshToken, pair);
    this.recordIssued(pair.accessToken, pair.refreshToken);
    return pair;
  }

  /** Records token values handed out (see `issued`). */
  recordIssued(...tokens: string[]): void {
    this.issued.push(...tokens);
  }

  issueTokens(mallId: string, options: IssueOptions = {}): IssuedTokens {
    const mall = this.malls.get(mallId) ?? this.addMall(mallId);
    const lifetimes: Partial<Lifetimes> = {};
    if (options.accessTokenLifetimeMs !== undefined) {
      lifetimes.accessTokenLifetimeMs = options.accessTokenLifetimeMs;
    }
    if (options.refreshTokenLifetimeMs !== undefined) {
      lifetimes.refreshTokenLifetimeMs = options.refreshTokenLifetimeMs;
    }
    return toIssuedTokens(this.grant(mall, mall.config.scopes, lifetimes));
  }

  refresh(mall: Mall, refreshToken: string): RefreshOutcome {
    const live = mall.live.get(refreshToken);
    if (live) {
      if (this.clock.now() >= live.refreshExpiresMs) return { ok: false, reason: "expired" };
      return { ok: true, pair: this.rotate(mall, live) };
    }
    const dead = mall.dead.get(refreshToken);
    if (dead) return { ok: false, reason: dead.reason };
    return { ok: false, reason: "unknown" };
  }

  createCode(mall: Mall, redirectUri: string, scopes: string[]): string {
    const now = this.clock.now();
    for (const [code, entry] of mall.codes) {
      if (now - entry.issuedMs > 60 * CODE_LIFETIME_MS) mall.codes.delete(code);
    }
    const code = randomToken();
    mall.codes.set(code, { issuedMs: now, redirectUri, scopes, used: false });
    return code;
  }

  exchangeCode(mall: Mall, code: string, redirectUri: string | null): CodeOutcome {
    const entry = mall.codes.get(code);
    if (!entry) return { ok: false, description: "Invalid authorization code" };
    if (entry.used) return { ok: false, description: "Code time expired" };
    if (this.clock.now() - entry.issuedMs >= CODE_LIFETIME_MS) {
      return { ok: false, description: "Code time expired" };
    }
    if (redirectUri !== entry.redirectUri) {
      return { ok: false, description: "Invalid redirect_uri" };
    }
    entry.used = true;
    // Completing an authorization is how an owner installs a deleted app again.
    mall.config.appDeleted = false;
    const granted = this.settings.writeScopeGrantsRead
      ? [
        ...new Set(
          entry.scopes.flatMap((scope) => [scope, scope.replace(/^mall\.write_/, "mall.read_")]),
        ),
      ]
      : entry.scopes;
    return { ok: true, pair: this.grant(mall, granted) };
  }

  createConsent(mall: Mall, pending: Omit<PendingConsent, "issuedMs">): string {
    const now = this.clock.now();
    for (const [id, entry] of mall.consents) {
      if (now - entry.issuedMs >= CONSENT_LIFETIME_MS) mall.consents.delete(id);
    }
    const id = randomToken();
    mall.consents.set(id, { ...pending, issuedMs: now });
    return id;
  }

  /** The pending consent, used up; undefined when unknown, used or too old. */
  takeConsent(mall: Mall, id: string): PendingConsent | undefined {
    const entry = mall.consents.get(id);
    if (!entry) return undefined;
    mall.consents.delete(id);
    if (this.clock.now() - entry.issuedMs >= CONSENT_LIFETIME_MS) return undefined;
    return entry;
  }

  private revokePair(
    mall: Mall,
    pair: TokenPair,
    via: RevocationLogEntry["via"],
    hint: string | null,
    matched: RevocationLogEntry["matched"],
  ): void {
    this.end(mall, pair, "revoked");
    if (via === "revoke_endpoint") {
      this.counters.revokedPairs++;
      this.mallCounters(mall).revokedPairs++;
    }
    append(this.revocationLog, {
      mallId: mall.id,
      pairId: pair.id,
      grantId: pair.grantId,
      via,
      hint,
      matched,
      atMs: this.clock.now(),
    });
  }

  /**
   * The control API's revocation: the pair holding `refreshToken`, or the newest live pair.
   * Revoked refresh tokens are rejected later but are not "reuse".
   */
  revokeLive(mall: Mall, refreshToken?: string): TokenPair | undefined {
    const pair = refreshToken === undefined ? this.newestPair(mall) : mall.live.get(refreshToken);
    if (pair) this.revokePair(mall, pair, "control", null, null);
    return pair;
  }

  /**
   * Revocation by either half of a pair, as /oauth/revoke does; the hint is recorded but both
   * halves are looked up, so a wrong hint shows in the revocation log instead of failing.
   */
  revokeByToken(mall: Mall, token: string, hint: string | null): RevokeOutcome {
    const byRefresh = mall.live.get(token);
    if (byRefresh) {
      this.revokePair(mall, byRefresh, "revoke_endpoint", hint, "refresh_token");
      return "revoked";
    }
    const access = mall.accessTokens.get(token);
    if (!access) return "no_match";
    for (const pair of mall.live.values()) {
      if (pair.id === access.pairId) {
        this.revokePair(mall, pair, "revoke_endpoint", hint, "access_token");
        return "revoked";
      }
    }
    // The access token of a pair that already rotated, still valid until its expiry.
    mall.accessTokens.delete(token);
    return "access_token_revoked";
  }

  /** Counts an Admin API call in the second it arrived (the last hour is kept). */
  countAdminCall(mall: Mall): void {
    const second = Math.floor(this.clock.now() / 1000);
    mall.callsBySecond.set(second, (mall.callsBySecond.get(second) ?? 0) + 1);
    if (mall.callsBySecond.size > 3600) {
      for (const key of mall.callsBySecond.keys()) {
        if (key < second - 3600) mall.callsBySecond.delete(key);
      }
    }
  }

  /**
   * Kills every access token of the mall before its expiry (the fault "a token dies early"):
   * Admin API calls with them answer 401 Invalid access_token; refresh tokens live on.
   */
  killAccessTokens(mall: Mall): number {
    const killed = mall.accessTokens.size;
    mall.accessTokens.clear();
    return killed;
  }

  checkAccessToken(mall: Mall, token: string): AccessGrant | "expired" | "invalid" {
    const grant = mall.accessTokens.get(token);
    if (!grant) return "invalid";
    if (this.clock.now() >= grant.expiresMs) return "expired";
    return grant;
  }

  enterRefresh(mall: Mall, refreshToken: string): void {
    mall.inFlightRefreshes++;
    const sameToken = (mall.inFlightByToken.get(refreshToken) ?? 0) + 1;
    mall.inFlightByToken.set(refreshToken, sameToken);
    const c = this.mallCounters(mall);
    if (mall.inFlightRefreshes > 1) this.counters.concurrentRefreshViolations++;
    if (sameToken > 1) {
      this.counters.samePairConcurrentRefreshes++;
      c.samePairConcurrentRefreshes++;
    }
    c.maxConcurrentRefreshes = Math.max(c.maxConcurrentRefreshes, mall.inFlightRefreshes);
    this.counters.maxConcurrentRefreshesPerMall = Math.max(
      this.counters.maxConcurrentRefreshesPerMall,
      mall.inFlightRefreshes,
    );
  }

  leaveRefresh(mall: Mall, refreshToken: string): void {
    mall.inFlightRefreshes = Math.max(0, mall.inFlightRefreshes - 1);
    const sameToken = (mall.inFlightByToken.get(refreshToken) ?? 1) - 1;
    if (sameToken > 0) mall.inFlightByToken.set(refreshToken, sameToken);
    else mall.inFlightByToken.delete(refreshToken);
  }
}

export function toIssuedTokens(pair: TokenPair): IssuedTokens {
  return {
    pairId: pair.id,
    grantId: pair.grantId,
    accessToken: pair.accessToken,
    refreshToken: pair.refreshToken,
    expiresAt: formatKst(pair.accessExpiresMs),
    refreshTokenExpiresAt: formatKst(pair.refreshExpiresMs),
    issuedAt: formatKst(pair.issuedMs),
    scopes: [...pair.scopes],
  };
}

/** Cafe24's token response, field for field: `expires_at` and `scopes[]`, no `expires_in`. */
export function tokenBody(
  pair: Omit<TokenPair, "id" | "grantId">,
  clientId: string,
  mall: Mall,
): Record<string, unknown> {
  return {
    access_token: pair.accessToken,
    expires_at: formatKst(pair.accessExpiresMs),
    refresh_token: pair.refreshToken,
    refresh_token_expires_at: formatKst(pair.refreshExpiresMs),
    client_id: clientId,
    mall_id: mall.id,
    user_id: mall.config.userId,
    scopes: [...pair.scopes],
    issued_at: formatKst(pair.issuedMs),
    shop_no: "1",
    token_type: "Bearer",
  };
}

export interface BucketVerdict {
  allowed: boolean;
  headers: Record<string, string>;
}

/**
 * Cafe24's per-mall leaky bucket on the sandbox clock. A rejected call still fills the bucket:
 * Cafe24 documents that calling while blocked lengthens the block.
 */
export function meter(
  mall: Mall,
  now: number,
  capacity: number,
  drainPerSecond: number,
): BucketVerdict {
  const elapsed = Math.max(0, now - mall.bucket.lastMs) / 1000;
  const level = Math.max(0, mall.bucket.level - elapsed * drainPerSecond);
  const allowed = level + 1 <= capacity;
  mall.bucket.level = level + 1;
  mall.bucket.lastMs = now;
  const after = mall.bucket.level;
  const usage = Math.min(100, Math.round((after / capacity) * 100));
  const headers: Record<string, string> = {
    "x-api-call-limit": `${Math.min(capacity, Math.ceil(after))}/${capacity}`,
    "x-cafe24-call-usage": String(usage),
  };
  if (after >= capacity) {
    // Seconds until one more call fits: level - t * drain + 1 <= capacity.
    const wait = drainPerSecond > 0 ? (after + 1 - capacity) / drainPerSecond : 3600;
    headers["x-cafe24-call-remain"] = String(Math.max(1, Math.ceil(wait)));
  }
  return { allowed, headers };
}
