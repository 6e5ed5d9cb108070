/**
 * Serves every Edge Function under supabase/functions at /functions/v1/<name>, the paths
 * `supabase functions serve` uses, from one Deno process. For machines without Docker (tests,
 * `npm start`); the functions read their environment from this process.
 *
 *   deno run --allow-all local/functions/serve.ts [--port 54321] [--hostname 127.0.0.1]
 *
 * It answers only requests addressed to it as 127.0.0.1:<port> or localhost:<port> (421
 * otherwise: see local_access.ts); the local gateway and the tests call it so.
 */

import { closeDatabases } from "../../supabase/functions/_shared/platform/db.ts";
import { allowedHosts, hostHeader, misdirected } from "../local_access.ts";

const FUNCTIONS_DIR = new URL("../../supabase/functions/", import.meta.url);

type Handler = { fetch(request: Request): Response | Promise<Response> };

/** Imports each `supabase/functions/<name>/index.ts` (folders starting with `_` are not functions). */
export async function loadFunctions(): Promise<Map<string, Handler>> {
  const handlers = new Map<string, Handler>();
  for await (const entry of Deno.readDir(FUNCTIONS_DIR)) {
    if (!entry.isDirectory || entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
    const index = new URL(`${entry.name}/index.ts`, FUNCTIONS_DIR);
    try {
      await Deno.stat(index);
    } catch {
      continue;
    }
    const module = await import(index.href);
    handlers.set(entry.name, module.default as Handler);
  }
  return handlers;
}

export function functionsRouter(handlers: Map<string, Handler>) {
  return async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const match = /^\/functions\/v1\/([a-z0-9-]+)(\/.*)?$/.exec(url.pathname);
    const handler = match ? handlers.get(match[1]!) : undefined;
    if (handler === undefined) {
      return Response.json({ error: "NOT_FOUND" }, { status: 404 });
    }
    return await handler.fetch(detached(request));
  };
}

/**
 * The request as a function gets it, without Deno.serve's own signal. Deno.serve's
 * request.signal still aborts when a response succeeds (legacy behaviour), and the first read of
 * it prints a 360-character warning; request.clone() reads it (cafe24-refresh clones a signed
 * call's body to verify it). The functions never use the signal: a copy without it is the same
 * request to them, and nothing is printed.
 */
export function detached(request: Request): Request {
  return new Request(request.url, {
    method: request.method,
    headers: request.headers,
    body: request.body,
    redirect: request.redirect,
  });
}

if (import.meta.main) {
  const args = Deno.args;
  const flag = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const port = Number(flag("port") ?? Deno.env.get("FUNCTIONS_PORT") ?? 54321);
  const hostname = flag("hostname") ?? "127.0.0.1";
  const handlers = await loadFunctions();
  const router = functionsRouter(handlers);
  let hosts: ReadonlySet<string> = new Set();
  const server = Deno.serve(
    {
      port,
      hostname,
      onListen: ({ port }) => {
        console.log(
          JSON.stringify({
            level: "info",
            event: "functions_listening",
            url: `http://${hostname}:${port}/functions/v1/`,
            functions: [...handlers.keys()],
          }),
        );
      },
    },
    (request) => misdirected(request, hosts) ?? router(request),
  );
  const listening = (server.addr as Deno.NetAddr).port;
  hosts = allowedHosts(listening, [hostHeader(hostname, listening)]);
  const stop = () => server.shutdown();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  // Pooled database connections would keep the process alive after the server has stopped.
  await closeDatabases();
  Deno.exit(0);
}
