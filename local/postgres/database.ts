/**
 * A throwaway Supabase-shaped database for tests: a local PostgreSQL cluster (pg_cron preloaded,
 * and pg_net and supabase_vault where the installation ships them), the Supabase stand-ins
 * (local/supabase/stand_ins.sql: the real extensions where available), then this project's
 * migrations applied by the pinned Supabase CLI exactly as `supabase db push` applies them.
 *
 *   const db = await startTestDatabase();
 *   try { … db.sql`…` … } finally { await db.stop(); }
 *
 * With `schemaFiles`, the schema comes from those files (supabase/schemas' text, see
 * readSchemaFiles) instead of the migrations: what the schema equivalence test compares.
 */
import postgres from "postgres";
import {
  type PostgresCluster,
  type PostgresClusterOptions,
  startPostgresCluster,
} from "./cluster.ts";
import { PROJECT_ROOT } from "../stack/stack_info.ts";

/** The cluster's options, handed to it as they are, and where the schema comes from. */
export interface TestDatabaseOptions extends PostgresClusterOptions {
  /** Apply these files in order instead of supabase/migrations. */
  schemaFiles?: SchemaFile[];
}

/** One SQL file of supabase/schemas (or a changed copy of one): its name and its text. */
export interface SchemaFile {
  name: string;
  text: string;
}

export interface TestDatabase extends PostgresCluster {
  /** prepare: false, max 10 connections, notices silenced. Ended by stop(). */
  sql: postgres.Sql;
}

const STAND_INS = new URL("../supabase/stand_ins.sql", import.meta.url);
const SCHEMAS = new URL("../../supabase/schemas/", import.meta.url);

export async function startTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const { schemaFiles, ...clusterOptions } = options;
  const cluster = await startPostgresCluster(clusterOptions);
  const sql = postgres(cluster.dbUrl, { prepare: false, max: 10, onnotice: () => {} });
  try {
    await applyStandIns(sql);
    if (schemaFiles === undefined) await applyMigrations(cluster.dbUrl);
    else await applySchemaFiles(sql, schemaFiles);
  } catch (e) {
    await sql.end({ timeout: 5 }).catch(() => {});
    await cluster.stop().catch(() => {});
    throw e;
  }

  let ended = false;
  return {
    dbUrl: cluster.dbUrl,
    password: cluster.password,
    port: cluster.port,
    dataDir: cluster.dataDir,
    logFile: cluster.logFile,
    sql,
    async stop() {
      try {
        if (!ended) {
          ended = true;
          await sql.end({ timeout: 5 });
        }
      } finally {
        await cluster.stop();
      }
    },
    restart: (opts) => cluster.restart(opts),
    kill: () => cluster.kill(),
  };
}

/** Runs local/supabase/stand_ins.sql (idempotent) with the simple query protocol. It creates the
 * real pg_net and supabase_vault where the server ships them, stand-ins otherwise. */
export async function applyStandIns(sql: postgres.Sql): Promise<void> {
  const text = await Deno.readTextFile(STAND_INS);
  await sql.unsafe(text).simple();
}

/** supabase/schemas/*.sql, in the order they apply (by name). */
export async function readSchemaFiles(): Promise<SchemaFile[]> {
  const files: SchemaFile[] = [];
  for await (const entry of Deno.readDir(SCHEMAS)) {
    if (entry.isFile && entry.name.endsWith(".sql")) {
      files.push({ name: entry.name, text: await Deno.readTextFile(new URL(entry.name, SCHEMAS)) });
    }
  }
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Runs each file in order with the simple query protocol (one transaction per file), function
 * bodies checked as they are created. Throws with the name of the file that failed. */
export async function applySchemaFiles(sql: postgres.Sql, files: SchemaFile[]): Promise<void> {
  for (const file of files) {
    try {
      await sql.unsafe(file.text).simple();
    } catch (e) {
      throw new Error(`supabase/schemas/${file.name}: ${e instanceof Error ? e.message : e}`, {
        cause: e,
      });
    }
  }
}

/** Which of Supabase's extensions a database runs for real (true) rather than as stand-ins: what
 * stand_ins.sql decided, read back from the catalog. */
export interface RealExtensions {
  pgNet: boolean;
  vault: boolean;
}

export async function realExtensions(sql: postgres.Sql): Promise<RealExtensions> {
  const [row] = await sql<{ pg_net: boolean; supabase_vault: boolean }[]>`
    select
      exists (select from pg_extension where extname = 'pg_net') as pg_net,
      exists (select from pg_extension where extname = 'supabase_vault') as supabase_vault`;
  return { pgNet: row!.pg_net, vault: row!.supabase_vault };
}

/** `supabase db push --db-url '<dbUrl without password>?sslmode=disable' --yes --include-all`,
 * with the pinned CLI from node_modules, cwd = project root and this process's environment. The
 * password goes to the CLI as PGPASSWORD, never on its command line (which any local user can
 * read). Throws with the CLI's output on failure. */
export async function applyMigrations(dbUrl: string): Promise<void> {
  const parsed = new URL(dbUrl);
  const password = decodeURIComponent(parsed.password);
  parsed.password = "";
  if (!parsed.searchParams.has("sslmode")) parsed.searchParams.set("sslmode", "disable");
  const url = parsed.toString();
  const cli = `${PROJECT_ROOT}/node_modules/.bin/supabase`;
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cli, {
      args: ["db", "push", "--db-url", url, "--yes", "--include-all"],
      cwd: PROJECT_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // The rest of the environment is inherited (registry certificate settings etc.).
      env: password === "" ? {} : { PGPASSWORD: password },
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `Supabase CLI not found at ${cli}. Install the pinned dev dependencies with:\n\n` +
          `cd ${PROJECT_ROOT} && npm ci\n`,
      );
    }
    throw e;
  }
  if (out.code !== 0) {
    const dec = new TextDecoder();
    throw new Error(
      `supabase db push failed (exit ${out.code}):\n${dec.decode(out.stderr)}\n` +
        dec.decode(out.stdout),
    );
  }
}
