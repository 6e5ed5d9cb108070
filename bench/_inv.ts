import { parseOptions } from "./options.ts";
import {
  BENCH_APP,
  CRON_SECRET,
  FUNCTIONS_ROLE,
  makeAllDue,
  seedConnections,
  startBenchSandbox,
} from "./setup.ts";
import { sandboxFunctionEnv, startFunctionsServer } from "../local/functions/server.ts";
import { startTestDatabase } from "../local/postgres/database.ts";
import { postgresPartsReader } from "./postgres_parts.ts";
const opts = parseOptions([]);
const db = await startTestDatabase({
  preloadLibraries: ["pg_stat_statements"],
  settings: { "pg_stat_statements.track": "all" },
});
await db.sql`create extension if not exists pg_stat_statements`;
await db.sql.unsafe(`create role ${FUNCTIONS_ROLE} login superuser password '${db.password}'`);
await db.sql`update cron.job set active = false`.catch(() => {});
const sandbox = await startBenchSandbox(opts, null);
await seedConnections(db, sandbox, 5000);
const env = {
  ...sandboxFunctionEnv(
    `postgresql://${FUNCTIONS_ROLE}:${db.password}@127.0.0.1:${db.port}/postgres`,
    sandbox,
    BENCH_APP,
  ),
  CAFE24_MAX_CONNECTIONS_PER_RUN: "40",
};
const parts = postgresPartsReader(db);
for (const fresh of [false, true]) {
  let functions = await startFunctionsServer(env);
  const call = async () => {
    const r = await fetch(`${functions.url}/cafe24-refresh`, {
      method: "POST",
      headers: { "x-cron-secret": CRON_SECRET, "content-type": "application/json" },
      body: '{"trigger":"manual"}',
    });
    return await r.json();
  };
  await call();
  await makeAllDue(db);
  await db.sql`select pg_stat_statements_reset()`;
  const p0 = await parts();
  let refreshed = 0;
  for (let i = 0; i < 20; i++) {
    if (fresh) {
      await functions.stop();
      functions = await startFunctionsServer(env);
    }
    const s = await call();
    refreshed += s.refreshed;
  }
  const p1 = await parts();
  console.log(`fresh process per invocation: ${fresh}; refreshed ${refreshed}`);
  for (const k of Object.keys(p1)) {
    console.log(`  ${k}: ${((p1[k] - p0[k]) / refreshed).toFixed(2)} ms/refresh`);
  }
  const rows = await db
    .sql`select calls, round(total_exec_time::numeric,1) as ms, round((total_exec_time/calls)::numeric,3) as per, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) as q from pg_stat_statements order by total_exec_time desc limit 14`;
  for (const r of rows) {
    console.log(
      `   ${String(r.calls).padStart(6)} ${String(r.ms).padStart(8)} ms ${
        String(r.per).padStart(8)
      }  ${r.q}`,
    );
  }
  const [{ sessions }] = await db
    .sql`select sessions from pg_stat_database where datname = 'postgres'`;
  console.log(`  sessions so far: ${sessions}`);
  await functions.stop();
}
await sandbox.close();
await db.stop();
