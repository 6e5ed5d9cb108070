/**
 * The local stack's API gateway, in the place of the Kong that `supabase start` puts at
 * http://127.0.0.1:54321: `/functions/v1/*` goes to the functions process, and
 * `/auth/v1/.well-known/jwks.json` answers with the local Auth stand-in's keys, so that one
 * SUPABASE_URL serves both, as on a Supabase project. Nothing else of Auth exists here.
 */
import { JWKS_PATH } from "../supabase/auth_stand_in.ts";

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
}): Promise<Gateway> {
  const abort = new AbortController();
  const handler = async (request: Request): Promise<Response> => {
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
      resolve({
        url: `http://${options.hostname}:${addr.port}`,
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
