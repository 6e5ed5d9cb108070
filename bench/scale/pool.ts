/**
 * How many database connections one invocation needs: the same refreshes through one function
 * process with pools of 1, 2, 3 … connections and CAFE24_REFRESH_CONCURRENCY token requests in
 * flight (8, the default). A run makes one database call per refresh (store the pair, claim the
 * next), a few milliseconds against a token request's tens, so a small pool should not slow it.
 */
import type { Cafe24Sandbox } from "../../local/cafe24_sandbox.ts";
import type { TestDatabase } from "../../local/postgres/database.ts";
import { startFunctionsServer } from "../../local/functions/server.ts";
import { cpuMs, median } from "../measure.ts";
import { CRON_SECRET } from "../setup.ts";
import { mallId } from "./fleet.ts";

export interface PoolMeasurement {
  poolSize: number;
  refreshed: number;
  wallMs: number;
  /** N·L/C: the wall time if database calls cost nothing. */
  idealMs: number;
  cpuMsPerRefresh: number;
  /** Wall time of an invocation of `cap` refreshes (the schedule's shape), median of 4. */
  capInvocationMs: number;
}

const CONCURRENCY = 8;
const CAP_INVOCATIONS = 4;

async function seedDue(db: TestDatabase, sandbox: Cafe24Sandbox, prefix: string, n: number) {
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) tokens.push(sandbox.issueTokens(mallId(prefix, i)).refreshToken);
  // No expires_at: due at once.
  await db.sql`
    insert into public.auth_settings (user_id, providers)
    select gen_random_uuid(), jsonb_build_object('cafe24', jsonb_build_object(
      'mall_id', ${prefix} || lpad((i - 1)::text, 6, '0'),
      'refresh_token', (${tokens}::text[])[i], 'access_token', md5(i::text)))
    from generate_series(1, ${n}::int) as i`;
}

async function call(origin: string, body: Record<string, unknown>) {
  const response = await fetch(`${origin}/functions/v1/cafe24-refresh`, {
    method: "POST",
    headers: { "x-cron-secret": CRON_SECRET, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`cafe24-refresh answered ${response.status}: ${text}`);
  }
  return JSON.parse(text) as { refreshed: number };
}

export async function measurePools(
  db: TestDatabase,
  sandbox: Cafe24Sandbox,
  env: Record<string, string>,
  poolSizes: number[],
  refreshes: number,
  cap: number,
  latencyMs: number,
): Promise<PoolMeasurement[]> {
  const results: PoolMeasurement[] = [];
  for (const poolSize of poolSizes) {
    const prefix = `pool${poolSize}x`;
    const functions = await startFunctionsServer({
      ...env,
      CAFE24_REFRESH_POOL_SIZE: String(poolSize),
      CAFE24_REFRESH_CONCURRENCY: String(CONCURRENCY),
      // One long run: neither budget may end it.
      CAFE24_RUN_CPU_BUDGET_MS: "600000",
      CAFE24_RUN_BUDGET_MS: "600000",
      CAFE24_MAX_CONNECTIONS_PER_RUN: String(Math.max(refreshes, cap)),
    });
    const origin = new URL(functions.url).origin;
    try {
      for (let i = 0; i < 3; i++) await call(origin, { trigger: "manual", mall_id: "poolwarmup" });
      await seedDue(db, sandbox, prefix, refreshes + cap * CAP_INVOCATIONS);
      const cpuBefore = await cpuMs(functions.pid);
      const t0 = performance.now();
      const summary = await call(origin, { trigger: "manual", max_connections: refreshes });
      const wallMs = performance.now() - t0;
      const cpu = await cpuMs(functions.pid) - cpuBefore;
      const capWalls: number[] = [];
      for (let i = 0; i < CAP_INVOCATIONS; i++) {
        const start = performance.now();
        await call(origin, { trigger: "manual", max_connections: cap });
        capWalls.push(performance.now() - start);
      }
      results.push({
        poolSize,
        refreshed: summary.refreshed,
        wallMs,
        idealMs: (summary.refreshed * latencyMs) / CONCURRENCY,
        cpuMsPerRefresh: cpu / Math.max(1, summary.refreshed),
        capInvocationMs: median(capWalls),
      });
      console.log(
        `  pool ${poolSize}: ${summary.refreshed} refreshed in ${(wallMs / 1000).toFixed(2)} s ` +
          `(${(summary.refreshed / (wallMs / 1000)).toFixed(0)}/s), an invocation of ${cap}: ` +
          `${median(capWalls).toFixed(0)} ms`,
      );
    } finally {
      await functions.stop();
      await db.sql`
        delete from public.auth_settings where providers -> 'cafe24' ->> 'mall_id' like ${
        prefix + "%"
      }`;
    }
  }
  return results;
}
