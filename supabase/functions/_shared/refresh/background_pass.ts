import type postgres from "postgres";
import { createConnectStore } from "../connect/store.ts";
import { revokeExpiredPendingConnections } from "../connect/sweep.ts";
import type { RefreshSettings } from "../platform/config.ts";
import { reportFailure } from "../platform/failure.ts";
import { resealInBackground } from "../tokens/reseal.ts";

/**
 * What a scheduled invocation does after its run: revokes the pairs of connection attempts nobody
 * completed in time, and reseals a bounded number of rows the schedule will not rewrite soon
 * (legacy plaintext, rows under an earlier key) with the active key. Both are housekeeping: a
 * failure is reported, never thrown. What they did is added to the run's stored summary as
 * `background` (null for a part that could not run).
 */
export async function runBackgroundPass(
  sql: postgres.Sql,
  settings: Pick<RefreshSettings, "app" | "tokenSeal">,
  runId: string,
): Promise<void> {
  const pending = await revokeExpiredPendingConnections({
    store: createConnectStore(sql, settings.tokenSeal),
    settings,
  }).catch((error) => {
    reportFailure("cafe24_pending_sweep_failed", error);
    return null;
  });
  const resealed = await resealInBackground(sql, settings.tokenSeal);
  const pass = { pending_swept: pending, resealed: resealed === null ? null : { ...resealed } };
  await sql`select cafe24_private.record_background_pass(${runId}::uuid, ${sql.json(pass)}::jsonb)`
    .catch((error) => {
      reportFailure("cafe24_background_pass_not_recorded", error, {
        sqlFunction: "cafe24_private.record_background_pass",
      });
    });
}
