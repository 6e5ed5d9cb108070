/**
 * CPU accounting for runs that share a process. The runtime reports the CPU of the whole process
 * (Deno.cpuUsage), and one process may serve several invocations at once: `supabase functions
 * serve` does, and a hosted isolate "can serve multiple requests". Counting the whole process
 * against each run made every one of 15 concurrent runs stop after a fraction of its work.
 *
 * So the process's CPU is split: between two readings, what the process spent is shared evenly
 * by the runs open in that interval, and each run's own budget counts its share. A second budget
 * bounds them together: the process CPU since the first of the open runs began (the busy
 * period). Hosted, an isolate's CPU accumulates over its life; past 1 s (soft) it takes no new
 * requests and at 2 s (hard) it is killed. An isolate that took a request has spent under 1 s,
 * and its runs together stop taking on connections after PROCESS_CPU_BUDGET_MS more, so
 * concurrent runs cannot push it past the hard limit.
 */

/** CPU the open runs of one process may spend together before they all stop taking on work. */
export const PROCESS_CPU_BUDGET_MS = 800;

/**
 * The process budget for runs whose own budget is `runCpuBudgetMs`: PROCESS_CPU_BUDGET_MS, or the
 * run's own budget when an operator raised it above that (CAFE24_RUN_CPU_BUDGET_MS: they have said
 * the runtime allows one invocation that much).
 */
export function processCpuBudgetMs(runCpuBudgetMs: number): number {
  return Math.max(PROCESS_CPU_BUDGET_MS, runCpuBudgetMs);
}

export interface CpuAccount {
  /** This run's share of the process's CPU since it opened, ms; null where the runtime does not say. */
  ownMs(): number | null;
  /** The process's CPU since the first of the runs open now began, ms; null likewise. */
  busyMs(): number | null;
  /** The run is over: later CPU is shared by the others. */
  close(): void;
}

export interface CpuLedger {
  open(): CpuAccount;
  /** Runs open now. */
  readonly openRuns: number;
}

/** A ledger over `cpuMs` (the process's CPU so far, ms, or null when the runtime does not say). */
export function createCpuLedger(cpuMs: () => number | null): CpuLedger {
  const shares = new Map<object, number>();
  let lastReading: number | null = null;
  let busySince: number | null = null;

  /** Shares what the process spent since the last reading among the runs open in between. */
  const read = (): number | null => {
    const now = cpuMs();
    if (now === null) return null;
    if (lastReading !== null && shares.size > 0) {
      const each = Math.max(0, now - lastReading) / shares.size;
      for (const [run, used] of shares) shares.set(run, used + each);
    }
    lastReading = now;
    return now;
  };

  return {
    get openRuns() {
      return shares.size;
    },
    open() {
      const now = read();
      if (shares.size === 0) busySince = now;
      const run = {};
      shares.set(run, 0);
      return {
        ownMs() {
          if (read() === null) return null;
          return shares.get(run) ?? null;
        },
        busyMs() {
          const now = read();
          return now === null || busySince === null ? null : now - busySince;
        },
        close() {
          if (!shares.has(run)) return;
          read();
          shares.delete(run);
          if (shares.size === 0) busySince = null;
        },
      };
    },
  };
}

const ledgers = new WeakMap<() => number | null, CpuLedger>();

/**
 * The one ledger of a CPU reading function: every run of the process reads processCpuMs, so they
 * all share one; a test's clock brings its own function, and its own ledger.
 */
export function ledgerFor(cpuMs: () => number | null): CpuLedger {
  let ledger = ledgers.get(cpuMs);
  if (ledger === undefined) {
    ledger = createCpuLedger(cpuMs);
    ledgers.set(cpuMs, ledger);
  }
  return ledger;
}
