/**
 * A refresh run without a database or a network: a store that keeps its connections in memory
 * and records every call, a clock whose time (wall and CPU) moves only when told, and a Cafe24
 * token endpoint answering from a script.
 */
import type { RefreshSettings } from "../../../supabase/functions/_shared/platform/config.ts";
import type { RunClock } from "../../../supabase/functions/_shared/refresh/clock.ts";
import {
  type Census,
  censusFromRows,
  type ClaimedConnection,
  type FailureOutcome,
  type FailureRecord,
  type RefreshStore,
  type RunStart,
  type Settled,
  type StoreOutcome,
} from "../../../supabase/functions/_shared/refresh/store.ts";
import { tokenSeal } from "../../../supabase/functions/_shared/platform/token_seal.ts";
import type { CensusVerdict } from "../../../supabase/functions/_shared/refresh/skip_reasons.ts";

export const START_MS = Date.parse("2026-12-01T00:00:00Z");

export const SETTINGS: RefreshSettings = {
  app: {
    apiBaseUrl: "https://{mall_id}.cafe24api.com",
    clientId: "unit-client-id",
    clientSecret: "unit-client-secret-0123456789abcdef",
    requestTimeoutMs: 15_000,
    apiVersion: null,
  },
  refreshMarginMs: 30 * 60_000,
  concurrency: 2,
  runBudgetMs: 100_000,
  runCpuBudgetMs: 150,
  maxConnectionsPerRun: 500,
  leaseMs: 75_000,
  policy: "eager",
  keepAliveWindowMs: 7 * 24 * 60 * 60_000,
  poolSize: 1,
  plaintextTokenCopy: false,
  // No ring: tokens pass as they are (the seal's own tests cover sealing).
  tokenSeal: tokenSeal(undefined, undefined),
};

export class FakeClock implements RunClock {
  wallMs = START_MS;
  /** Null: a runtime that does not report CPU time. */
  cpu: number | null = 0;
  now = () => this.wallMs;
  sleep = (ms: number) => {
    this.wallMs += ms;
    return Promise.resolve();
  };
  cpuMs = () => this.cpu;
  /** Lets `ms` of wall time and `cpuMs` of CPU time pass. */
  spend(ms: number, cpuMs = 0): void {
    this.wallMs += ms;
    if (this.cpu !== null) this.cpu += cpuMs;
  }
}

export function connection(n: number): ClaimedConnection {
  return {
    id: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
    mallId: `shop${String(n).padStart(4, "0")}`,
    refreshToken: `rt-${n}`,
    keyProblem: null,
    tokenVersion: "1",
    consecutiveFailures: 0,
    answerPossiblyLost: false,
  };
}

/** A census with these counts (the others zero), as the store reads one from SQL's rows. */
export function censusOf(counts: Partial<Record<CensusVerdict, number>>): Census {
  return censusFromRows(
    Object.entries(counts).map(([verdict, connections]) => ({ verdict, connections })),
  );
}

type SettleCall<T> = { runId: string; id: string; claimNext: boolean } & T;

/**
 * Connections waiting to be claimed, in claim order. A settle with claimNext claims the next one,
 * as the SQL does; a released connection is claimable again.
 */
export class FakeStore implements RefreshStore {
  readonly queue: ClaimedConnection[];
  census$: Census;
  readonly runs: RunStart[] = [];
  readonly claims: string[] = [];
  readonly stores: SettleCall<{ tokens: Record<string, unknown> }>[] = [];
  readonly failures: SettleCall<{ failure: FailureRecord }>[] = [];
  readonly released: string[] = [];
  readonly setAside: string[] = [];
  /** False: no active key to store an answer with. */
  tokensWritable = true;
  readonly finished: { status: string; summary: unknown }[] = [];
  /** Replaces the outcome of a store (may throw, may wait). */
  onStore: ((id: string) => Promise<StoreOutcome> | StoreOutcome) | null = null;
  /** Replaces the outcome of a recorded failure. */
  onFailure: ((id: string) => Promise<FailureOutcome> | FailureOutcome) | null = null;
  inScope = 1;
  /** What missingKeyIds answers (the rows the census counted as key_unavailable, by kid). */
  missingKeys: Record<string, number> = {};

