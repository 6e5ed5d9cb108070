// The Cafe24 endpoints of one mall: authorize, token, revoke and admin/shops.

import type { SandboxContext } from "./context.ts";
import { faultResponse, type ResolvedFault } from "./faults.ts";
import { type Mall, meter, tokenBody } from "./state.ts";
import type { FaultKind, RefreshLogOutcome } from "./types.ts";
import {
  apiError,
  clientCredentials,
  isFormRequest,
  jsonResponse,
  oauthError,
  randomToken,
  sleep,
} from "./util.ts";

const REDIRECT_MISMATCH = "The redirect_uri added by Cafe24 Developers is invalid.";

function withHeaders(response: Response, headers: Record<string, string>): Response {
  for (const [name, value] of Object.entries(headers)) response.headers.set(name, value);
  return response;
}

/** Placeholder for requests whose client is gone: nothing reads it. */
function abandoned(): Response {
  return new Response(null, { status: 499 });
}

function appendQuery(uri: string, params: URLSearchParams): string {
  // String concatenation, not URL: the registered URI must come back character for character.
  return `${uri}${uri.includes("?") ? "&" : "?"}${params.toString()}`;
}

export function handleAuthorize(ctx: SandboxContext, mall: Mall, request: Request): Response {
  ctx.state.counters.requests.authorize++;
  if (request.method !== "GET") return apiError(405, "Method Not Allowed");
  const params = new URL(request.url).searchParams;
  if (params.get("client_id") !== ctx.options.clientId) {
    return oauthError(400, "invalid_request", "Invalid client_id");
  }
  const redirectUri = params.get("redirect_uri");
  const registered = ctx.options.redirectUri;
  if (redirectUri === null || (registered !== undefined && redirectUri !== registered)) {
    return oauthError(400, "invalid_request", REDIRECT_MISMATCH);
  }
  if (params.get("response_type") !== "code") {
    return oauthError(400, "invalid_request", "response_type must be code");
  }
  const state = params.get("state");
  const query = new URLSearchParams();
  if (mall.config.denyAuthorization) {
    query.set("error", "access_denied");
    query.set("error_description", "The shop operator denied the app access.");
  } else {
    const requested = (params.get("scope") ?? "").split(/[\s,]+/).filter((s) => s !== "");
    const scopes = requested.length > 0 ? requested : [...mall.config.scopes];
    query.set("code", ctx.state.createCode(mall, redirectUri, scopes));
  }
  if (state !== null) query.set("state", state);
  return new Response(null, {
    status: 302,
    headers: { location: appendQuery(redirectUri, query) },
  });
}

type TokenKind = "token_refresh" | "token_code" | "other";

export async function handleToken(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
): Promise<Response> {
  const { state } = ctx;
  const counters = state.counters;
  if (request.method !== "POST") {
    counters.requests.other++;
    return apiError(405, "Method Not Allowed");
  }
  const receivedAtMs = ctx.clock.now();
  const text = await request.text();
  const form = isFormRequest(request) ? new URLSearchParams(text) : undefined;
  const grant = form?.get("grant_type");
  const kind: TokenKind = grant === "refresh_token"
    ? "token_refresh"
    : grant === "authorization_code"
    ? "token_code"
    : "other";
  counters.requests[kind]++;
  const isRefresh = kind === "token_refresh";
  let inFlight = false;
  // For the refresh log: what was presented on arrival, and how the request ended.
  const presented = isRefresh
    ? state.classifyRefreshToken(mall, form?.get("refresh_token") ?? "")
    : "unknown";
  let outcome: RefreshLogOutcome = "aborted";
  let faultKind: FaultKind | null = null;
  if (isRefresh) {
    state.mallCounters(mall).refreshRequests++;
    state.enterRefresh(mall);
    inFlight = true;
  }
  try {
    const fault = ctx.faults.pick(mall.id, true);
    const delay = await delayed(ctx, mall, request);
    if (
      delay === "aborted" && (fault || !ctx.options.commitOnClientAbort || ctx.shutdown.aborted)
    ) {
      return abandoned();
    }
    if (fault) {
      outcome = "fault";
      faultKind = fault.kind;
      return await injected(ctx, mall, request, fault, () => fakeTokenBody(ctx, mall));
    }
    const processed = processToken(ctx, mall, request, form, kind);
    outcome = processed.outcome === "issued" && delay === "aborted" ? "lost" : processed.outcome;
    if (outcome === "lost") counters.lostResponses++;
    return processed.response;
  } finally {
    if (inFlight) {
      state.leaveRefresh(mall);
      state.logRefresh({
        mallId: mall.id,
        receivedAtMs,
        settledAtMs: ctx.clock.now(),
        presented,
        outcome,
        fault: faultKind,
      });
    }
  }
}

