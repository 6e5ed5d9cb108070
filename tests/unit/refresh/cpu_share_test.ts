/**
 * The CPU ledger of runs that share a process: what the process spends between two readings is
 * shared evenly by the runs open in between, and the busy period lasts while any run is open.
 */
import assert from "node:assert/strict";
import {
  createCpuLedger,
  PROCESS_CPU_BUDGET_MS,
  processCpuBudgetMs,
} from "../../../supabase/functions/_shared/refresh/cpu_share.ts";

Deno.test("the process's CPU is shared by the runs open while it was spent", () => {
  let cpu = 1_000;
  const ledger = createCpuLedger(() => cpu);
  const a = ledger.open();
  cpu += 30;
  assert.equal(a.ownMs(), 30, "alone, a run counts all of it");
  const b = ledger.open();
  cpu += 40;
  assert.equal(a.ownMs(), 50);
  assert.equal(b.ownMs(), 20);
  assert.equal(b.busyMs(), 70, "the busy period began with the first run");
  a.close();
  cpu += 10;
  assert.equal(b.ownMs(), 30, "a closed run takes no more share");
  assert.equal(ledger.openRuns, 1);
  b.close();
  assert.equal(ledger.openRuns, 0);

  cpu += 500;
  const c = ledger.open();
  cpu += 5;
  assert.equal(c.busyMs(), 5, "idle time between busy periods is nobody's");
  assert.equal(c.ownMs(), 5);
  c.close();
  c.close();
  assert.equal(ledger.openRuns, 0, "closing twice is harmless");
});

Deno.test("where the runtime does not report CPU, neither figure is known", () => {
  const ledger = createCpuLedger(() => null);
  const run = ledger.open();
  assert.equal(run.ownMs(), null);
  assert.equal(run.busyMs(), null);
  run.close();
});

Deno.test("the process budget is never below a run's own budget", () => {
  assert.equal(processCpuBudgetMs(150), PROCESS_CPU_BUDGET_MS);
  assert.equal(processCpuBudgetMs(5_000), 5_000, "an operator who raised the run budget");
});
