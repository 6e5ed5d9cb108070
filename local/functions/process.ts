/**
 * local/functions/serve.ts as a child of the local stack: every function under
 * supabase/functions over HTTP, with the environment the stack computed. Its output (JSON log
 * lines, which carry no secrets) goes to a log file and, line by line, to `onLine`.
 */
import { PROJECT_ROOT } from "../stack/stack_info.ts";

export interface FunctionsProcess {
  pid: number;
  /** e.g. http://127.0.0.1:40123 */
  origin: string;
  /** The function names it serves. */
  names: string[];
  exited: Promise<Deno.CommandStatus>;
  /** SIGTERM, then SIGKILL after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once, as a crash would; resolves when the process and its output are done. */
  kill(): Promise<void>;
}

export async function spawnFunctions(
  env: Record<string, string>,
  onLine: (line: string, stream: "stdout" | "stderr") => void,
  startTimeoutMs = 60_000,
): Promise<FunctionsProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "local/functions/serve.ts", "--port", "0"],
    cwd: PROJECT_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  let announce: (value: { origin: string; names: string[] }) => void;
  const listening = new Promise<{ origin: string; names: string[] }>((resolve) =>
    announce = resolve
  );
  const early: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr") => {
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        if (early.length < 200) early.push(line);
        if (line.includes('"functions_listening"')) {
          try {
            const event = JSON.parse(line) as { url: string; functions: string[] };
            announce({ origin: new URL(event.url).origin, names: event.functions });
          } catch {
            // not the announcement after all
          }
        }
        onLine(line, name);
      }
    }
    if (buffered !== "") onLine(buffered, name);
  };
  const pumps = Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
  const exited = child.status;

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the functions did not start within ${startTimeoutMs / 1000} s`)),
      startTimeoutMs,
    );
  });
  const died = exited.then((status) => {
    throw new Error(
      `the functions process exited during start-up (code ${status.code}):\n${early.join("\n")}`,
    );
  });
  let ready: { origin: string; names: string[] };
  try {
    ready = await Promise.race([listening, timeout, died]);
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await exited;
    await pumps;
    throw error;
  } finally {
    clearTimeout(timer);
    died.catch(() => {});
  }

  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid,
    origin: ready.origin,
    names: ready.names,
    exited,
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await exited;
      await pumps;
    },
    stop(graceMs = 5_000) {
      stopping ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        const force = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }, graceMs);
        await exited;
        clearTimeout(force);
        await pumps;
      })();
      return stopping;
    },
  };
}
