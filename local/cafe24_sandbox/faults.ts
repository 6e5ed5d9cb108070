// Fault plans, queues and the responses that impersonate a misbehaving Cafe24 or its proxies.

import {
  FAULT_KINDS,
  type FaultKind,
  type FaultPlan,
  type FaultSpec,
  MALFORMED_VARIANTS,
  type MalformedVariant,
  type ServerErrorStatus,
} from "./types.ts";
import { apiError, htmlResponse, jsonResponse, mulberry32, sleep } from "./util.ts";

export const GLOBAL_SCOPE = "*";
const SERVER_ERROR_STATUSES: readonly ServerErrorStatus[] = [500, 502, 503, 504];
const DEFAULT_RETRY_AFTER_SECONDS = 2;
const DEFAULT_HANG_MS = 10 * 60 * 1000;

export interface ResolvedFault {
  kind: FaultKind;
  status: ServerErrorStatus | undefined;
  variant: MalformedVariant | undefined;
  retryAfterSeconds: number;
  hangMs: number;
}

/** Thrown into the body stream of a `reset` fault; the server's onError recognises it. */
export class InjectedReset extends Error {
  constructor() {
    super("cafe24 sandbox: injected connection reset");
    this.name = "InjectedReset";
  }
}

function isFaultKind(value: unknown): value is FaultKind {
  return typeof value === "string" && (FAULT_KINDS as readonly string[]).includes(value);
}

function nonNegative(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new Error(`${name} must be a non-negative number`);
  }
  return value;
}

/** Validates plans that may arrive as JSON through the control endpoints. */
export function normalizePlan(input: unknown): FaultPlan {
  if (typeof input !== "object" || input === null) throw new Error("plan must be an object");
  const raw = input as Record<string, unknown>;
  const plan: FaultPlan = {};
  const latencyMs = nonNegative(raw.latencyMs, "latencyMs");
  if (latencyMs !== undefined) plan.latencyMs = latencyMs;
  const jitterMs = nonNegative(raw.jitterMs, "jitterMs");
  if (jitterMs !== undefined) plan.jitterMs = jitterMs;
  const retryAfterSeconds = nonNegative(raw.retryAfterSeconds, "retryAfterSeconds");
  if (retryAfterSeconds !== undefined) plan.retryAfterSeconds = retryAfterSeconds;
  const hangMs = nonNegative(raw.hangMs, "hangMs");
  if (hangMs !== undefined) plan.hangMs = hangMs;
  if (raw.malformedVariant !== undefined) {
    if (!(MALFORMED_VARIANTS as readonly unknown[]).includes(raw.malformedVariant)) {
      throw new Error(`unknown malformedVariant ${JSON.stringify(raw.malformedVariant)}`);
    }
    plan.malformedVariant = raw.malformedVariant as MalformedVariant;
  }
  if (raw.probabilities !== undefined) {
    if (typeof raw.probabilities !== "object" || raw.probabilities === null) {
      throw new Error("probabilities must be an object");
    }
    const probabilities: Partial<Record<FaultKind, number>> = {};
    for (const [kind, p] of Object.entries(raw.probabilities)) {
      if (!isFaultKind(kind)) throw new Error(`unknown fault kind ${JSON.stringify(kind)}`);
      const value = nonNegative(p, `probabilities.${kind}`);
      if (value !== undefined) probabilities[kind] = value;
    }
    plan.probabilities = probabilities;
  }
  return plan;
}

export function normalizeSpec(input: unknown): FaultSpec {
  if (isFaultKind(input)) return { kind: input };
  if (typeof input !== "object" || input === null || !isFaultKind((input as FaultSpec).kind)) {
    throw new Error(`unknown fault ${JSON.stringify(input)}`);
  }
  const raw = input as Record<string, unknown>;
  const spec: FaultSpec = { kind: raw.kind as FaultKind };
  if (raw.variant !== undefined) {
    if (!(MALFORMED_VARIANTS as readonly unknown[]).includes(raw.variant)) {
      throw new Error(`unknown variant ${JSON.stringify(raw.variant)}`);
    }
    spec.variant = raw.variant as MalformedVariant;
  }
  if (raw.status !== undefined) {
    if (!(SERVER_ERROR_STATUSES as readonly unknown[]).includes(raw.status)) {
      throw new Error(`status must be one of ${SERVER_ERROR_STATUSES.join(", ")}`);
    }
    spec.status = raw.status as ServerErrorStatus;
  }
  return spec;
}

