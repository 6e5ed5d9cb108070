// Mall, token and counter state. No I/O here: the HTTP layer decides when state may change.

import {
  FAULT_KINDS,
  type FaultKind,
  type IssuedTokens,
  type IssueOptions,
  type MallCounters,
  type MallOptions,
  type RefreshLogEntry,
  type SandboxClock,
  type SandboxCounters,
} from "./types.ts";
import { assertMallId, formatKst, randomToken } from "./util.ts";

export const CODE_LIFETIME_MS = 60_000;
const DEFAULT_SCOPES = ["mall.read_store", "mall.read_community"];

export interface TokenPair {
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
}

interface AuthCode {
  issuedMs: number;
  redirectUri: string;
  scopes: string[];
  used: boolean;
}

export interface MallConfig {
  scopes: string[];
  shops: object[];
  denyAuthorization: boolean;
  shopsStatus: number | undefined;
  userId: string;
}

export interface Mall {
  id: string;
  config: MallConfig;
  live: TokenPair | undefined;
  /** Refresh tokens killed by rotation: presenting one again is the bug the counters catch. */
  rotatedOut: Set<string>;
  /** Refresh tokens killed by revocation: rejected, but not counted as reuse. */
  revoked: Set<string>;
  accessTokens: Map<string, AccessGrant>;
  codes: Map<string, AuthCode>;
  bucket: { level: number; lastMs: number };
  inFlightRefreshes: number;
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
    requests: { token_refresh: 0, token_code: 0, authorize: 0, shops: 0, revoke: 0, other: 0 },
    refreshSuccesses: 0,
    deadTokenReuses: 0,
    invalidGrants: 0,
    concurrentRefreshViolations: 0,
    maxConcurrentRefreshesPerMall: 0,
    rateLimited: 0,
    faultsInjected,
    clientAuthFailures: 0,
    clientAborts: 0,
    lostResponses: 0,
    byMall,
  };
}

export type RefreshOutcome =
  | { ok: true; pair: TokenPair }
  | { ok: false; reason: "expired" | "rotated_out" | "revoked" | "unknown" };

export type CodeOutcome =
  | { ok: true; pair: TokenPair }
  | { ok: false; description: string };

/** The refresh log keeps this many entries; older ones are dropped in chunks. */
export const MAX_REFRESH_LOG_ENTRIES = 100_000;

export class SandboxState {
  readonly malls = new Map<string, Mall>();
  counters: SandboxCounters = zeroCounters([]);
  refreshLog: RefreshLogEntry[] = [];

  constructor(
    readonly clock: SandboxClock,
    readonly lifetimes: Lifetimes,
    readonly revokeOldAccessTokenOnRefresh: boolean,
  ) {}

  addMall(mallId: string, options: MallOptions = {}): Mall {
    assertMallId(mallId);
    const existing = this.malls.get(mallId);
    const base: MallConfig = existing?.config ?? {
      scopes: [...DEFAULT_SCOPES],
      shops: defaultShops(mallId),
      denyAuthorization: false,
      shopsStatus: undefined,
      userId: `${mallId}op`, // deliberately != mall_id: cafe24.md warns never to use it as the mall
    };
    const config: MallConfig = {
      scopes: options.scopes ? [...options.scopes] : base.scopes,
      shops: options.shops ? structuredClone(options.shops) : base.shops,
      denyAuthorization: options.denyAuthorization ?? base.denyAuthorization,
      shopsStatus: options.shopsStatus ?? base.shopsStatus,
      userId: options.userId ?? base.userId,
    };
    if (existing) {
      existing.config = config;
      return existing;
    }
    const mall: Mall = {
      id: mallId,
      config,
      live: undefined,
      rotatedOut: new Set(),
      revoked: new Set(),
      accessTokens: new Map(),
      codes: new Map(),
      bucket: { level: 0, lastMs: this.clock.now() },
      inFlightRefreshes: 0,
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
  }

  logRefresh(entry: RefreshLogEntry): void {
    if (this.refreshLog.length >= MAX_REFRESH_LOG_ENTRIES) {
      this.refreshLog.splice(0, MAX_REFRESH_LOG_ENTRIES / 10);
    }
    this.refreshLog.push(entry);
  }

  /** What a presented refresh token is right now, without changing anything. */
  classifyRefreshToken(mall: Mall, refreshToken: string): RefreshLogEntry["presented"] {
    const live = mall.live;
    if (live && live.refreshToken === refreshToken) {
      return this.clock.now() >= live.refreshExpiresMs ? "expired" : "live";
    }
    if (mall.rotatedOut.has(refreshToken)) return "rotated_out";
    if (mall.revoked.has(refreshToken)) return "revoked";
    return "unknown";
  }

  /** Makes a fresh pair the mall's only live one; the previous refresh token counts as rotated. */
  issue(mall: Mall, scopes: string[], lifetimes: Partial<Lifetimes> = {}): TokenPair {
    const now = this.clock.now();
    const previous = mall.live;
    if (previous) {
      mall.rotatedOut.add(previous.refreshToken);
      if (this.revokeOldAccessTokenOnRefresh) mall.accessTokens.delete(previous.accessToken);
    }
    const pair: TokenPair = {
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
    });
    mall.live = pair;
    return pair;
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
    return toIssuedTokens(this.issue(mall, mall.config.scopes, lifetimes));
  }

