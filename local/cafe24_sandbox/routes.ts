// The Cafe24 endpoints of one mall: authorize (and its consent page), token, revoke and the
// Admin API. Each handler answers with the response and the outcome word the request log keeps.

import { consentPage } from "./consent.ts";
import type { Handled, SandboxContext } from "./context.ts";
import { faultResponse, type ResolvedFault } from "./faults.ts";
import { type Mall, meter, tokenBody } from "./state.ts";
import {
  APP_DELETED_MESSAGE,
  type FaultKind,
  INSUFFICIENT_SCOPE_MESSAGE,
  type PresentedToken,
  type RefreshLogOutcome,
} from "./types.ts";
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

const DENIED_DESCRIPTION = "The shop operator denied the app access.";

function redirect(uri: string, query: URLSearchParams): Response {
  return new Response(null, { status: 302, headers: { location: appendQuery(uri, query) } });
}

/** The answer the app's redirect_uri gets: a code, or access_denied; state comes back as sent. */
function decisionRedirect(
  ctx: SandboxContext,
  mall: Mall,
  approved: boolean,
  redirectUri: string,
  state: string | null,
  scopes: string[],
): { response: Response; outcome: "code" | "denied" } {
  const query = new URLSearchParams();
  if (approved) {
    query.set("code", ctx.state.createCode(mall, redirectUri, scopes));
  } else {
    query.set("error", "access_denied");
    query.set("error_description", DENIED_DESCRIPTION);
  }
  if (state !== null) query.set("state", state);
  return { response: redirect(redirectUri, query), outcome: approved ? "code" : "denied" };
}

export async function handleAuthorize(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
): Promise<Handled> {
  if (request.method === "POST") return await handleConsentDecision(ctx, mall, request);
  ctx.state.counters.requests.authorize++;
  const kind = "authorize";
  if (request.method !== "GET") {
    return { response: apiError(405, "Method Not Allowed"), kind, outcome: "method_not_allowed" };
  }
  const invalid = (description: string): Handled => ({
    response: oauthError(400, "invalid_request", description),
    kind,
    outcome: "invalid_request",
  });
  const params = new URL(request.url).searchParams;
  if (params.get("client_id") !== ctx.options.clientId) return invalid("Invalid client_id");
  const redirectUri = params.get("redirect_uri");
  const registered = ctx.options.redirectUri;
  if (redirectUri === null || (registered !== undefined && redirectUri !== registered)) {
    return invalid(REDIRECT_MISMATCH);
  }
  if (params.get("response_type") !== "code") return invalid("response_type must be code");
  const state = params.get("state");
  const requested = (params.get("scope") ?? "").split(/[\s,]+/).filter((s) => s !== "");
  const scopes = requested.length > 0 ? requested : [...mall.config.scopes];
  // A mall configured to deny stands for an owner who always says no: no page to click.
  if (mall.config.denyAuthorization) {
    return { kind, ...decisionRedirect(ctx, mall, false, redirectUri, state, scopes) };
  }
  if (!ctx.settings.consentPage) {
    return { kind, ...decisionRedirect(ctx, mall, true, redirectUri, state, scopes) };
  }
  const consentId = ctx.state.createConsent(mall, { redirectUri, state, scopes });
  const response = consentPage({
    mallId: mall.id,
    clientId: ctx.options.clientId,
    scopes,
    action: new URL(request.url).pathname,
    consentId,
  });
  return { response, kind, outcome: "consent_page" };
}

/** The consent page's form: `consent` (the pending request) and `decision`. */
async function handleConsentDecision(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
): Promise<Handled> {
  ctx.state.counters.requests.consent++;
  const kind = "consent";
  const text = await request.text();
  const form = new URLSearchParams(isFormRequest(request) ? text : "");
  const decision = form.get("decision");
  if (decision !== "approve" && decision !== "deny") {
    return {
      response: oauthError(400, "invalid_request", "decision must be approve or deny"),
      kind,
      outcome: "invalid_request",
    };
  }
  const pending = ctx.state.takeConsent(mall, form.get("consent") ?? "");
  if (!pending) {
    return {
      response: oauthError(400, "invalid_request", "Unknown or expired consent request"),
      kind,
      outcome: "invalid_request",
    };
  }
  return {
    kind,
    ...decisionRedirect(
      ctx,
      mall,
      decision === "approve",
      pending.redirectUri,
      pending.state,
      pending.scopes,
    ),
  };
}

