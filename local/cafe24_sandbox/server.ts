import type { Handled, ResolvedOptions, SandboxContext } from "./context.ts";
import { handleControl } from "./control.ts";
import { unknownMallPage } from "./consent.ts";
import { FaultController, InjectedReset } from "./faults.ts";
import { startTlsFront } from "./tls_front.ts";
import {
  handleAuthorize,
  handleOtherAdmin,
  handleProducts,
  handleRevoke,
  handleShops,
  handleToken,
} from "./routes.ts";
import { type Mall, SandboxState, toIssuedTokens } from "./state.ts";
import {
  APP_DELETED_REFRESH_ANSWERS,
  type Cafe24Sandbox,
  type Cafe24SandboxOptions,
  type FaultKind,
  type FaultSpec,
  type RequestLogEntry,
  type SandboxSettings,
} from "./types.ts";
import { apiError, createClock, isLoopback, jsonResponse, sleep } from "./util.ts";
import { allowedHosts, bearerMatches, misdirected, newControlToken } from "../local_access.ts";

const HOUR_MS = 60 * 60 * 1000;

function resolveOptions(options: Cafe24SandboxOptions): ResolvedOptions {
  if (!options.clientId || !options.clientSecret) {
    throw new Error("startCafe24Sandbox: clientId and clientSecret are required");
  }
  return {
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    redirectUri: options.redirectUri,
    invalidGrantStatus: options.invalidGrantStatus ?? 400,
    rateLimitTokenEndpoint: options.rateLimitTokenEndpoint ?? true,
    bucketCapacity: options.bucketCapacity ?? 40,
    bucketDrainPerSecond: options.bucketDrainPerSecond ?? 2,
    commitOnClientAbort: options.commitOnClientAbort ?? false,
  };
}

/** Validates settings that may arrive as JSON through the control endpoints. */
function checkSettings(settings: Partial<SandboxSettings>): Partial<SandboxSettings> {
  const checked: Partial<SandboxSettings> = {};
  for (const key of ["consentPage", "newGrantRevokesOlderPairs", "writeScopeGrantsRead"] as const) {
    const value = settings[key];
    if (value === undefined) continue;
    if (typeof value !== "boolean") throw new Error(`${key} must be a boolean`);
    checked[key] = value;
  }
  const answer = settings.appDeletedRefresh;
  if (answer !== undefined) {
    if (!APP_DELETED_REFRESH_ANSWERS.includes(answer)) {
      throw new Error(`appDeletedRefresh must be one of ${APP_DELETED_REFRESH_ANSWERS.join(", ")}`);
    }
    checked.appDeletedRefresh = answer;
  }
  return checked;
}