  refresh(mall: Mall, refreshToken: string): RefreshOutcome {
    const live = mall.live;
    if (live && live.refreshToken === refreshToken) {
      if (this.clock.now() >= live.refreshExpiresMs) return { ok: false, reason: "expired" };
      return { ok: true, pair: this.issue(mall, live.scopes) };
    }
    if (mall.rotatedOut.has(refreshToken)) return { ok: false, reason: "rotated_out" };
    if (mall.revoked.has(refreshToken)) return { ok: false, reason: "revoked" };
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
    return { ok: true, pair: this.issue(mall, entry.scopes) };
  }

  /** Kills the live pair. Revoked refresh tokens are rejected later but are not "reuse". */
  revokeLive(mall: Mall): void {
    const live = mall.live;
    if (!live) return;
    mall.revoked.add(live.refreshToken);
    mall.accessTokens.delete(live.accessToken);
    mall.live = undefined;
  }

  /** Revocation by either half of the pair, as /oauth/revoke does. */
  revokeByToken(mall: Mall, token: string): void {
    const live = mall.live;
    if (live && (live.accessToken === token || live.refreshToken === token)) {
      this.revokeLive(mall);
    } else {
      mall.accessTokens.delete(token);
    }
  }

  checkAccessToken(mall: Mall, token: string): AccessGrant | "expired" | "invalid" {
    const grant = mall.accessTokens.get(token);
    if (!grant) return "invalid";
    if (this.clock.now() >= grant.expiresMs) return "expired";
    return grant;
  }

  enterRefresh(mall: Mall): void {
    mall.inFlightRefreshes++;
    const c = this.mallCounters(mall);
    if (mall.inFlightRefreshes > 1) this.counters.concurrentRefreshViolations++;
    c.maxConcurrentRefreshes = Math.max(c.maxConcurrentRefreshes, mall.inFlightRefreshes);
    this.counters.maxConcurrentRefreshesPerMall = Math.max(
      this.counters.maxConcurrentRefreshesPerMall,
      mall.inFlightRefreshes,
    );
  }

  leaveRefresh(mall: Mall): void {
    mall.inFlightRefreshes = Math.max(0, mall.inFlightRefreshes - 1);
  }
}

export function toIssuedTokens(pair: TokenPair): IssuedTokens {
  return {
    accessToken: pair.accessToken,
    refreshToken: pair.refreshToken,
    expiresAt: formatKst(pair.accessExpiresMs),
    refreshTokenExpiresAt: formatKst(pair.refreshExpiresMs),
    issuedAt: formatKst(pair.issuedMs),
    scopes: [...pair.scopes],
  };
}

/** Cafe24's token response, field for field (cafe24.md section 2). */
export function tokenBody(
  pair: TokenPair,
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
