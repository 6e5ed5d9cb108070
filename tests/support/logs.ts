import type { FunctionsServer } from "../../local/functions/server.ts";

/**
 * Log lines in tests: the functions' structured lines (one JSON object per line) captured from
 * this process's console, or read from a functions server's output.
 */

/**
 * Runs `fn` with console.log, console.warn and console.error captured instead of printed; `lines`
 * holds each line's JSON as it is written.
 */
export async function withCapturedLogs<T>(
  fn: (lines: Record<string, unknown>[]) => T | Promise<T>,
): Promise<T> {
  const lines: Record<string, unknown>[] = [];
  const saved = [console.log, console.warn, console.error] as const;
  const keep = (line: string) => lines.push(JSON.parse(line));
  console.log = console.warn = console.error = keep;
  try {
    return await fn(lines);
  } finally {
    [console.log, console.warn, console.error] = saved;
  }
}

/** The JSON log lines of a functions process with this `event`. */
export function logLines(server: FunctionsServer, event: string): Record<string, unknown>[] {
  return server.output
    .filter((line) => line.includes(`"${event}"`))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.event === event);
}
