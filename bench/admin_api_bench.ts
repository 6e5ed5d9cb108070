/**
 * The Admin API benchmark: cafe24Fetch (the code cafe24-api runs) against the Cafe24 sandbox's
 * per-mall bucket (40 calls, draining 2 a second) for 1, 10 and 100 malls, 100 calls in flight at
 * all times (100, 10 and 1 callers per mall, each calling again as soon as it is answered).
 * Reports per size: sustained calls a second per mall after the burst (the window from 25 s to
 * the end; the target is the drain, 2.0), statements and PostgreSQL CPU per call, and the most
 * database connections the functions' role held.
 *
 *   npm run bench:admin-api [-- --seconds 40]
 *
 * Results: bench/ADMIN_API.md.
 */
import { parseArgs } from "node:util";
import { startCafe24Sandbox } from "../local/cafe24_sandbox.ts";
import { sandboxFunctionEnv } from "../local/functions/server.ts";
import { type AdminApiDeps, cafe24Fetch } from "../supabase/functions/_shared/api/admin_api.ts";
import {
  ADMIN_API_CONFIG_REQUIRED,
  adminApiSettings,
  FUNCTION_SETTINGS,
  loadConfig,
} from "../supabase/functions/_shared/platform/config.ts";
import { closeDatabases, database } from "../supabase/functions/_shared/platform/db.ts";
import { postgresCpuMs, resetStatementCounts, statementCounts } from "./measure.ts";
import {
  BENCH_APP,
  CLIENT_ID,
  CLIENT_SECRET,
  FUNCTIONS_ROLE,
  startBenchDatabase,
} from "./setup.ts";

const IN_FLIGHT = 100;
const SETTLED_AFTER_S = 25;

const { values } = parseArgs({ args: Deno.args, options: { seconds: { type: "string" } } });
const seconds = Number(values.seconds ?? 40);
if (!Number.isFinite(seconds) || seconds <= SETTLED_AFTER_S + 5) {
  throw new RangeError(`--seconds must be more than ${SETTLED_AFTER_S + 5}`);
}

const db = await startBenchDatabase();
const sandbox = await startCafe24Sandbox({
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  quiet: true,
  seed: 1,
});
try {
  const functionsUrl = new URL(db.dbUrl);
  functionsUrl.username = FUNCTIONS_ROLE;
  const env = sandboxFunctionEnv(functionsUrl.href, sandbox, BENCH_APP);
  const settings = FUNCTION_SETTINGS["cafe24-api"];
  const loaded = loadConfig(env, ADMIN_API_CONFIG_REQUIRED, settings.uses);
  if (!loaded.ok) throw new Error(`configuration: ${loaded.names.join(", ")}`);
  const deps: AdminApiDeps = {
    sql: database(loaded.config.SUPABASE_DB_URL),
    settings: adminApiSettings(loaded.config),
  };
  const rows: string[] = [];
  for (const malls of [1, 10, 100]) {
    const ids = Array.from({ length: malls }, (_, i) => `adm${malls}x${i}`);
    for (const mallId of ids) {
      sandbox.addMall(mallId, { scopes: ["mall.read_product"] });
      const issued = sandbox.issueTokens(mallId);
      await db.sql`
        insert into public.auth_settings (user_id, providers)
        values (gen_random_uuid(), ${
        db.sql.json({
          cafe24: {
            mall_id: mallId,
            access_token: issued.accessToken,
            refresh_token: issued.refreshToken,
            expires_at: new Date(Date.now() + 2 * 3600_000).toISOString(),
            shop_no: 1,
          },
        })
      })`;
    }
    await resetStatementCounts(db);
    const cpuBefore = await postgresCpuMs(db);
    const started = Date.now();
    const end = started + seconds * 1000;
    const settledFrom = started + SETTLED_AFTER_S * 1000;
    const settled = new Map<string, number>();
    let calls = 0;
    let failures = 0;
    let maxConnections = 0;
    const sampler = (async () => {
      while (Date.now() < end) {
        const [row] = await db.sql<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity where usename = ${FUNCTIONS_ROLE}`;
        maxConnections = Math.max(maxConnections, row!.n);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    const perMall = IN_FLIGHT / malls;
    await Promise.all(ids.flatMap((mallId) =>
      Array.from({ length: perMall }, async () => {
        while (Date.now() < end) {
          const response = await cafe24Fetch(mallId, "/api/v2/admin/products", {
            deadlineMs: Math.max(0, Math.min(60_000, end - Date.now())),
          }, deps);
          await response.body?.cancel();
          const now = Date.now();
          if (response.status !== 200) {
            failures++;
            if (response.headers.get("x-cafe24-connector") === "rate_limited") continue;
          }
          calls++;
          if (now >= settledFrom && now < end && response.status === 200) {
            settled.set(mallId, (settled.get(mallId) ?? 0) + 1);
          }
        }
      })
    ));
    await sampler;
    const cpu = await postgresCpuMs(db) - cpuBefore;
    const statements = Object.values(await statementCounts(db)).reduce((a, s) => a + s.calls, 0);
    const windowS = (end - settledFrom) / 1000;
    const rates = ids.map((id) => (settled.get(id) ?? 0) / windowS);
    const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
    const sandbox429 = sandbox.counters().rateLimited;
    rows.push(
      `| ${malls} | ${perMall} | ${calls} | ${mean.toFixed(2)} (${Math.min(...rates).toFixed(2)}–${
        Math.max(...rates).toFixed(2)
      }) | ${(statements / calls).toFixed(2)} | ${
        (cpu / calls).toFixed(2)
      } | ${maxConnections} | ${sandbox429} | ${failures} |`,
    );
    console.error(rows.at(-1));
  }
  console.log(
    "| malls | callers per mall | calls | calls/s per mall after the burst (min–max) | statements per call | PostgreSQL CPU ms per call | most DB connections | sandbox 429s (cumulative) | non-200 answers |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const row of rows) console.log(row);
} finally {
  await closeDatabases();
  await sandbox.close();
  await db.stop();
}
