/**
 * The local stack's API gateway, in the place of the Kong that `supabase start` puts at
 * http://127.0.0.1:54321: `/functions/v1/*` goes to the functions process, and
 * `/auth/v1/.well-known/jwks.json` answers with the local Auth stand-in's keys, so that one
 * SUPABASE_URL serves both, as on a Supabase project. Nothing else of Auth exists here.
 *
 * It answers only requests addressed to it as 127.0.0.1:<port> or localhost:<port> (421
 * otherwise: see local_access.ts), plus the `extraHosts` a user configured (a tunnel's name for
 * the real Cafe24's redirect).
 */
import { JWKS_PATH } from "../supabase/auth_stand_in.ts";
import { allowedHosts, misdirected } from "../local_access.ts";

export interface Gateway {
  url: string;
  port: number;
  close(): Promise<void>;
}

// Hop-by-hop headers, and the encoding headers fetch has already undone.
const DROPPED_RESPONSE_HEADERS = [
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-encoding",
  "content-length",
];

export function startGateway(options: {
  hostname: string;
  port: number;
  /** Where the functions process listens (known only after the gateway is up). */
  functionsOrigin: () => string;
  jwks: () => unknown;
  /** `Host` values answered besides the loopback names, e.g. `abc.tunnel.example`. */
  extraHosts?: string[];
}): Promise<Gateway> {
  const abort = new AbortController();
  let hosts: ReadonlySet<string> = new Set();
  const handler = async (request: Request): Promise<Response> => {
    const refused = misdirected(request, hosts);
    if (refused !== null) return refused;
    const url = new URL(request.url);
    if (url.pathname.startsWith("/functions/v1/")) {
      const target = new URL(url.pathname + url.search, options.functionsOrigin());
      const headers = new Headers(request.headers);
      headers.set("accept-encoding", "identity");
      headers.set("x-forwarded-host", url.host);
      headers.set("x-forwarded-proto", url.protocol.replace(":", ""));
      const hasBody = request.method !== "GET" && request.method !== "HEAD";
      let upstream: Response;
      try {
        upstream = await fetch(target, {
          method: request.method,
          headers,
          body: hasBody ? await request.arrayBuffer() : null,
          redirect: "manual",
        });
      } catch {
        return Response.json({ error: "FUNCTIONS_UNAVAILABLE" }, { status: 502 });
      }
      const responseHeaders = new Headers(upstream.headers);
      for (const name of DROPPED_RESPONSE_HEADERS) responseHeaders.delete(name);
      return new Response(upstream.body, {
        status: upstream.status,
        statusText: upstream.statusText,
        headers: responseHeaders,
      });
    }
    if (url.pathname === JWKS_PATH && request.method === "GET") {
      return Response.json(options.jwks(), { headers: { "cache-control": "max-age=600" } });
    }
    return Response.json({
      error: "NOT_FOUND",
      detail: "only /functions/v1/* and the auth JWKS are served locally",
    }, {
      status: 404,
    });
  };
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname: options.hostname,
        port: options.port,
        signal: abort.signal,
        onListen: () => {},
      }, handler);
      const addr = server.addr as Deno.NetAddr;
      const url = `http://${options.hostname}:${addr.port}`;
      hosts = allowedHosts(addr.port, [new URL(url).host, ...(options.extraHosts ?? [])]);
      resolve({
        url,
        port: addr.port,
        async close() {
          abort.abort();
          await server.finished;
        },
      });
    } catch (error) {
      reject(error);
    }
  });
}
