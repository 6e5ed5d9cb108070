/**
 * Waiting in tests: always for an event (a row, a log line, a request the Cafe24 sandbox saw),
 * never for a stretch of time. A fixed sleep is too short on a loaded machine and too long on an
 * idle one, and a test that sleeps past the moment it meant to catch passes without testing
 * anything. The probe is asked again and again until it reports what it waits for; the deadline
 * only ends a wait that would otherwise hang, so it is generous.
 *
 *   const run = await waitFor("the async run to finish", async () => {
 *     const [row] = await db.sql`select summary from … where status = 'finished'`;
 *     return row?.summary;
 *   });
 */

/** Long enough for a loaded 2-core machine; a wait that takes this long is a hang. */
export const WAIT_DEADLINE_MS = 60_000;
/** How often a probe is asked; cheap probes only (a query, a look at a log). */
const POLL_MS = 20;

export interface WaitOptions {
  /** Bounds a hang; default WAIT_DEADLINE_MS. */
  timeoutMs?: number;
  /** Appended to the timeout error, e.g. the output of the process that was waited on. */
  detail?: () => string;
}

/** What a probe returns while the event has not happened yet. */
type NotYet = null | undefined | false;

/**
 * Asks `probe` until it returns something other than null, undefined or false, and returns
 * that. A probe that throws ends the wait with its error. `what` names the event in the error
 * when the deadline passes.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | NotYet | Promise<T | NotYet>,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? WAIT_DEADLINE_MS;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined && value !== false) return value as T;
    if (Date.now() > deadline) {
      const detail = options.detail?.();
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}` +
          (detail === undefined || detail === "" ? "" : `\n${detail}`),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