/** Applies latency; "aborted" when the client gave up (or the sandbox closed) meanwhile. */
async function delayed(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
): Promise<"elapsed" | "aborted"> {
  const ms = ctx.faults.latencyMs(mall.id);
  if (ms <= 0) return "elapsed";
  // request.signal is read only here and for hangs: Deno prints a one-time legacy-abort warning
  // when a request whose signal was read later completes successfully.
  const outcome = await sleep(ms, [request.signal, ctx.shutdown]);
  if (outcome === "aborted" && request.signal.aborted) ctx.state.counters.clientAborts++;
  return outcome;
}

async function injected(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
  fault: ResolvedFault,
  fakeBody: (() => Record<string, unknown>) | undefined,
): Promise<Response> {
  ctx.state.counters.faultsInjected[fault.kind]++;
  const detail = fault.status ?? fault.variant;
  ctx.log(`fault ${fault.kind}${detail === undefined ? "" : ` (${detail})`} for mall ${mall.id}`);
  const response = await faultResponse(fault, {
    fakeTokenBody: fakeBody,
    signals: () => [request.signal, ctx.shutdown],
  });
  if (fault.kind === "hang" && request.signal.aborted) ctx.state.counters.clientAborts++;
  return response;
}

function fakeTokenBody(ctx: SandboxContext, mall: Mall): Record<string, unknown> {
  const now = ctx.clock.now();
  return tokenBody(
    {
      accessToken: randomToken(),
      refreshToken: randomToken(),
      issuedMs: now,
      accessExpiresMs: now + ctx.state.lifetimes.accessTokenLifetimeMs,
      refreshExpiresMs: now + ctx.state.lifetimes.refreshTokenLifetimeMs,
      scopes: mall.config.scopes,
    },
    ctx.options.clientId,
    mall,
  );
}

function processToken(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
  form: URLSearchParams | undefined,
  kind: TokenKind,
): { response: Response; outcome: Exclude<RefreshLogOutcome, "lost" | "aborted" | "fault"> } {
  const { state, options } = ctx;
  const counters = state.counters;
  let bucketHeaders: Record<string, string> = {};
  if (options.rateLimitTokenEndpoint) {
    const verdict = meter(
      mall,
      ctx.clock.now(),
      options.bucketCapacity,
      options.bucketDrainPerSecond,
    );
    bucketHeaders = verdict.headers;
    if (!verdict.allowed) {
      counters.rateLimited++;
      return {
        response: apiError(429, "Too Many Requests", bucketHeaders),
        outcome: "rate_limited",
      };
    }
  }
  if (!form) {
    return {
      response: withHeaders(
        oauthError(
          400,
          "invalid_request",
          "Content-Type must be application/x-www-form-urlencoded",
        ),
        bucketHeaders,
      ),
      outcome: "bad_request",
    };
  }
  const credentials = clientCredentials(request, form);
  if (
    !credentials || credentials.clientId !== options.clientId ||
    credentials.clientSecret !== options.clientSecret
  ) {
    counters.clientAuthFailures++;
    return {
      response: withHeaders(
        oauthError(401, "invalid_grant", "Invalid client_secret"),
        bucketHeaders,
      ),
      outcome: "client_auth_failed",
    };
  }
  const mallCounters = state.mallCounters(mall);
  if (kind === "token_refresh") {
    const outcome = state.refresh(mall, form.get("refresh_token") ?? "");
    if (outcome.ok) {
      counters.refreshSuccesses++;
      mallCounters.refreshSuccesses++;
      return {
        response: jsonResponse(200, tokenBody(outcome.pair, options.clientId, mall), bucketHeaders),
        outcome: "issued",
      };
    }
    counters.invalidGrants++;
    if (outcome.reason === "rotated_out") {
      counters.deadTokenReuses++;
      mallCounters.deadTokenReuses++;
      ctx.log(`rotated-out refresh token presented again for mall ${mall.id}`);
    }
    return {
      response: withHeaders(
        oauthError(options.invalidGrantStatus, "invalid_grant", "Invalid refresh_token"),
        bucketHeaders,
      ),
      outcome: "invalid_grant",
    };
  }
  if (kind === "token_code") {
    const outcome = state.exchangeCode(mall, form.get("code") ?? "", form.get("redirect_uri"));
    if (outcome.ok) {
      mallCounters.codeExchanges++;
      return {
        response: jsonResponse(200, tokenBody(outcome.pair, options.clientId, mall), bucketHeaders),
        outcome: "issued",
      };
    }
    counters.invalidGrants++;
    return {
      response: withHeaders(
        oauthError(options.invalidGrantStatus, "invalid_grant", outcome.description),
        bucketHeaders,
      ),
      outcome: "invalid_grant",
    };
  }
  return {
    response: withHeaders(
      oauthError(
        400,
        "unsupported_grant_type",
        "grant_type must be authorization_code or refresh_token",
      ),
      bucketHeaders,
    ),
    outcome: "bad_request",
  };
}