type TokenKind = "token_refresh" | "token_code" | "other";

export async function handleToken(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
): Promise<Handled> {
  const { state } = ctx;
  const counters = state.counters;
  if (request.method !== "POST") {
    counters.requests.other++;
    return {
      response: apiError(405, "Method Not Allowed"),
      kind: "other",
      outcome: "method_not_allowed",
    };
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
  const presentedToken = form?.get("refresh_token") ?? "";
  const { presented, pairId } = isRefresh
    ? state.classifyRefreshToken(mall, presentedToken)
    : { presented: "unknown" as PresentedToken, pairId: null };
  let outcome: RefreshLogOutcome = "aborted";
  let faultKind: FaultKind | null = null;
  if (isRefresh) {
    state.mallCounters(mall).refreshRequests++;
    state.enterRefresh(mall, presentedToken);
    inFlight = true;
  }
  try {
    const fault = ctx.faults.pick(mall.id, true);
    const delay = await delayed(ctx, mall, request);
    if (
      delay === "aborted" && (fault || !ctx.options.commitOnClientAbort || ctx.shutdown.aborted)
    ) {
      return { response: abandoned(), kind, outcome };
    }
    if (fault) {
      outcome = "fault";
      faultKind = fault.kind;
      const response = await injected(ctx, mall, request, fault, () => fakeTokenBody(ctx, mall));
      return { response, kind, outcome };
    }
    const processed = processToken(ctx, mall, request, form, kind);
    outcome = processed.outcome === "issued" && delay === "aborted" ? "lost" : processed.outcome;
    if (outcome === "lost") counters.lostResponses++;
    return { response: processed.response, kind, outcome };
  } finally {
    if (inFlight) {
      state.leaveRefresh(mall, presentedToken);
      state.logRefresh({
        mallId: mall.id,
        receivedAtMs,
        settledAtMs: ctx.clock.now(),
        presented,
        outcome,
        fault: faultKind,
        pairId,
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
  const accessToken = randomToken();
  const refreshToken = randomToken();
  // Valid nowhere, but handed out all the same: a leak of one is still a leak.
  ctx.state.recordIssued(accessToken, refreshToken);
  return tokenBody(
    {
      accessToken,
      refreshToken,
      issuedMs: now,
      accessExpiresMs: now + ctx.state.lifetimes.accessTokenLifetimeMs,
      refreshExpiresMs: now + ctx.state.lifetimes.refreshTokenLifetimeMs,
      scopes: mall.config.scopes,
    },
    ctx.options.clientId,
    mall,
  );
}

/** A refresh token killed by rotation, presented again: the bug the counters exist to catch. */
function countReuse(ctx: SandboxContext, mall: Mall): void {
  ctx.state.counters.deadTokenReuses++;
  ctx.state.mallCounters(mall).deadTokenReuses++;
  ctx.log(`rotated-out refresh token presented again for mall ${mall.id}`);
}

function processToken(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
  form: URLSearchParams | undefined,
  kind: TokenKind,
): {
  response: Response;
  outcome: Exclude<RefreshLogOutcome, "lost" | "aborted" | "fault">;
} {
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
  const invalidGrant = (description: string) =>
    withHeaders(
      oauthError(options.invalidGrantStatus, "invalid_grant", description),
      bucketHeaders,
    );
  if (kind === "token_refresh") {
    const refreshToken = form.get("refresh_token") ?? "";
    if (mall.config.appDeleted && ctx.settings.appDeletedRefresh !== "issued") {
      // The app is gone whatever token was sent; a rotated-out one is still a reuse.
      if (state.classifyRefreshToken(mall, refreshToken).presented === "rotated_out") {
        countReuse(ctx, mall);
      }
      if (ctx.settings.appDeletedRefresh === "forbidden") {
        return {
          response: apiError(403, APP_DELETED_MESSAGE, bucketHeaders),
          outcome: "app_deleted",
        };
      }
      counters.invalidGrants++;
      return { response: invalidGrant("Invalid refresh_token"), outcome: "app_deleted" };
    }
    const outcome = state.refresh(mall, refreshToken);
    if (outcome.ok) {
      counters.refreshSuccesses++;
      mallCounters.refreshSuccesses++;
      return {
        response: jsonResponse(200, tokenBody(outcome.pair, options.clientId, mall), bucketHeaders),
        outcome: "issued",
      };
    }
    counters.invalidGrants++;
    if (outcome.reason === "rotated_out") countReuse(ctx, mall);
    return { response: invalidGrant("Invalid refresh_token"), outcome: "invalid_grant" };
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
    return { response: invalidGrant(outcome.description), outcome: "invalid_grant" };
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

const TOKEN_HINTS = ["access_token", "refresh_token"];

export async function handleRevoke(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
): Promise<Handled> {
  const { state, options } = ctx;
  state.counters.requests.revoke++;
  const kind = "revoke";
  if (request.method !== "POST") {
    return { response: apiError(405, "Method Not Allowed"), kind, outcome: "method_not_allowed" };
  }
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
      return {
        response: apiError(429, "Too Many Requests", bucketHeaders),
        kind,
        outcome: "rate_limited",
      };
    }
  }
  const credentials = clientCredentials(request, form);
  if (
    !credentials || credentials.clientId !== options.clientId ||
    credentials.clientSecret !== options.clientSecret
  ) {
    state.counters.clientAuthFailures++;
    return {
      response: withHeaders(
        oauthError(401, "invalid_grant", "Invalid client_secret"),
        bucketHeaders,
      ),
      kind,
      outcome: "client_auth_failed",
    };
  }
  const invalid = (description: string): Handled => ({
    response: withHeaders(oauthError(400, "invalid_request", description), bucketHeaders),
    kind,
    outcome: "invalid_request",
  });
  const token = form.get("token");
  if (!token) return invalid("token is required");
  // Cafe24 names it token_hint (not RFC 7009's token_type_hint); absent is tolerated.
  const hint = form.get("token_hint");
  if (hint !== null && !TOKEN_HINTS.includes(hint)) {
    return invalid("token_hint must be access_token or refresh_token");
  }
  const outcome = state.revokeByToken(mall, token, hint);
  return { response: new Response(null, { status: 200, headers: bucketHeaders }), kind, outcome };
}

/**
 * What every Admin API route does first, in Cafe24's order: injected faults and latency, the
 * mall's leaky bucket, the access token, then an uninstalled app (a 403 that a client tells from
 * a missing scope by its message). Returns the answer that ends the call, or the grant and the
 * bucket's headers the route goes on with.
 */
async function admitAdminCall(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
  answer: (response: Response, outcome: string) => Handled,
): Promise<
  Handled | {
    grant: Exclude<ReturnType<SandboxContext["state"]["checkAccessToken"]>, "invalid" | "expired">;
    headers: ReturnType<typeof meter>["headers"];
  }
> {
  const { state, options } = ctx;
  const fault = ctx.faults.pick(mall.id, false);
  if (await delayed(ctx, mall, request) === "aborted") return answer(abandoned(), "aborted");
  if (fault) return answer(await injected(ctx, mall, request, fault, undefined), "fault");
  const verdict = meter(
    mall,
    ctx.clock.now(),
    options.bucketCapacity,
    options.bucketDrainPerSecond,
  );
  const headers = verdict.headers;
  if (!verdict.allowed) {
    state.counters.rateLimited++;
    return answer(apiError(429, "Too Many Requests", headers), "rate_limited");
  }
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "");
  const grant = match?.[1] === undefined ? "invalid" : state.checkAccessToken(mall, match[1]);
  if (grant === "invalid") {
    return answer(apiError(401, "Invalid access_token", headers), "invalid_token");
  }
  if (grant === "expired") {
    return answer(apiError(401, "access_token time expired", headers), "expired_token");
  }
  if (mall.config.appDeleted) {
    return answer(apiError(403, APP_DELETED_MESSAGE, headers), "app_deleted");
  }
  return { grant, headers };
}

export async function handleShops(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
): Promise<Handled> {
  const { state } = ctx;
  state.counters.requests.shops++;
  const kind = "shops";
  const mallCounters = state.mallCounters(mall);
  mallCounters.shopsRequests++;
  mallCounters.lastApiVersion = request.headers.get("x-cafe24-api-version");
  const answer = (response: Response, outcome: string): Handled => ({ response, kind, outcome });
  if (request.method !== "GET") {
    return answer(apiError(405, "Method Not Allowed"), "method_not_allowed");
  }
  const admitted = await admitAdminCall(ctx, mall, request, answer);
  if ("response" in admitted) return admitted;
  const { grant, headers } = admitted;
  if (!grant.scopes.includes("mall.read_store")) {
    return answer(apiError(403, INSUFFICIENT_SCOPE_MESSAGE, headers), "insufficient_scope");
  }
  const status = mall.config.shopsStatus;
  if (status !== undefined && status !== 200) {
    const message = status === 403
      ? "This app is not installed on the shop or lacks permission."
      : `Sandbox-configured error ${status}`;
    return answer(apiError(status, message, headers), "configured_status");
  }
  return answer(
    jsonResponse(200, { shops: structuredClone(mall.config.shops) }, headers),
    "ok",
  );
}

/** Admin API paths the sandbox does not implement: 404, or the uninstalled app's 403. */
export function handleOtherAdmin(ctx: SandboxContext, mall: Mall): Handled {
  ctx.state.counters.requests.other++;
  if (mall.config.appDeleted) {
    return { response: apiError(403, APP_DELETED_MESSAGE), kind: "other", outcome: "app_deleted" };
  }
  return { response: apiError(404, "Not Found"), kind: "other", outcome: "not_found" };
}

/** A sandbox product: the fields the Admin API's product resource names, a few of them. */
interface Product {
  shop_no: number;
  product_no: number;
  product_code: string;
  product_name: string;
  price: string;
  display: "T" | "F";
  selling: "T" | "F";
  updated_date: string;
}

const products = new WeakMap<Mall, Map<number, Product>>();

/** The mall's products: three to start with, changed only by PUT. */
function productsOf(mall: Mall): Map<number, Product> {
  let list = products.get(mall);
  if (list === undefined) {
    list = new Map();
    for (const no of [11, 12, 13]) {
      list.set(no, {
        shop_no: 1,
        product_no: no,
        product_code: `P0000${String(no).padStart(3, "0")}`,
        product_name: `${mall.id} product ${no}`,
        price: `${no}000.00`,
        display: "T",
        selling: "T",
        updated_date: "2026-12-01T10:00:00+09:00",
      });
    }
    products.set(mall, list);
  }
  return list;
}

/**
 * `/api/v2/admin/products` (GET: the list, `limit` honoured), `/products/{no}` (GET: one; PUT
 * `{"request": {…}}`: change its name, price, display or selling). Metered, authorized and faulted
 * like the shop list; an access token needs mall.read_product, and mall.write_product for PUT.
 */
export async function handleProducts(
  ctx: SandboxContext,
  mall: Mall,
  request: Request,
  productNo: number | null,
): Promise<Handled> {
  const { state } = ctx;
  state.counters.requests.other++;
  const kind = "other";
  const answer = (response: Response, outcome: string): Handled => ({ response, kind, outcome });
  const allowed = productNo === null ? ["GET"] : ["GET", "PUT"];
  if (!allowed.includes(request.method)) {
    return answer(apiError(405, "Method Not Allowed"), "method_not_allowed");
  }
  const admitted = await admitAdminCall(ctx, mall, request, answer);
  if ("response" in admitted) return admitted;
  const { grant, headers } = admitted;
  const needed = request.method === "PUT" ? "mall.write_product" : "mall.read_product";
  if (!grant.scopes.includes(needed)) {
    return answer(
      apiError(403, `Insufficient scope: ${needed} is required`, headers),
      "insufficient_scope",
    );
  }
  const list = productsOf(mall);
  if (productNo === null) {
    const limit = Number(new URL(request.url).searchParams.get("limit") ?? "10");
    const page = [...list.values()].slice(0, Number.isInteger(limit) && limit > 0 ? limit : 10);
    return answer(jsonResponse(200, { products: structuredClone(page) }, headers), "ok");
  }
  const product = list.get(productNo);
  if (product === undefined) return answer(apiError(404, "No product found", headers), "not_found");
  if (request.method === "PUT") {
    let changes: Record<string, unknown> = {};
    try {
      const parsed = await request.json();
      changes = parsed?.request ?? {};
    } catch {
      return answer(apiError(400, "The body must be JSON", headers), "bad_request");
    }
    for (const key of ["product_name", "price", "display", "selling"] as const) {
      const value = changes[key];
      if (typeof value === "string") (product as unknown as Record<string, string>)[key] = value;
    }
    product.updated_date = new Date(ctx.clock.now()).toISOString();
  }
  return answer(jsonResponse(200, { product: structuredClone(product) }, headers), "ok");
}