function urlHost(hostname: string): string {
  if (hostname === "0.0.0.0") return "127.0.0.1";
  if (hostname === "::") return "[::1]";
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

export function startCafe24Sandbox(options: Cafe24SandboxOptions): Promise<Cafe24Sandbox> {
  const resolved = resolveOptions(options);
  if (options.controlToken !== undefined && options.controlToken.length < 16) {
    throw new Error("startCafe24Sandbox: controlToken must be at least 16 characters");
  }
  const controlToken = options.controlToken ?? newControlToken();
  /** The Host values answered; set once the port is known. */
  let hosts: ReadonlySet<string> = new Set();
  const quiet = options.quiet ?? false;
  const clock = createClock();
  const settings: SandboxSettings = {
    consentPage: false,
    newGrantRevokesOlderPairs: true,
    appDeletedRefresh: "invalid_grant",
    writeScopeGrantsRead: false,
    ...checkSettings(options),
  };
  const state = new SandboxState(
    clock,
    {
      accessTokenLifetimeMs: options.accessTokenLifetimeMs ?? 2 * HOUR_MS,
      refreshTokenLifetimeMs: options.refreshTokenLifetimeMs ?? 14 * 24 * HOUR_MS,
    },
    options.revokeOldAccessTokenOnRefresh ?? false,
    settings,
  );
  const faults = new FaultController(options.seed ?? 1, {
    latencyMs: options.latencyMs ?? 0,
    jitterMs: options.jitterMs ?? 0,
  });
  const shutdown = new AbortController();
  // Request lines carry the path only: queries and bodies hold codes, tokens and secrets.
  const log = quiet ? () => {} : (message: string) => console.error(`[cafe24-sandbox] ${message}`);
  const ctx: SandboxContext = {
    options: resolved,
    clock,
    state,
    settings,
    faults,
    shutdown: shutdown.signal,
    log,
  };

  async function waitForRequests(since: number, timeoutMs: number): Promise<RequestLogEntry[]> {
    const found = state.requestsSince(since);
    if (found.length > 0 || timeoutMs <= 0) return found;
    // Woken by the next logged request, the timeout or close(), whichever comes first.
    const arrived = new AbortController();
    const stop = state.onRequest(() => arrived.abort());
    try {
      await sleep(timeoutMs, [arrived.signal, shutdown.signal]);
    } finally {
      stop();
    }
    return state.requestsSince(since);
  }

  const sandbox: Cafe24Sandbox = {
    url: "",
    baseUrlTemplate: "",
    controlToken,
    clock,
    addMall: (mallId, mallOptions) => void state.addMall(mallId, mallOptions),
    issueTokens: (mallId, issueOptions) => state.issueTokens(mallId, issueOptions),
    liveRefreshToken(mallId) {
      const mall = state.malls.get(mallId);
      return mall && state.newestPair(mall)?.refreshToken;
    },
    livePairs(mallId) {
      const mall = state.malls.get(mallId);
      return mall ? [...mall.live.values()].map(toIssuedTokens) : [];
    },
    revokeRefreshToken(mallId, refreshToken) {
      const mall = state.malls.get(mallId);
      if (mall) state.revokeLive(mall, refreshToken);
    },
    settings: () => ({ ...settings }),
    configure: (changes) => void Object.assign(settings, checkSettings(changes)),
    setFaults: (scope, plan) => faults.setPlan(scope, plan),
    queueFaults: (scope: string, kinds: (FaultKind | FaultSpec)[]) => faults.enqueue(scope, kinds),
    clearFaults: () => faults.clear(),
    queueAdminFaults: (scope, kinds) => faults.enqueueAdmin(scope, kinds),
    killAccessTokens(mallId) {
      const mall = state.malls.get(mallId);
      return mall === undefined ? 0 : state.killAccessTokens(mall);
    },
    callsPerSecond(mallId) {
      const mall = state.malls.get(mallId);
      return Object.fromEntries([...mall?.callsBySecond ?? []].map(([s, n]) => [String(s), n]));
    },
    counters: () => structuredClone(state.counters),
    refreshLog: () => state.refreshLog.map((entry) => ({ ...entry })),
    requestLog: (since = 0) => state.requestsSince(since),
    waitForRequests,
    revocationLog: () => state.revocationLog.map((entry) => ({ ...entry })),
    issuedTokens: () => [...state.issued],
    resetCounters: () => state.resetCounters(),
    close: () => Promise.resolve(),
  };

  /** Answers a mall endpoint and logs the request; control requests are answered unlogged. */
  async function route(request: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const url = new URL(request.url);
    const [first = "", ...rest] = url.pathname.split("/").slice(1);
    if (first === "__sandbox") {
      const peer = (info.remoteAddr as Deno.NetAddr).hostname;
      if (!isLoopback(peer)) return jsonResponse(403, { error: "control API is loopback-only" });
      if (!bearerMatches(request, controlToken)) {
        return jsonResponse(401, {
          error: "the control API wants the sandbox's control token as Authorization: Bearer " +
            "(the controlToken of startCafe24Sandbox; control_token in npm start's stack.json)",
        });
      }
      return await handleControl(sandbox, (id) => state.malls.has(id), request, rest);
    }
    const mall = state.malls.get(first);
    const handled = await endpoint(mall, rest.join("/"), request);
    state.logRequest({
      kind: handled.kind,
      mallId: mall?.id ?? null,
      method: request.method,
      status: handled.response.status,
      outcome: handled.outcome,
    });
    return handled.response;
  }

  /**
   * The way back from the unknown mall's page: the app's registered redirect URI with an OAuth
   * error and the request's state (the app then shows its own message), else the page the browser
   * came from, if it said.
   */
  function wayBack(url: URL, request: Request): string | null {
    const redirectUri = url.searchParams.get("redirect_uri");
    const registered = ctx.options.redirectUri;
    if (redirectUri !== null && (registered === undefined || redirectUri === registered)) {
      try {
        const back = new URL(redirectUri);
        back.searchParams.set("error", "invalid_request");
        back.searchParams.set("error_description", "no such mall");
        const state = url.searchParams.get("state");
        if (state !== null) back.searchParams.set("state", state);
        return back.href;
      } catch { /* not a URL */ }
    }
    return request.headers.get("referer");
  }

  async function endpoint(
    mall: Mall | undefined,
    path: string,
    request: Request,
  ): Promise<Handled> {
    if (!mall) {
      state.counters.requests.other++;
      // A browser sent to an unknown mall's authorize page gets a page, with a way back.
      const page = path === "api/v2/oauth/authorize" && request.method === "GET";
      const url = new URL(request.url);
      const mallId = url.pathname.split("/")[1] ?? "";
      return {
        response: page
          ? unknownMallPage(mallId, wayBack(url, request))
          : apiError(404, "Not Found"),
        kind: "other",
        outcome: "unknown_mall",
      };
    }
    if (path.startsWith("api/v2/admin/")) state.countAdminCall(mall);
    const product = /^api\/v2\/admin\/products(?:\/(\d{1,9}))?$/.exec(path);
    if (product !== null) {
      return await handleProducts(ctx, mall, request, product[1] ? Number(product[1]) : null);
    }
    switch (path) {
      case "api/v2/oauth/authorize":
        return await handleAuthorize(ctx, mall, request);
      case "api/v2/oauth/token":
        return await handleToken(ctx, mall, request);
      case "api/v2/oauth/revoke":
        return await handleRevoke(ctx, mall, request);
      case "api/v2/admin/shops":
        return await handleShops(ctx, mall, request);
    }
    if (path.startsWith("api/v2/admin/")) return handleOtherAdmin(ctx, mall);
    state.counters.requests.other++;
    return { response: apiError(404, "Not Found"), kind: "other", outcome: "not_found" };
  }

  const handler = async (request: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    let response: Response;
    try {
      response = misdirected(request, hosts) ?? await route(request, info);
    } catch (error) {
      log(`handler error: ${error instanceof Error ? error.message : String(error)}`);
      response = apiError(500, "Internal Server Error");
    }
    log(`${request.method} ${new URL(request.url).pathname} ${response.status}`);
    if (options.closeConnections) {
      try {
        response.headers.set("connection", "close");
      } catch {
        // Immutable headers (Response.redirect and the like): copy the response.
        response = new Response(response.body, response);
        response.headers.set("connection", "close");
      }
    }
    return response;
  };

  const serveOptions: Deno.ServeTcpOptions = {
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    signal: shutdown.signal,
    onListen: () => {},
    onError: (error) => {
      // An injected reset is the body stream failing on purpose; anything else is a sandbox bug.
      if (!(error instanceof InjectedReset)) {
        log(`server error: ${error instanceof Error ? error.message : String(error)}`);
      }
      return apiError(500, "Internal Server Error");
    },
  };
  // Over TLS, Deno.serve offers HTTP/2, where Connection: close means nothing: a connection per
  // request then needs the HTTP/1.1-only front (tls_front.ts) before a plain loopback server.
  const front = options.tls && options.closeConnections ? options.tls : null;
  const server = options.tls && front === null
    ? Deno.serve({ ...serveOptions, cert: options.tls.cert, key: options.tls.key }, handler)
    : Deno.serve(
      front === null ? serveOptions : { ...serveOptions, hostname: "127.0.0.1", port: 0 },
      handler,
    );
  const tlsFront = front === null ? null : startTlsFront({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    cert: front.cert,
    key: front.key,
    backend: server.addr as Deno.NetAddr,
    onConnection: () => state.counters.tlsConnections++,
  });

  const addr = (tlsFront?.addr ?? server.addr) as Deno.NetAddr;
  sandbox.url = `${options.tls ? "https" : "http"}://${urlHost(addr.hostname)}:${addr.port}`;
  sandbox.baseUrlTemplate = `${sandbox.url}/{mall_id}`;
  hosts = allowedHosts(addr.port, [new URL(sandbox.url).host, ...(options.allowedHosts ?? [])]);
  let closing: Promise<void> | undefined;
  sandbox.close = () => {
    // Aborting first releases hung and delayed handlers, which shutdown would otherwise await.
    closing ??= (async () => {
      shutdown.abort();
      await tlsFront?.close();
      await server.finished;
    })();
    return closing;
  };
  return Promise.resolve(sandbox);
}
