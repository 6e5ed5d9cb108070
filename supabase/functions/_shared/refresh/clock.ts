/**
 * The run's view of time: the wall clock, waiting, and the CPU time the process has used. Unit
 * tests pass their own, so a run's budgets and retries are tested without waiting.
 */
export interface RunClock {
  /** Milliseconds on the wall clock. */
  now(): number;
  sleep(ms: number): Promise<void>;
  /** CPU milliseconds this process has used so far; null where the runtime does not say. */
  cpuMs(): number | null;
}

type CpuUsage = () => { user: number; system: number };

/**
 * Deno.cpuUsage() (microseconds of user and system time for the whole process; present in Deno
 * 2, not in its type declarations) where the runtime has it. A process serving several runs at
 * once counts all of them, so a run may stop a little early, never late. Supabase's Edge Runtime
 * may not offer it: then the run has no CPU reading, and its wall-clock budget, its cap and the
 * runtime's beforeunload notice still stop it.
 */
export function processCpuMs(): number | null {
  const cpuUsage = (globalThis.Deno as { cpuUsage?: CpuUsage } | undefined)?.cpuUsage;
  if (typeof cpuUsage !== "function") return null;
  try {
    const { user, system } = cpuUsage();
    return (user + system) / 1000;
  } catch {
    return null;
  }
}

export const systemClock: RunClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  cpuMs: processCpuMs,
};
