/**
 * `npm run refresh`: one refresh pass from an admin's terminal, the same run the cafe24-refresh
 * function does (beginRefreshRun over the cafe24_private SQL functions), recorded with trigger
 * `cli`. The database comes from SUPABASE_DB_URL (environment, then the env file) or the running
 * local stack's stack file; never from a password on the command line.
 *
 *   npm run refresh -- [--mall <id>] [--user <uuid>] [--force] [--concurrency N] [--log-file F]
 *
 * stdout: the run's summary JSON, exactly what the function answers. stderr: progress (a bar on a
 * terminal, plain lines otherwise) and a recap with what to do about each failure. The run's
 * JSON log lines go to --log-file, or nowhere. Exit 0 when nothing failed; 1 when a connection
 * failed, the run could not complete, or --mall/--user matched no connection; 2 on a usage or
 * configuration error.
 */
import { usageError } from "../local/stack/usage.ts";
import { parseArgs } from "node:util";
import {
  loadConfig,
  REFRESH_CONFIG_REQUIRED,
  refreshSettings,
  tokenKeyWarnings,
} from "../supabase/functions/_shared/platform/config.ts";
import { CONFIG_WARNINGS } from "../supabase/functions/_shared/platform/errors.ts";
import { closeDatabases, database } from "../supabase/functions/_shared/platform/db.ts";
import { isValidMallId } from "../supabase/functions/_shared/cafe24/mall_id.ts";
import { beginRefreshRun, type RunSummary } from "../supabase/functions/_shared/refresh/run.ts";
import { createRefreshStore } from "../supabase/functions/_shared/refresh/store.ts";
import { readEnvFile } from "../local/stack/env_file.ts";
import { colourWanted, failureAdvice, paint } from "../local/stack/report.ts";
import { chooseDatabase, redactUrl } from "../local/stack/database_target.ts";
import { loadTokenRing } from "../local/stack/token_ring.ts";
import {
  absolutePath,
  DEFAULT_DATA_DIR,
  processAlive,
  PROJECT_ROOT,
  readStackInfo,
  SANDBOX_CLIENT_ID,
  SANDBOX_CLIENT_SECRET,
} from "../local/stack/stack_info.ts";

const USAGE = `npm run refresh -- [options]

One refresh pass, as cafe24-refresh does it, recorded with trigger 'cli'.

  --mall ID          only this mall
  --user UUID        only this user's connections
  --force            refresh even if not due (leases, backoff and reconnect_required still hold)
  --concurrency N    token requests in flight at once (default: CAFE24_REFRESH_CONCURRENCY or 8)
  --data-dir DIR     the local stack to use (default: .local)
  --env-file PATH    SUPABASE_DB_URL, Cafe24 credentials, the token key ring (CAFE24_TOKEN_KEYS,
                     CAFE24_TOKEN_KEY_ID) and settings (default: .env)
  --log-file PATH    append the run's JSON log lines there (default: not kept)
  --db-url URL       a database URL (prefer SUPABASE_DB_URL: a password here is visible to
                     every user of this machine)
  -h, --help         this text

The database: SUPABASE_DB_URL from the environment, else from the env file, else the running
npm start. stdout: the summary JSON. Exit 0: nothing failed; 1: a connection failed, the run did
not complete, or --mall/--user matched no connection; 2: usage or configuration error.`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const encoder = new TextEncoder();
const writeErr = (text: string) => Deno.stderr.writeSync(encoder.encode(text));

/** Progress on stderr: a redrawn bar on a terminal, a line per 10 % otherwise. */
class Progress {
  private line = "";
  private lastDecile = -1;
  private lastSettled = -1;
  constructor(private readonly tty: boolean) {}

  update(settled: number, due: number): void {
    const total = Math.max(due, settled);
    if (this.tty) {
      const width = 30;
      const filled = total === 0 ? width : Math.round((settled / total) * width);
      this.line = `  [${"#".repeat(filled)}${".".repeat(width - filled)}] ${settled}/${total}`;
      writeErr(`\r\x1b[2K${this.line}`);
      return;
    }
    const decile = total === 0 ? 10 : Math.floor((settled / total) * 10);
    if (settled !== this.lastSettled && (decile !== this.lastDecile || settled === total)) {
      this.lastDecile = decile;
      this.lastSettled = settled;
      writeErr(`progress ${settled}/${total}\n`);
    }
  }

