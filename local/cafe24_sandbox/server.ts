import type { ResolvedOptions, SandboxContext } from "./context.ts";
import { handleControl } from "./control.ts";
import { FaultController, InjectedReset } from "./faults.ts";
import { handleAuthorize, handleRevoke, handleShops, handleToken } from "./routes.ts";
import { SandboxState } from "./state.ts";
import type { Cafe24Sandbox, Cafe24SandboxOptions, FaultKind, FaultSpec } from "./types.ts";
import { apiError, createClock, isLoopback, jsonResponse } from "./util.ts";

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

function urlHost(hostname: string): string {
  if (hostname === "0.0.0.0") return "127.0.0.1";
  if (hostname === "::") return "[::1]";
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

export function startCafe24Sandbox(options: Cafe24SandboxOptions): Promise<Cafe24Sandbox> {
  const resolved = resolveOptions(options);
  const quiet = options.quiet ?? false;
  const clock = createClock();
  const state = new SandboxState(
    clock,
    {
      accessTokenLifetimeMs: options.accessTokenLifetimeMs ?? 2 * HOUR_MS,
      refreshTokenLifetimeMs: options.refreshTokenLifetimeMs ?? 14 * 24 * HOUR_MS,
    },
    options.revokeOldAccessTokenOnRefresh ?? false,
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
    faults,
    shutdown: shutdown.signal,
    log,
  };

  const sandbox: Cafe24Sandbox = {
    url: "",
    baseUrlTemplate: "",
    clock,
    addMall: (mallId, mallOptions) => void state.addMall(mallId, mallOptions),
    issueTokens: (mallId, issueOptions) => state.issueTokens(mallId, issueOptions),
    liveRefreshToken: (mallId) => state.malls.get(mallId)?.live?.refreshToken,
    revokeRefreshToken(mallId) {
      const mall = state.malls.get(mallId);
      if (mall) state.revokeLive(mall);
    },
    setFaults: (scope, plan) => faults.setPlan(scope, plan),
    queueFaults: (scope: string, kinds: (FaultKind | FaultSpec)[]) => faults.enqueue(scope, kinds),
    clearFaults: () => faults.clear(),
    counters: () => structuredClone(state.counters),
    refreshLog: () => state.refreshLog.map((entry) => ({ ...entry })),
    resetCounters: () => state.resetCounters(),
    close: () => Promise.resolve(),
  };

  async function route(request: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const url = new URL(request.url);
    const [first = "", ...rest] = url.pathname.split("/").slice(1);
    if (first === "__sandbox") {
      const peer = (info.remoteAddr as Deno.NetAddr).hostname;
      if (!isLoopback(peer)) return jsonResponse(403, { error: "control API is loopback-only" });
      return await handleControl(sandbox, (id) => state.malls.has(id), request, rest);
    }
    const mall = state.malls.get(first);
    const endpoint = rest.join("/");
    if (!mall) {
      state.counters.requests.other++;
      return apiError(404, "Not Found");
    }
    switch (endpoint) {
      case "api/v2/oauth/authorize":
        return handleAuthorize(ctx, mall, request);
      case "api/v2/oauth/token":
        return await handleToken(ctx, mall, request);
      case "api/v2/oauth/revoke":
        return await handleRevoke(ctx, mall, request);
      case "api/v2/admin/shops":
        return await handleShops(ctx, mall, request);
      default:
        state.counters.requests.other++;
        return apiError(404, "Not Found");
    }
  }

  const handler = async (request: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    let response: Response;
    try {
      response = await route(request, info);
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
  const server = options.tls
    ? Deno.serve({ ...serveOptions, cert: options.tls.cert, key: options.tls.key }, handler)
    : Deno.serve(serveOptions, handler);

  const addr = server.addr as Deno.NetAddr;
  sandbox.url = `${options.tls ? "https" : "http"}://${urlHost(addr.hostname)}:${addr.port}`;
  sandbox.baseUrlTemplate = `${sandbox.url}/{mall_id}`;
  let closing: Promise<void> | undefined;
  sandbox.close = () => {
    // Aborting first releases hung and delayed handlers, which shutdown would otherwise await.
    closing ??= (async () => {
      shutdown.abort();
      await server.finished;
    })();
    return closing;
  };
  return Promise.resolve(sandbox);
}