export class FaultController {
  private plans = new Map<string, FaultPlan>();
  private queues = new Map<string, FaultSpec[]>();
  private adminQueues = new Map<string, FaultSpec[]>();
  // Separate streams, so turning jitter on does not change which requests get faults.
  private readonly faultRandom: () => number;
  private readonly jitterRandom: () => number;

  constructor(seed: number, private readonly defaults: { latencyMs: number; jitterMs: number }) {
    this.faultRandom = mulberry32(seed);
    this.jitterRandom = mulberry32(seed ^ 0x9e3779b9);
  }

  setPlan(scope: string, plan: FaultPlan): void {
    this.plans.set(scope, normalizePlan(plan));
  }

  enqueue(scope: string, kinds: (FaultKind | FaultSpec)[]): void {
    const specs = kinds.map(normalizeSpec);
    const queue = this.queues.get(scope) ?? [];
    queue.push(...specs);
    this.queues.set(scope, queue);
  }

  /** Faults for the next Admin API calls of a mall (or `*`), in order; token requests skip them. */
  enqueueAdmin(scope: string, kinds: (FaultKind | FaultSpec)[]): void {
    const specs = kinds.map(normalizeSpec);
    const queue = this.adminQueues.get(scope) ?? [];
    queue.push(...specs);
    this.adminQueues.set(scope, queue);
  }

  clear(): void {
    this.plans.clear();
    this.queues.clear();
    this.adminQueues.clear();
  }

  private setting<K extends keyof FaultPlan>(mallId: string, key: K): FaultPlan[K] | undefined {
    return this.plans.get(mallId)?.[key] ?? this.plans.get(GLOBAL_SCOPE)?.[key];
  }

  /**
   * Decides the fault for one request on arrival, so concurrent requests consume the queue in
   * arrival order. Only token requests consume queued faults; plans' probabilities apply to both.
   */
  pick(mallId: string, consumeQueue: boolean): ResolvedFault | undefined {
    let spec: FaultSpec | undefined;
    if (consumeQueue) {
      spec = this.queues.get(mallId)?.shift() ?? this.queues.get(GLOBAL_SCOPE)?.shift();
    } else {
      spec = this.adminQueues.get(mallId)?.shift() ?? this.adminQueues.get(GLOBAL_SCOPE)?.shift();
    }
    if (!spec) {
      const probabilities = this.setting(mallId, "probabilities");
      if (probabilities && Object.values(probabilities).some((p) => p > 0)) {
        const draw = this.faultRandom();
        let cumulative = 0;
        for (const kind of FAULT_KINDS) {
          cumulative += probabilities[kind] ?? 0;
          if (draw < cumulative) {
            spec = { kind };
            break;
          }
        }
      }
    }
    if (!spec) return undefined;
    return {
      kind: spec.kind,
      status: spec.kind === "server_error"
        ? spec.status ?? this.choose(SERVER_ERROR_STATUSES)
        : undefined,
      variant: spec.kind === "malformed_200"
        ? spec.variant ?? this.setting(mallId, "malformedVariant") ??
          this.choose(MALFORMED_VARIANTS)
        : undefined,
      retryAfterSeconds: this.setting(mallId, "retryAfterSeconds") ?? DEFAULT_RETRY_AFTER_SECONDS,
      hangMs: this.setting(mallId, "hangMs") ?? DEFAULT_HANG_MS,
    };
  }