  /** Writes a whole line without tearing the bar. */
  print(text: string): void {
    if (this.tty && this.line !== "") writeErr(`\r\x1b[2K${text}\n${this.line}`);
    else writeErr(`${text}\n`);
  }

  end(): void {
    if (this.tty && this.line !== "") writeErr("\n");
    this.line = "";
  }
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        "mall": { type: "string" },
        "user": { type: "string" },
        "force": { type: "boolean" },
        "db-url": { type: "string" },
        "concurrency": { type: "string" },
        "data-dir": { type: "string" },
        "env-file": { type: "string" },
        "log-file": { type: "string" },
        "help": { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(
      usageError("npm run refresh", error instanceof Error ? error.message : String(error)),
    );
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const usage = (message: string) => {
    console.error(usageError("npm run refresh", message));
    return 2;
  };
  const mallId = values.mall ?? null;
  if (mallId !== null && !isValidMallId(mallId)) {
    return usage(
      `--mall: ${JSON.stringify(mallId)} is not a Cafe24 mall id (^[a-z][a-z0-9]{3,15}$)`,
    );
  }
  const userId = values.user ?? null;
  if (userId !== null && !UUID.test(userId)) return usage("--user must be a uuid");
  let concurrency: number | null = null;
  if (values.concurrency !== undefined) {
    concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
      return usage("--concurrency must be an integer from 1 to 64");
    }
  }

  const p = paint(colourWanted(Deno.stderr));
  const envFile = absolutePath(values["env-file"] ?? `${PROJECT_ROOT}/.env`);
  let fileEnv: Record<string, string>;
  try {
    fileEnv = await readEnvFile(envFile, { required: values["env-file"] !== undefined });
  } catch (error) {
    console.error(`cannot read ${envFile}: ${error instanceof Error ? error.message : error}`);
    return 2;
  }
  const shellEnv = Deno.env.toObject();
  const env: Record<string, string> = { ...fileEnv, ...shellEnv };

  const dataDir = absolutePath(values["data-dir"] ?? DEFAULT_DATA_DIR).replace(/\/$/, "");
  const found = await readStackInfo(dataDir);
  const stack = found !== null && processAlive(found.pids.start) ? found : null;
  const target = chooseDatabase({ flag: values["db-url"], shellEnv, fileEnv, envFile, stack });
  if (!target.ok) {
    console.error(target.message);
    return 2;
  }
  for (const warning of target.warnings) writeErr(`${p.yellow("warning")}: ${warning}\n`);
  const dbUrl = target.url;
  env.SUPABASE_DB_URL = dbUrl;
  if (stack !== null && target.localStack) {
    // The local stack's Cafe24: its sandbox knows only its own client, so use that one.
    env.CAFE24_API_BASE_URL = stack.cafe24_api_base_url;
    if (stack.mode === "sandbox") {
      env.CAFE24_CLIENT_ID = SANDBOX_CLIENT_ID;
      env.CAFE24_CLIENT_SECRET_KEY = SANDBOX_CLIENT_SECRET;
    }
    // The local stack's tokens are encrypted with its data dir's ring, unless npm start took
    // one from .env or the shell, which this command reads the same way. It only reads the file:
    // a ring made here would match nothing in the database.
    if (!env.CAFE24_TOKEN_KEYS && !env.CAFE24_TOKEN_KEY_ID) {
      try {
        const ring = await loadTokenRing(dataDir);
        if (ring !== null) Object.assign(env, ring);
      } catch (error) {
        console.error(error instanceof Error ? error.message : String(error));
        return 2;
      }
    }
  }
  const loaded = loadConfig(env, REFRESH_CONFIG_REQUIRED);
  if (!loaded.ok) {
    console.error(
      `${loaded.code === "CONFIG_MISSING" ? "missing" : "invalid"}: ${loaded.names.join(", ")} ` +
        `(set them in ${envFile} or the environment; see .env.example)`,
    );
    return 2;
  }
  // The ring (CAFE24_TOKEN_KEYS/ID) comes from the env file like every other secret this command
  // needs (docs/configuration.md#token-key-ring); what is wrong with it is said, never its keys.
  for (const code of tokenKeyWarnings(loaded.config)) {
    writeErr(`${p.yellow("warning")}: ${code}: ${CONFIG_WARNINGS[code].message}\n`);
  }
  const settings = refreshSettings(loaded.config);
  if (concurrency !== null) settings.concurrency = concurrency;
  // The CPU budget keeps a hosted invocation under its CPU limit; a terminal has none. The
  // wall-clock budget and the per-run cap still hold.
  settings.runCpuBudgetMs = Number.POSITIVE_INFINITY;

