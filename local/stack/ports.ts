/**
 * The local stack's ports: whether one is free, and what to type when it is not. A port counts
 * as free when a listener can be opened on it right now, which is what PostgreSQL and the
 * servers do next: a connection of an earlier run that is still in TIME-WAIT does not hold it
 * (listeners here reuse addresses, as PostgreSQL does).
 */

export const HOST = "127.0.0.1";

export type PortName = "db" | "functions" | "sandbox" | "settings";

/** The flag of each port; `npm start` passes flags on only after `--`. */
export function portFlag(name: PortName): string {
  return `--${name}-port`;
}

export function portFree(port: number, hostname = HOST): boolean {
  if (port === 0) return true;
  try {
    Deno.listen({ hostname, port }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    throw error;
  }
}

/** The first free port after `port` (skipping `taken`), or null within 100 tries. */
export function nextFreePort(port: number, taken: number[] = []): number | null {
  for (let candidate = port + 1; candidate <= Math.min(port + 100, 65535); candidate++) {
    if (!taken.includes(candidate) && portFree(candidate)) return candidate;
  }
  return null;
}

/** What to say when ports are taken: each one, and the whole command that avoids them. */
export function busyPortsMessage(
  busy: { name: PortName; port: number; suggestion: number | null }[],
): string {
  const flags = busy.map(({ name, suggestion }) => `${portFlag(name)} ${suggestion ?? "N"}`);
  return [
    ...busy.map(({ name, port }) => `port ${port} (${name}) is in use.`),
    `Start on other ports with:\n\n  npm start -- ${flags.join(" ")}\n`,
    "(A `supabase start`, another npm start or an earlier one still stopping may hold it; " +
    "`ss -ltnp` shows who.)",
  ].join("\n");
}