export async function handleRevoke(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
): Promise<Response> {
  const { state, options } = ctx;
  state.counters.requests.revoke++;
  if (request.method !== "POST") return apiError(405, "Method Not Allowed");
  const text = await request.text();
  const form = new URLSearchParams(isFormRequest(request) ? text : "");
  let bucketHeaders: Record<string, string> = {};
  if (options.rateLimitTokenEndpoint) {
    const verdict = meter(
      mall,
      ctx.clock.now(),
      options.bucketCapacity,
      options.bucketDrainPerSecond,
    );
    bucketHeaders = verdict.headers;
    if (!verdict.allowed) {
      state.counters.rateLimited++;
      return apiError(429, "Too Many Requests", bucketHeaders);
    }
  }
  const credentials = clientCredentials(request, form);
  if (
    !credentials || credentials.clientId !== options.clientId ||
    credentials.clientSecret !== options.clientSecret
  ) {
    state.counters.clientAuthFailures++;
    return withHeaders(oauthError(401, "invalid_grant", "Invalid client_secret"), bucketHeaders);
  }
  const token = form.get("token");
  if (token) state.revokeByToken(mall, token);
  return new Response(null, { status: 200, headers: bucketHeaders });
}

export async function handleShops(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
): Promise<Response> {
  const { state, options } = ctx;
  state.counters.requests.shops++;
  const mallCounters = state.mallCounters(mall);
  mallCounters.shopsRequests++;
  mallCounters.lastApiVersion = request.headers.get("x-cafe24-api-version");
  if (request.method !== "GET") return apiError(405, "Method Not Allowed");
  const fault = ctx.faults.pick(mall.id, false);
  if (await delayed(ctx, mall, request) === "aborted") return abandoned();
  if (fault) return await injected(ctx, mall, request, fault, undefined);
  const verdict = meter(
    mall,
    ctx.clock.now(),
    options.bucketCapacity,
    options.bucketDrainPerSecond,
  );
  if (!verdict.allowed) {
    state.counters.rateLimited++;
    return apiError(429, "Too Many Requests", verdict.headers);
  }
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "");
  const grant = match?.[1] === undefined ? "invalid" : state.checkAccessToken(mall, match[1]);
  if (grant === "invalid") return apiError(401, "Invalid access_token", verdict.headers);
  if (grant === "expired") return apiError(401, "access_token time expired", verdict.headers);
  if (!grant.scopes.includes("mall.read_store")) {
    return apiError(403, "Insufficient scope: mall.read_store is required", verdict.headers);
  }
  const status = mall.config.shopsStatus;
  if (status !== undefined && status !== 200) {
    const message = status === 403
      ? "This app is not installed on the shop or lacks permission."
      : `Sandbox-configured error ${status}`;
    return apiError(status, message, verdict.headers);
  }
  return jsonResponse(200, { shops: structuredClone(mall.config.shops) }, verdict.headers);
}