  const tty = Deno.stderr.isTerminal();
  const progress = new Progress(tty);
  // The shared logger writes JSON lines to the console. stdout is the summary's and stderr the
  // human recap's: the log lines go to --log-file, or nowhere (the summary has every failure).
  const logFile = values["log-file"] === undefined
    ? null
    : await Deno.open(absolutePath(values["log-file"]), {
      append: true,
      create: true,
      mode: 0o600,
    });
  const toLog = (...args: unknown[]) => {
    logFile?.writeSync(encoder.encode(args.map(String).join(" ") + "\n"));
  };
  console.log = toLog;
  console.info = toLog;
  console.warn = toLog;
  console.error = toLog;

  const shownTarget = `${redactUrl(dbUrl)} (${target.source})`;
  const sql = database(dbUrl, settings.concurrency + 2);
  let summary: RunSummary;
  try {
    const run = await beginRefreshRun({
      store: createRefreshStore(sql, settings.tokenSeal),
      settings,
      onProgress: ({ settled, due }) => progress.update(settled, due),
    }, {
      trigger: "cli",
      mode: "sync",
      force: values.force ?? false,
      mallId,
      userId,
    });
    progress.print(p.dim(`run ${run.runId} on ${shownTarget}`));
    progress.print(p.dim(`cafe24: ${settings.app.apiBaseUrl}`));
    summary = await run.execute();
  } catch (error) {
    progress.end();
    const message = error instanceof Error ? error.message : String(error);
    writeErr(`${p.red("refresh failed")}: ${message}\n`);
    if (/ECONNREFUSED|connect|Connection refused|ENOTFOUND|ENETUNREACH/i.test(message)) {
      writeErr(
        `The database at ${shownTarget} did not answer. A Supabase project's direct host ` +
          `(db.<ref>.supabase.co) is IPv6-only on many plans: use the session pooler's URL ` +
          `(Dashboard → Connect), e.g. postgresql://postgres.<ref>:<password>@` +
          `aws-0-<region>.pooler.supabase.com:5432/postgres.\n`,
      );
    }
    await closeDatabases().catch(() => {});
    logFile?.close();
    return 1;
  }
  progress.update(summary.refreshed + summary.failed, summary.due);
  progress.end();

  let malls = new Map<string, string | null>();
  if (summary.failures.length > 0) {
    const rows = await sql<{ id: string; mall_id: string | null }[]>`
      select auth_settings_id as id, mall_id from cafe24_private.connections
      where auth_settings_id = any(${summary.failures.map((f) => f.id)}::uuid[])`.catch(() => []);
    malls = new Map(rows.map((row) => [row.id, row.mall_id]));
  }
  await closeDatabases();
  logFile?.close();

  Deno.stdout.writeSync(encoder.encode(JSON.stringify(summary, null, 2) + "\n"));
  const skipped = Object.entries(summary.skipped_reasons).filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`).join(", ");
  writeErr(
    `due ${summary.due} · ${p.green(`refreshed ${summary.refreshed}`)} · ` +
      `${summary.failed > 0 ? p.red(`failed ${summary.failed}`) : "failed 0"} · ` +
      `skipped ${summary.skipped}${skipped === "" ? "" : ` (${skipped})`}` +
      `${summary.remaining > 0 ? ` · remaining ${summary.remaining}` : ""} · ` +
      `${summary.duration_ms} ms\n`,
  );
  for (const failure of summary.failures) {
    writeErr(`  ${p.red("✗")} ${malls.get(failure.id) ?? failure.id}  ${failure.reason}\n`);
    const advice = failureAdvice(failure.reason);
    if (advice !== null) writeErr(`    → ${advice}\n`);
  }
  if ((mallId !== null || userId !== null) && summary.scanned === 0) {
    const filter = [
      mallId === null ? "" : `--mall ${mallId}`,
      userId === null ? "" : `--user ${userId}`,
    ]
      .filter((f) => f !== "").join(" ");
    writeErr(
      `${p.yellow("warning")}: no connection matches ${filter} in ${redactUrl(dbUrl)}; ` +
        `check the id (select mall_id, user_id from cafe24_private.connection_status)\n`,
    );
    return 1;
  }
  return summary.failed > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
