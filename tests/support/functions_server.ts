/**
 * Runs scripts/serve_functions.ts as a child process: the functions over real HTTP with their
 * own environment, killable like a real worker. Everything it prints is kept in `output` so tests
 * can assert what the logs do and do not contain.
 */

const PROJECT_ROOT = new URL("../../", import.meta.url);

export interface FunctionsServer {
  /** e.g. http://127.0.0.1:40123/functions/v1 */
  url: string;
  pid: number;
  output: string[];
  /** Ends the process (SIGTERM, then SIGKILL after 5 s); idempotent. */
  stop(): Promise<void>;
  /** SIGKILL at once, as a crash would. */
  kill(): Promise<void>;
}

export async function startFunctionsServer(
  env: Record<string, string>,
  options: { port?: number } = {},
): Promise<FunctionsServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "scripts/serve_functions.ts",
      "--port",
      String(options.port ?? 0),
    ],
    cwd: PROJECT_ROOT,
    // The parent's environment carries the registry certificate settings deno needs.
    env: { ...Deno.env.toObject(), ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  const output: string[] = [];
  let resolveUrl: (url: string) => void;
  const listening = new Promise<string>((resolve) => (resolveUrl = resolve));
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        output.push(line);
        if (line.includes('"functions_listening"')) {
          resolveUrl(String(JSON.parse(line).url).replace(/\/$/, ""));
        }
      }
    }
    if (buffered !== "") output.push(buffered);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = child.status;

  let started = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exitedEarly = exited.then((status) => {
    if (!started) {
      throw new Error(`functions server exited early (${status.code}):\n${output.join("\n")}`);
    }
    return "";
  });
  const timedOut = new Promise<string>((_, reject) => {
    timer = setTimeout(() => reject(new Error("functions server did not start in 60 s")), 60_000);
  });
  let url: string;
  try {
    url = await Promise.race([listening, exitedEarly, timedOut]);
    started = true;
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await exited;
    await pumps;
    throw error;
  } finally {
    clearTimeout(timer);
    exitedEarly.catch(() => {});
    timedOut.catch(() => {});
  }

  let stopped = false;
  const finish = async (signal: Deno.Signal) => {
    if (stopped) {
      await exited;
      return;
    }
    stopped = true;
    try {
      child.kill(signal);
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 5_000);
    await exited;
    clearTimeout(timer);
    await pumps;
  };
  return {
    url,
    pid: child.pid,
    output,
    stop: () => finish("SIGTERM"),
    kill: () => finish("SIGKILL"),
  };
}