  latencyMs(mallId: string): number {
    const base = this.setting(mallId, "latencyMs") ?? this.defaults.latencyMs;
    const jitter = this.setting(mallId, "jitterMs") ?? this.defaults.jitterMs;
    if (jitter <= 0) return Math.max(0, base);
    return Math.max(0, base + (this.jitterRandom() * 2 - 1) * jitter);
  }

  private choose<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.faultRandom() * items.length)] ?? items[0];
    return item as T;
  }
}

function proxyPage(status: number, reason: string): string {
  return `<html>\r\n<head><title>${status} ${reason}</title></head>\r\n<body>\r\n` +
    `<center><h1>${status} ${reason}</h1></center>\r\n<hr><center>nginx</center>\r\n` +
    `</body>\r\n</html>\r\n`;
}

const REASONS: Record<number, string> = {
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Time-out",
};

export interface FaultContext {
  /** A plausible token body (fresh random values, nothing stored); absent for shops. */
  fakeTokenBody: (() => Record<string, unknown>) | undefined;
  /** Read lazily: touching request.signal has a cost in Deno (see routes.ts). */
  signals: () => AbortSignal[];
}

/** Builds the faulty answer. Must not touch sandbox state: a faulted request never rotates. */
export async function faultResponse(fault: ResolvedFault, ctx: FaultContext): Promise<Response> {
  switch (fault.kind) {
    case "server_error": {
      const status = fault.status ?? 500;
      // Cafe24 itself answers 500/503 as JSON; 502/504 come from the proxies in front, as HTML.
      if (status === 502 || status === 504) {
        return htmlResponse(status, proxyPage(status, REASONS[status] ?? "Error"));
      }
      return apiError(status, REASONS[status] ?? "Error");
    }
    case "rate_limited":
      return apiError(429, "Too Many Requests");
    case "rate_limited_retry_after":
      return apiError(429, "Too Many Requests", {
        "retry-after": String(fault.retryAfterSeconds),
      });
    case "html_error":
      return htmlResponse(500, proxyPage(500, "Internal Server Error"));
    case "hang": {
      const outcome = await sleep(fault.hangMs, ctx.signals());
      // After an abort nobody reads this; after hangMs it is what a proxy would say.
      return outcome === "aborted"
        ? new Response(null, { status: 499 })
        : htmlResponse(504, proxyPage(504, "Gateway Time-out"));
    }
    case "malformed_200":
      return malformed(fault.variant ?? "text", ctx.fakeTokenBody);
    case "reset":
      // Deno.serve has already sent the status line and headers when the body stream fails, so the
      // client's fetch() resolves and the failure surfaces when it reads the body.
      return new Response(
        new ReadableStream({
          start(controller) {
            controller.error(new InjectedReset());
          },
        }),
        { status: 200, headers: { "content-type": "application/json" } },
      );
  }
}

function malformed(
  variant: MalformedVariant,
  fakeTokenBody: (() => Record<string, unknown>) | undefined,
): Response {
  switch (variant) {
    case "html":
      return htmlResponse(
        200,
        "<!DOCTYPE html><html><head><title>Cafe24</title></head><body><p>서비스 점검 중입니다." +
          "</p></body></html>",
      );
    case "text":
      return new Response("OK", { status: 200, headers: { "content-type": "text/plain" } });
    case "empty":
      return new Response(null, { status: 200, headers: { "content-type": "application/json" } });
    case "missing_refresh_token": {
      if (!fakeTokenBody) return jsonResponse(200, {});
      const body = fakeTokenBody();
      delete body.refresh_token;
      delete body.refresh_token_expires_at;
      return jsonResponse(200, body);
    }
    case "wrong_types": {
      if (!fakeTokenBody) return jsonResponse(200, { shops: "1" });
      const body = fakeTokenBody();
      return jsonResponse(200, {
        ...body,
        expires_at: Math.floor(Date.now() / 1000) + 7200,
        refresh_token_expires_at: null,
        scopes: "mall.read_store,mall.read_community",
      });
    }
  }
}