  constructor(due: ClaimedConnection[], census?: Census) {
    this.queue = [...due];
    this.census$ = census ?? censusOf({ due: due.length });
  }

  private readonly claimedById = new Map<string, ClaimedConnection>();

  private next(claimNext: boolean): ClaimedConnection | undefined {
    if (!claimNext) return undefined;
    const connection = this.queue.shift();
    if (connection !== undefined) {
      this.claims.push(connection.id);
      this.claimedById.set(connection.id, connection);
    }
    return connection;
  }

  startRun(run: RunStart): Promise<string> {
    this.runs.push(run);
    return Promise.resolve("11111111-1111-4111-8111-111111111111");
  }

  finishRun(_runId: string, status: "finished" | "failed", summary: unknown): Promise<void> {
    this.finished.push({ status, summary });
    return Promise.resolve();
  }

  census(): Promise<Census> {
    return Promise.resolve(this.census$);
  }

  missingKeyIds(): Promise<Record<string, number>> {
    return Promise.resolve(this.missingKeys);
  }

  countInScope(): Promise<number> {
    return Promise.resolve(this.inScope);
  }

  claim(): Promise<ClaimedConnection | undefined> {
    return Promise.resolve(this.next(true));
  }

  countClaimable(): Promise<number> {
    return Promise.resolve(this.queue.length);
  }

  async storeTokens(
    { runId, connection, tokens, claimNext }: Parameters<RefreshStore["storeTokens"]>[0],
  ): Promise<Settled<StoreOutcome>> {
    this.stores.push({ runId, id: connection.id, claimNext, tokens });
    const outcome = this.onStore === null ? "stored" : await this.onStore(connection.id);
    return { outcome, next: this.next(claimNext) };
  }

  async recordFailure(
    { runId, connection, failure, claimNext }: Parameters<RefreshStore["recordFailure"]>[0],
  ): Promise<Settled<FailureOutcome>> {
    this.failures.push({ runId, id: connection.id, claimNext, failure });
    const outcome = this.onFailure === null
      ? (failure.permanent ? "reconnect_required" : "retry_scheduled")
      : await this.onFailure(connection.id);
    return { outcome, next: this.next(claimNext) };
  }

  /** Claimable again, as in SQL: first in line, since they were the most overdue. */
  setAsideUnopened(_runId: string, id: string): Promise<boolean> {
    this.setAside.push(id);
    return Promise.resolve(true);
  }

  releaseLeases(_runId: string, ids: string[]): Promise<number> {
    this.released.push(...ids);
    const back = ids.map((id) => this.claimedById.get(id)!);
    this.queue.unshift(...back);
    return Promise.resolve(ids.length);
  }
}

/** Cafe24's answer to a refresh: a new pair, in Korea time without an offset as Cafe24 sends. */
export function newPair(n: number): Response {
  return Response.json({
    access_token: `at-new-${n}`,
    refresh_token: `rt-new-${n}`,
    expires_at: "2026-12-01T11:00:00.000",
    refresh_token_expires_at: "2026-12-15T09:00:00.000",
    issued_at: "2026-12-01T09:00:00.000",
    scopes: ["mall.read_store"],
  });
}

/**
 * A token endpoint: answers each request with `answer(mallId)` after spending `cost` on the clock
 * (a request's wall time and the CPU it takes to handle its answer). Records the malls asked.
 */
export function tokenEndpoint(
  clock: FakeClock,
  answer: (mallId: string, call: number) => Response | Promise<Response> = (_, call) =>
    newPair(call),
  cost = { wallMs: 100, cpuMs: 2 },
): { fetch: typeof fetch; asked: string[] } {
  const asked: string[] = [];
  const fetch = async (input: string | URL | Request) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const mallId = url.hostname.split(".")[0]!;
    asked.push(mallId);
    clock.spend(cost.wallMs, cost.cpuMs);
    return await answer(mallId, asked.length);
  };
  return { fetch: fetch as typeof globalThis.fetch, asked };
}
