/**
 * `npm start`: the whole system on one machine, without Docker.
 *
 *   PostgreSQL 15 + pg_cron   <data dir>/postgres (or a private folder under /var/tmp when the
 *                             postgres OS user cannot enter the checkout), port 54322, kept
 *                             between runs (--reset wipes it), password-protected, with the
 *                             Supabase stand-ins and the migrations (pinned Supabase CLI)
 *   functions                 http://127.0.0.1:54321/functions/v1/<name> (local/functions/serve.ts)
 *   Cafe24                    the sandbox on :54329 with demo malls, or the real Cafe24 when .env
 *                             holds real credentials
 *   schedule                  the migration's pg_cron job, every minute here, through Vault and the
 *                             pg_net stand-in to cafe24-refresh
 *
 * Prints each refresh run as it happens, the connections' status after each run and each
 * reconnect, and for every failure what to do. Ctrl-C, closing the terminal (SIGHUP) or SIGTERM
 * stops everything it started. `--once`: wait for the first cron-driven run, print it, stop, exit.
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import { loadConfig } from "../supabase/functions/_shared/platform/config.ts";
import { applyMigrations, applyStandIns } from "../local/postgres/database.ts";
import { startPostgresCluster } from "../local/postgres/cluster.ts";
import { type NetDeliverer, startNetDeliverer } from "../local/supabase/pg_net_deliverer.ts";
import { type Cafe24Sandbox, startCafe24Sandbox } from "../local/cafe24_sandbox.ts";
import { createLocalAuth, type LocalAuth } from "../local/supabase/auth_stand_in.ts";
import {
  type DemoConnection,
  removeDemoConnections,
  seedDemoConnections,
} from "../local/stack/demo.ts";
import { readEnvFile } from "../local/stack/env_file.ts";
import { LocalEnv, randomSecret, REAL_CAFE24_BASE_URL } from "../local/stack/local_env.ts";
import { applyTokenRing, removeTokenRing, tokenRingPath } from "../local/stack/token_ring.ts";
import { type FunctionsProcess, spawnFunctions } from "../local/functions/process.ts";
import { type Gateway, startGateway } from "../local/functions/gateway.ts";
import { startLocalSettingsPage } from "../local/settings_page/local_stack.ts";
import { newControlToken } from "../local/local_access.ts";
import {
  checkMachine,
  confirm,
  INSTALL_FIX,
  installPackages,
  isDebian,
} from "../local/stack/preflight.ts";
import {
  colourWanted,
  type ConnectionRow,
  connectionTable,
  eventLines,
  explainCronFailure,
  explainNetFailure,
  idleTickLine,
  type NetFailure,
  orderedSummary,
  paint,
  readConnections,
  runFinishedLines,
  type RunRow,
  runStartedLine,
  stopLines,
  tableKey,
  wrapParts,
  wrapText,
} from "../local/stack/report.ts";
import {
  absolutePath,
  DEFAULT_DATA_DIR,
  DEFAULT_PORTS,
  processAlive,
  processCommandLine,
  PROJECT_ROOT,
  readStackInfo,
  removeStackInfo,
  SANDBOX_CLIENT_ID,
  SANDBOX_CLIENT_SECRET,
  type StackInfo,
  stackInfoPath,
  writeStackInfo,
} from "../local/stack/stack_info.ts";
import {
  diskUsageKb,
  fallbackClusterDir,
  locateCluster,
  postgresUser,
  prepareFallbackParent,
  removeClusterData,
} from "../local/stack/data_location.ts";
import { usageError } from "../local/stack/usage.ts";
import {
  busyPortsMessage,
  HOST,
  nextFreePort,
  portFree,
  type PortName,
} from "../local/stack/ports.ts";

const USAGE = `npm start -- [options]

Runs PostgreSQL with pg_cron, the Edge Functions, the Cafe24 sandbox and the real pg_cron
schedule on this machine, and shows every refresh run as it happens. Ctrl-C stops everything.

  --once                 wait for the first cron-driven run, print it and the status, stop, exit 0
  --reset                wipe the local database first (also its folder under /var/tmp)
  --data-dir DIR         where the cluster, logs and stack.json live (default: .local)
  --env-file PATH        variables for the functions (default: .env; see .env.example)
  --db-port N            PostgreSQL port (default ${DEFAULT_PORTS.db}; 0 = any free port)
  --functions-port N     functions / API port (default ${DEFAULT_PORTS.functions}; 0 = any free)
  --sandbox-port N       Cafe24 sandbox port (default ${DEFAULT_PORTS.sandbox}; 0 = any free)
  --settings-port N      settings page port (default ${DEFAULT_PORTS.settings}; 0 = any free)
  --once-timeout S       --once gives up after S seconds (default 150)
  --install-missing      Debian, as root: install PostgreSQL 15 and pg_cron if missing
  -h, --help             this text

npm passes options on only after --, e.g. npm start -- --db-port 54332`;

const SANDBOX_SCOPES = "mall.read_store,mall.read_community";
const POLL_MS = 1_000;
/** The signals that stop the stack: Ctrl-C, a closed terminal, a service manager. */
const STOP_SIGNALS = ["SIGINT", "SIGHUP", "SIGTERM"] as const;

class UsageError extends Error {}
class Interrupted extends Error {}

interface Options {
  once: boolean;
  reset: boolean;
  dataDir: string;
  envFile: string;
  envFileExplicit: boolean;
  ports: Record<PortName, number>;
  onceTimeoutMs: number;
  installMissing: boolean;
}

function parseOptions(args: string[]): Options | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "once": { type: "boolean" },
        "reset": { type: "boolean" },
        "data-dir": { type: "string" },
        "env-file": { type: "string" },
        "db-port": { type: "string" },
        "functions-port": { type: "string" },
        "sandbox-port": { type: "string" },
        "settings-port": { type: "string" },
        "once-timeout": { type: "string" },
        "install-missing": { type: "boolean" },
        "help": { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) return "help";
  const port = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      throw new UsageError(`--${name} must be a port number (0-65535)`);
    }
    return n;
  };
  const timeout = Number(values["once-timeout"] ?? 150);
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new UsageError("--once-timeout must be a number of seconds");
  }
  return {
    once: values.once ?? false,
    reset: values.reset ?? false,
    dataDir: absolutePath(values["data-dir"] ?? DEFAULT_DATA_DIR).replace(/\/$/, ""),
    envFile: absolutePath(values["env-file"] ?? `${PROJECT_ROOT}/.env`),
    envFileExplicit: values["env-file"] !== undefined,
    ports: {
      db: port("db-port", values["db-port"], DEFAULT_PORTS.db),
      functions: port("functions-port", values["functions-port"], DEFAULT_PORTS.functions),
      sandbox: port("sandbox-port", values["sandbox-port"], DEFAULT_PORTS.sandbox),
      settings: port("settings-port", values["settings-port"], DEFAULT_PORTS.settings),
    },
    onceTimeoutMs: timeout * 1000,
    installMissing: values["install-missing"] ?? false,
  };
}

const p = paint(colourWanted(Deno.stdout));
/** After a hangup the terminal is gone and writes fail: stopping must go on regardless. */
const say = (line = "") => {
  try {
    console.log(line);
  } catch { /* no terminal */ }
};
const complain = (line: string) => {
  try {
    console.error(line);
  } catch { /* no terminal */ }
};

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A path as the user typed it from the checkout: relative when inside it. */
function shown(path: string): string {
  return path.startsWith(PROJECT_ROOT + "/") ? path.slice(PROJECT_ROOT.length + 1) : path;
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return cond();
}

async function postmasterPid(pgDir: string): Promise<number | null> {
  try {
    const pid = Number((await Deno.readTextFile(`${pgDir}/postmaster.pid`)).split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Machine check; offers the install on Debian as root. Returns false when the stack cannot run. */
async function ensureMachine(options: Options): Promise<boolean> {
  let check = await checkMachine();
  if (check.ok) return true;
  complain(p.red("The local stack needs PostgreSQL 15 with pg_cron:"));
  for (const problem of check.problems) complain(`  - ${problem}`);
  const debianRoot = Deno.uid() === 0 && (await isDebian());
  if (debianRoot) {
    const install = options.installMissing ||
      (await confirm(`Install them now (${INSTALL_FIX})?`));
    if (install) {
      if (await installPackages()) {
        check = await checkMachine();
        if (check.ok) return true;
        for (const problem of check.problems) complain(`  - ${problem}`);
      }
      complain(p.red("The installation did not complete."));
    }
  }
  complain(`\nInstall them with:\n\n  ${INSTALL_FIX}\n`);
  if (debianRoot && !options.installMissing) {
    complain("or let npm start do it: npm start -- --install-missing\n");
  }
  complain("(Elsewhere: any PostgreSQL 15 with pg_cron; PG_BINDIR points at its bin/.)");
  return false;
}

/** Stops what an earlier, killed `npm start` left running on this data dir. */
async function clearLeftovers(dataDir: string, pgDirs: string[]): Promise<void> {
  const previous = await readStackInfo(dataDir);
  if (previous !== null && previous.pids.start !== Deno.pid) {
    const start = previous.pids.start;
    if (processAlive(start) && processCommandLine(start).includes("start.ts")) {
      throw new Error(
        `npm start is already running on ${dataDir} (pid ${start}). Stop it with Ctrl-C in its ` +
          `terminal (or kill -INT ${start}), or use another --data-dir and ports.`,
      );
    }
    const functions = previous.pids.functions;
    if (
      functions !== null && processAlive(functions) &&
      processCommandLine(functions).includes("local/functions/serve.ts")
    ) {
      Deno.kill(functions, "SIGKILL");
      say(p.dim(`stopped a functions process left by an earlier run (pid ${functions})`));
    }
  }
  for (const pgDir of pgDirs) {
    const pid = await postmasterPid(pgDir);
    if (pid !== null && processAlive(pid) && processCommandLine(pid).includes("postgres")) {
      Deno.kill(pid, "SIGINT"); // fast shutdown
      if (!(await waitUntil(() => !processAlive(pid), 60_000))) {
        throw new Error(`PostgreSQL (pid ${pid}) left by an earlier run did not stop`);
      }
      say(p.dim(`stopped a PostgreSQL left running by an earlier run (pid ${pid})`));
    }
  }
  await removeStackInfo(dataDir);
}

async function setVaultSecret(sql: postgres.Sql, name: string, value: string): Promise<void> {
  const [existing] = await sql<{ id: string }[]>`select id from vault.secrets where name = ${name}`;
  if (existing) await sql`select vault.update_secret(${existing.id}::uuid, ${value})`;
  else await sql`select vault.create_secret(${value}, ${name})`;
}

interface Watcher {
  /** Prints what happened since the last poll; true when the status table should follow. */
  poll(): Promise<{ finished: RunRow[]; tableDue: boolean }>;
  /** The connections as last read (for the table). */
  rows(): ConnectionRow[];
}

/**
 * Prints new and finished runs, reconnects, pg_net failures and failed cron jobs since `since`,
 * each failure with what to do.
 */
async function createWatcher(
  sql: postgres.Sql,
  since: Date,
  where: { envFile: string; log: string },
): Promise<Watcher> {
  const printed = new Map<string, string>();
  const [marks] = await sql<{ response: string; cron: string; tick: string }[]>`
    select
      (select coalesce(max(id), 0) from net._http_response)::text as response,
      (select coalesce(max(runid), 0) from cron.job_run_details)::text as cron,
      (select coalesce(max(id), 0) from cafe24_private.refresh_ticks)::text as tick`;
  let lastResponse = BigInt(marks!.response);
  let lastCronRun = BigInt(marks!.cron);
  let lastTick = BigInt(marks!.tick);
  // Every change to a connection (a refresh, a failure, a reconnect through the callback, an
  // edit in psql) moves connections.updated_at: one cheap query tells whether to read them all.
  const fingerprint = async () => {
    const [row] = await sql<{ mark: string }[]>`
      select count(*)::text || '/' || coalesce(max(updated_at)::text, '') as mark
      from cafe24_private.connections`;
    return row!.mark;
  };
  let mark = await fingerprint();
  let rows = await readConnections(sql);
  // The table is printed again only when what it says changed (not its relative times).
  let printedTable = tableKey(rows);
  const now = () => new Date();

  return {
    rows: () => rows,
    async poll() {
      const finished: RunRow[] = [];
      const pending = [...printed].filter(([, status]) => status === "running").map(([id]) => id);
      const runs = await sql<RunRow[]>`
        select id, trigger, mode, status, started_at, finished_at, summary
        from cafe24_private.refresh_runs
        where started_at >= ${since}
          and (status = 'running' or finished_at >= now() - interval '2 minutes'
            or id = any(${pending}::uuid[]))
        order by started_at`;
      const failureIds = runs.flatMap((run) => (run.summary?.failures ?? []).map((f) => f.id));
      const malls = new Map<string, string | null>();
      if (failureIds.length > 0) {
        for (
          const row of await sql<{ id: string; mall_id: string | null }[]>`
            select auth_settings_id as id, mall_id from cafe24_private.connections
            where auth_settings_id = any(${failureIds}::uuid[])`
        ) malls.set(row.id, row.mall_id);
      }
      for (const run of runs) {
        const before = printed.get(run.id);
        if (before === run.status) continue;
        if (before === undefined && run.status === "running") say(runStartedLine(run, p));
        if (run.status !== "running") {
          for (const line of runFinishedLines(run, malls, p, where)) say(line);
          finished.push(run);
        }
        printed.set(run.id, run.status);
      }

      const latest = await fingerprint();
      if (latest !== mark) {
        mark = latest;
        const before = new Map(rows.map((row) => [row.auth_settings_id, row]));
        rows = await readConnections(sql);
        for (const row of rows) {
          const old = before.get(row.auth_settings_id);
          const ok = row.row_state === "ok" && row.status === "active";
          if (ok && (old === undefined || old.status !== "active")) {
            say(
              `${p.dim(now().toTimeString().slice(0, 8))}  ${p.green("✓")} ` +
                `${row.mall_id ?? row.auth_settings_id} ${
                  old === undefined ? "connected" : "connected again"
                }: active, refreshed from now on`,
            );
          }
        }
      }

      // A tick that found nothing due sends no request and starts no run: one line says so.
      const ticks = await sql<{ id: string; ticked_at: Date; outcome: string }[]>`
        select id::text as id, ticked_at, outcome from cafe24_private.refresh_ticks
        where id > ${lastTick.toString()}::bigint order by id`;
      for (const tick of ticks) {
        lastTick = BigInt(tick.id);
        if (tick.outcome === "nothing_due") say(idleTickLine(tick.ticked_at, p));
      }

      const responses = await sql<NetFailure[]>`
        select id::text as id, status_code, content, timed_out, error_msg from net._http_response
        where id > ${lastResponse.toString()}::bigint order by id`;
      for (const response of responses) {
        lastResponse = BigInt(response.id);
        if (response.status_code !== null && response.status_code < 300) continue;
        const { what, advice } = explainNetFailure(response, where);
        for (const line of eventLines(now(), what, advice, p)) say(line);
      }

      const cronRuns = await sql<
        { runid: string; status: string; return_message: string | null }[]
      >`
        select d.runid::text as runid, d.status, d.return_message
        from cron.job_run_details d join cron.job j on j.jobid = d.jobid
        where j.jobname = 'cafe24-refresh' and d.runid > ${lastCronRun.toString()}::bigint
          and d.status in ('succeeded', 'failed')
        order by d.runid`;
      for (const cronRun of cronRuns) {
        lastCronRun = BigInt(cronRun.runid);
        if (cronRun.status === "failed") {
          const { what, advice } = explainCronFailure(cronRun.return_message);
          for (const line of eventLines(now(), what, advice, p)) say(line);
        }
      }

      // The table when what it says has changed (a failure, a reconnect, a new connection), but
      // never in the middle of a run's lines.
      const running = [...printed.values()].includes("running");
      const key = tableKey(rows);
      const tableDue = !running && key !== printedTable;
      if (tableDue) printedTable = key;
      return { finished, tableDue };
    },
  };
}

/** Everything the guide printed at start-up needs to know. */
interface Session {
  opts: Options;
  env: LocalEnv;
  real: boolean;
  fresh: boolean;
  /** Where the token key ring came from (token_ring.ts). */
  tokenRing: "env" | "created" | "kept";
  dbUrl: string;
  pgDir: string;
  pgDirNote: string | null;
  projectUrl: string;
  sandbox: Cafe24Sandbox | undefined;
  demo: DemoConnection[];
  functions: FunctionsProcess;
  postgresPid: number | null;
  auth: LocalAuth;
  /** The page with the control token in its fragment: the link that lets a browser sign in. */
  settingsPageUrl: string;
  /** Names whose value came from .env or the shell rather than from this stack. */
  fromUser: Set<string>;
  /** Who sends pg_net's requests: the stand-in here, or the real pg_net's worker (PG_BINDIR). */
  netWorker: "stand-in" | "pg_net";
  readyMs: number;
}

/** The user token and authorize link for connecting a mall through the local Auth stand-in. */
interface LocalUser {
  email: string;
  jwt: string;
  expiresAt: string;
  mallId: string;
  authorizeUrl: string;
  /** Cafe24's (the sandbox's) authorize URL, to open in a browser; null when not obtained. */
  browserUrl: string | null;
  problem: string | null;
}

async function localUser(s: Session): Promise<LocalUser> {
  // With the sandbox: reconnect the demo mall whose refresh token is dead, as its owner.
  const target = s.demo.find((d) => d.expect === "reconnect_required");
  const user = target === undefined
    ? { id: "00000000-0000-4000-b000-0000000000ff", email: "developer@demo.local" }
    : { id: target.userId, email: target.email };
  const ttlSeconds = 24 * 3600;
  const jwt = await s.auth.mintUserToken(user, ttlSeconds);
  const mallId = target?.mallId ?? "<your mall_id>";
  const authorizeUrl = `${s.projectUrl}/functions/v1/cafe24-authorize?mall_id=${mallId}&mode=json`;
  const result: LocalUser = {
    email: user.email,
    jwt,
    expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString(),
    mallId,
    authorizeUrl,
    browserUrl: null,
    problem: null,
  };
  if (target === undefined || !s.functions.names.includes("cafe24-authorize")) return result;
  try {
    const response = await fetch(authorizeUrl, { headers: { authorization: `Bearer ${jwt}` } });
    const body = await response.json().catch(() => null) as { url?: unknown } | null;
    if (response.ok && typeof body?.url === "string") result.browserUrl = body.url;
    else result.problem = `cafe24-authorize answered ${response.status}`;
  } catch {
    result.problem = "cafe24-authorize did not answer";
  }
  return result;
}

/**
 * The commands to try, each as printed (continuation lines for an 80-column screen) and as one
 * line for stack.json.
 */
function tryCommands(s: Session, user: LocalUser): { printed: string[]; lines: string[] } {
  const { opts, env } = s;
  const printed: string[] = [];
  const lines: string[] = [];
  // One line when it fits 80 columns, else a continuation line per part.
  const add = (comment: string, ...parts: string[]) => {
    const oneLine = `  ${parts.join(" ")}`;
    printed.push(
      p.dim(`  # ${comment}`),
      oneLine.length <= 80 ? oneLine : `  ${parts.join(" \\\n      ")}`,
    );
    lines.push(parts.join(" "));
  };
  // A secret from .env or the shell may be shared with a deployment: referenced, never printed.
  const cronSecretFromUser = s.fromUser.has("CRON_SECRET");
  const secretHeader = cronSecretFromUser
    ? `"x-cron-secret: $CRON_SECRET"`
    : shellQuote(`x-cron-secret: ${env.get("CRON_SECRET")}`);
  // The functions' URL once, so that no command line passes 80 columns.
  add("the functions' URL, for the commands below", `FN=${s.projectUrl}/functions/v1`);
  const refreshUrl = `"$FN/cafe24-refresh?force=true"`;
  if (cronSecretFromUser) {
    add(
      "CRON_SECRET from your env file into this shell",
      `set -a; . ${shellQuote(opts.envFile)}; set +a`,
    );
  }
  add(
    "a forced refresh run through the function",
    "curl -sS -X POST",
    `-H ${secretHeader}`,
    refreshUrl,
  );
  const dataDirFlag = opts.dataDir === DEFAULT_DATA_DIR
    ? []
    : [`--data-dir ${shellQuote(opts.dataDir)}`];
  const laterMall = s.demo.find((d) => d.expect === "refresh_later")?.mallId ?? "<mall_id>";
  add(
    "the same from the admin CLI, for one mall",
    ["npm run refresh --", ...dataDirFlag].join(" "),
    `--mall ${laterMall} --force`,
  );
  add(
    "the connections in psql (password in the pgpass file)",
    `PGPASSFILE=${shellQuote(shown(`${opts.dataDir}/pgpass`))}`,
    `psql -h ${HOST} -p ${new URL(s.dbUrl).port} -U postgres`,
  );
  // The token is long: read from the stack file rather than printed.
  const stackFile = shown(stackInfoPath(opts.dataDir));
  const requirePath = stackFile.startsWith("/") ? stackFile : `./${stackFile}`;
  add(
    `a token for ${user.email} (24 h)`,
    "export LOCAL_USER_JWT=$(node -p",
    `'require(${JSON.stringify(requirePath)}).local_user.jwt')`,
  );
  add(
    `a link to connect ${user.mallId} (cafe24-authorize)`,
    `curl -sS -H "Authorization: Bearer $LOCAL_USER_JWT"`,
    `"$FN/cafe24-authorize?mall_id=${user.mallId}&mode=json"`,
  );
  if (user.browserUrl !== null) {
    // Hundreds of characters: in stack.json, not on the screen.
    printed.push(
      p.dim(`  # or in a browser: the settings page above, or stack.json's`),
      p.dim(`  # local_user.authorize_url (valid 10 min)`),
    );
  } else if (user.problem !== null) {
    printed.push(p.yellow(`  (${user.problem}; see ${shown(`${opts.dataDir}/functions.log`)})`));
  }
  add(
    "every deployed piece checked as on Supabase",
    ["npm run deploy:check -- --local", ...dataDirFlag].join(" "),
  );
  return { printed, lines };
}

/** The banner: what runs where, the commands to try (not with --once), and the connections. */
function printGuide(s: Session, commands: string[], rows: ConnectionRow[]): void {
  const { opts, env, functions: fn } = s;
  // Each row within 80 columns: a long value goes on as indented lines.
  const row = (label: string, text: string, style = (line: string) => line) => {
    const lines = wrapText(text, " ".repeat(14));
    lines[0] = `  ${label.padEnd(11)} ${lines[0]!.trimStart()}`;
    for (const line of lines) say(style(line));
  };
  const list = (label: string, items: string[]) => {
    const lines = wrapParts(" ".repeat(14), items, { separator: ", ", indent: " ".repeat(14) });
    lines[0] = `  ${label.padEnd(11)} ${lines[0]!.trimStart()}`;
    for (const line of lines) say(p.dim(line));
  };
  say();
  say(p.bold(`Cafe24 connector — local stack, ready in ${(s.readyMs / 1000).toFixed(1)} s`));
  row(
    "database",
    `127.0.0.1:${new URL(s.dbUrl).port} ${
      p.dim(`(${s.fresh ? "new" : "reused"}; --reset wipes it)`)
    }`,
  );
  row("", p.dim(shown(s.pgDir)));
  if (s.pgDirNote !== null) row("", s.pgDirNote, p.dim);
  row(
    "token keys",
    s.tokenRing === "env"
      ? `CAFE24_TOKEN_KEY_ID=${env.get("CAFE24_TOKEN_KEY_ID") ?? "(unset)"} (from .env)`
      : `${shown(tokenRingPath(opts.dataDir))} (${
        s.tokenRing === "created" ? "new" : "reused"
      }; 0600; --reset removes it)`,
  );
  row("functions", `${s.projectUrl}/functions/v1/<name>`);
  list("", fn.names);
  row("settings", `a browser signed in as a demo user ${p.dim("(connect a mall there)")}:`);
  say(`    ${s.settingsPageUrl}`);
  row(
    "cafe24",
    s.real
      ? `${p.yellow("REAL")} ${REAL_CAFE24_BASE_URL}`
      : `sandbox ${s.sandbox!.url} ${p.dim(`(${s.demo.length} demo connections)`)}`,
  );
  row(
    "schedule",
    `pg_cron 'cafe24-refresh' every minute, via ${
      s.netWorker === "stand-in" ? "the pg_net stand-in" : "the real pg_net"
    }`,
  );
  row("logs", `${shown(`${opts.dataDir}/functions.log`)} ${p.dim("(the functions' JSON lines)")}`);
  row(
    "stack file",
    `${shown(stackInfoPath(opts.dataDir))} ${p.dim("(URLs, secrets, commands; 0600)")}`,
  );
  row("pids", `start=${Deno.pid} functions=${fn.pid} postgres=${s.postgresPid ?? "?"}`, p.dim);
  if (env.generated.length > 0) {
    row("generated", `${env.generated.join(", ")} (this session only)`, p.dim);
  }
  if (env.replaced.length > 0) {
    row("local", `${env.replaced.join(", ")} replaced by this stack's values`, p.dim);
  }
  if (s.real && !s.fromUser.has("CAFE24_REDIRECT_URI")) {
    row(
      "note",
      `CAFE24_REDIRECT_URI is not set: ${env.get("CAFE24_REDIRECT_URI")} works with the real ` +
        "Cafe24 only if registered there (HTTPS: use a tunnel)",
      p.yellow,
    );
  }

  // --once stops seconds from now: commands for a stack about to stop would only mislead.
  if (!opts.once) {
    say();
    say(p.bold("Try") + p.dim(`  (also in ${shown(stackInfoPath(opts.dataDir))})`));
    for (const line of commands) say(line);
  }

  say();
  say(p.bold("Connections"));
  say(connectionTable(rows, Date.now(), p));
  say();
  const nextMinute = new Date(Math.ceil((Date.now() + 1) / 60_000) * 60_000);
  say(p.dim(
    `The first cron-driven run starts at ${nextMinute.toTimeString().slice(0, 8)}, then every ` +
      `minute.\n${
        opts.once
          ? "Waiting for it …"
          : "Runs appear below as they happen. Ctrl-C stops everything."
      }`,
  ));
}

/** Functions output: every line to the log file; errors and non-JSON lines to the terminal. */
function functionsOutput(log: Deno.FsFile): (line: string) => void {
  const encoder = new TextEncoder();
  return (line) => {
    log.writeSync(encoder.encode(line + "\n"));
    let event: Record<string, unknown> | null = null;
    try {
      event = JSON.parse(line);
    } catch { /* not a log event */ }
    if (event === null) {
      if (line.trim() !== "") say(`${p.dim("functions │")} ${line}`);
    } else if (event.level === "error") {
      const { level: _level, at: _at, ...rest } = event;
      say(`${p.dim("functions │")} ${p.red("error")} ${JSON.stringify(rest)}`);
    }
  };
}

/**
 * The gateway answers only its loopback names, and the host of a CAFE24_REDIRECT_URI of your own
 * (the real Cafe24 only redirects to HTTPS: a tunnel to this gateway, which passes its own name
 * on as Host).
 */
function redirectHosts(redirectUri: string | undefined): string[] {
  if (redirectUri === undefined) return [];
  try {
    const url = new URL(redirectUri);
    return url.hostname === HOST || url.hostname === "localhost" ? [] : [url.host];
  } catch {
    return []; // loadConfig names the bad value
  }
}

/** A pgpass file for psql: the password stays off command lines and out of the banner. */
async function writePgpass(path: string, dbUrl: string): Promise<void> {
  const url = new URL(dbUrl);
  await Deno.remove(path).catch(() => {});
  await Deno.writeTextFile(
    path,
    `${url.hostname}:${url.port}:*:${decodeURIComponent(url.username)}:${
      decodeURIComponent(url.password)
    }\n`,
    { mode: 0o600, createNew: true },
  );
}

async function main(): Promise<number> {
  const startedAt = Date.now();
  let options: Options | "help";
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    if (error instanceof UsageError) {
      complain(usageError("npm start", error.message));
      return 2;
    }
    throw error;
  }
  if (options === "help") {
    say(USAGE);
    return 0;
  }
  const opts = options;
  if (!(await ensureMachine(opts))) return 1;

  // From here on, a stop signal stops what has started so far (between steps during start-up),
  // or everything once running. A second one kills the functions instead of waiting for them.
  let stopRequested = false;
  let interrupts = 0;
  let wake: () => void = () => {};
  const stopSignal = new Promise<void>((resolve) => (wake = resolve));
  let forceStop: () => void = () => {};
  const onSignal = () => {
    interrupts++;
    stopRequested = true;
    wake();
    if (interrupts === 2) {
      say(p.yellow("\nstopping harder…"));
      forceStop();
    }
  };
  for (const signal of STOP_SIGNALS) Deno.addSignalListener(signal, onSignal);
  const checkpoint = () => {
    if (stopRequested) throw new Interrupted();
  };

  const logPath = `${opts.dataDir}/functions.log`;
  const cleanups: { name: string; run: () => Promise<void> }[] = [];
  const shutdown = async () => {
    for (const step of cleanups.reverse()) {
      try {
        await step.run();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        complain(p.red(`could not stop ${step.name}: ${message}`));
      }
    }
    cleanups.length = 0;
  };

  try {
    await Deno.mkdir(opts.dataDir, { recursive: true });
    const fallbackDir = await fallbackClusterDir(opts.dataDir);
    await clearLeftovers(opts.dataDir, [`${opts.dataDir}/postgres`, fallbackDir]);
    if (opts.reset) {
      // Both places a cluster of this data dir may live: the checkout and /var/tmp.
      const removed = await removeClusterData(opts.dataDir, fallbackDir);
      await Deno.remove(logPath).catch(() => {});
      // The ring goes with the database: it can read nothing else, and nothing else needs it.
      if (await removeTokenRing(opts.dataDir)) removed.push("the token key ring");
      say(p.dim(`--reset: removed ${removed.length === 0 ? "nothing yet" : removed.join(", ")}`));
    }
    const location = await locateCluster(opts.dataDir);
    const pgDir = location.dir;
    const busy = (Object.entries(opts.ports) as [PortName, number][])
      .filter(([, port]) => !portFree(port));
    if (busy.length > 0) {
      const taken = Object.values(opts.ports);
      throw new Error(busyPortsMessage(busy.map(([name, port]) => {
        const suggestion = nextFreePort(port, taken);
        if (suggestion !== null) taken.push(suggestion);
        return { name, port, suggestion };
      })));
    }

    // ---- environment ---------------------------------------------------------------------------
    const env = new LocalEnv(
      await readEnvFile(opts.envFile, { required: opts.envFileExplicit }),
      Deno.env.toObject(),
    );
    const real = env.usesRealCafe24;
    const fromUser = new Set(
      ["CRON_SECRET", "CAFE24_REDIRECT_URI"].filter((name) => env.has(name)),
    );
    env.fallback("CRON_SECRET", randomSecret(), { generated: true });
    env.fallback("CAFE24_OAUTH_STATE_SECRET", randomSecret(), { generated: true });
    const tokenRing = await applyTokenRing(env, opts.dataDir);
    // What hands out sessions and live tokens (the settings page's sign-in, the sandbox's control
    // API) wants this start's token, which only stack.json (mode 0600) holds.
    const controlToken = newControlToken();

    // ---- PostgreSQL: kept between runs, so fsync stays on (fast: false) ------------------------
    checkpoint();
    if (location.note !== null && pgDir !== `${opts.dataDir}/postgres`) {
      const owner = await postgresUser();
      if (owner === null) throw new Error("there is no 'postgres' OS user to run the cluster as");
      await prepareFallbackParent(pgDir, owner);
    }
    const fresh = !(await Deno.stat(`${pgDir}/PG_VERSION`).then(() => true, () => false));
    if (tokenRing === "created" && !fresh) {
      complain(p.yellow(
        `${shown(tokenRingPath(opts.dataDir))} was missing and is new: tokens the database ` +
          `holds from before cannot be read with it (restore the old file, or --reset)`,
      ));
    }
    say(p.dim(fresh ? `creating the database in ${pgDir} …` : "starting the database …"));
    const cluster = await startPostgresCluster({
      dataDir: pgDir,
      keep: true,
      fast: false,
      ...(opts.ports.db === 0 ? {} : { port: opts.ports.db }),
    });
    cleanups.push({ name: "PostgreSQL", run: () => cluster.stop() });
    const dbUrl = cluster.dbUrl;
    await writePgpass(`${opts.dataDir}/pgpass`, dbUrl);
    const db = postgres(dbUrl, { prepare: false, max: 4, onnotice: () => {} });
    cleanups.push({ name: "the database connection", run: () => db.end({ timeout: 5 }) });
    checkpoint();
    await applyStandIns(db);
    say(p.dim("applying migrations with the pinned Supabase CLI …"));
    await applyMigrations(dbUrl);
    checkpoint();

    // ---- the project URL (gateway) and the local Auth stand-in ---------------------------------
    let functionsOrigin = "http://127.0.0.1:9"; // until the functions listen
    let jwks: unknown = { keys: [] };
    const gateway: Gateway = await startGateway({
      hostname: HOST,
      port: opts.ports.functions,
      functionsOrigin: () => functionsOrigin,
      jwks: () => jwks,
      extraHosts: redirectHosts(env.get("CAFE24_REDIRECT_URI")),
    });
    cleanups.push({ name: "the gateway", run: () => gateway.close() });
    const projectUrl = gateway.url;
    const auth = await createLocalAuth(projectUrl);
    jwks = auth.jwks;
    env.force("SUPABASE_URL", projectUrl);
    env.force("SUPABASE_DB_URL", dbUrl);
    // Sent as `apikey` with the JWKS request; the local gateway does not check it.
    env.fallback("SUPABASE_ANON_KEY", "local-anon-key");
    env.fallback("CAFE24_REDIRECT_URI", `${projectUrl}/functions/v1/cafe24-callback`);

    // ---- Cafe24: the real one, or the sandbox with the demo malls ------------------------------
    let sandbox: Cafe24Sandbox | undefined;
    if (real) {
      env.force("CAFE24_API_BASE_URL", REAL_CAFE24_BASE_URL);
      // The demo's tokens exist only in a sandbox: never send them to the real Cafe24.
      await removeDemoConnections(db);
    } else {
      env.force("CAFE24_CLIENT_ID", SANDBOX_CLIENT_ID);
      env.force("CAFE24_CLIENT_SECRET_KEY", SANDBOX_CLIENT_SECRET);
      env.fallback("CAFE24_SCOPES", SANDBOX_SCOPES);
      try {
        sandbox = await startCafe24Sandbox({
          clientId: SANDBOX_CLIENT_ID,
          clientSecret: SANDBOX_CLIENT_SECRET,
          hostname: HOST,
          port: opts.ports.sandbox,
          controlToken,
          redirectUri: env.get("CAFE24_REDIRECT_URI")!,
          seed: 1,
          quiet: true,
          // As at Cafe24, the mall's operator approves (or denies) on a page of Cafe24's own.
          consentPage: true,
        });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(
          `the Cafe24 sandbox could not listen on port ${opts.ports.sandbox}: ${message}`,
        );
      }
      const box = sandbox;
      cleanups.push({ name: "the Cafe24 sandbox", run: () => box.close() });
      env.force("CAFE24_API_BASE_URL", box.baseUrlTemplate);
    }
    const config = loadConfig(env.values, []);
    if (!config.ok) {
      throw new Error(
        `invalid values in ${opts.envFile} or the environment: ${config.names.join(", ")} ` +
          "(see .env.example)",
      );
    }
    const demo = sandbox === undefined
      ? []
      : await seedDemoConnections(db, sandbox, config.config.CAFE24_REFRESH_MARGIN_SECONDS * 1000);
    checkpoint();

    // ---- the settings page: its own origin; Cafe24 connections come back to it ----------------
    let page: ReturnType<typeof startLocalSettingsPage>;
    try {
      page = startLocalSettingsPage({
        hostname: HOST,
        port: opts.ports.settings,
        supabaseUrl: projectUrl,
        anonKey: env.get("SUPABASE_ANON_KEY")!,
        auth,
        demo,
        scopes: env.get("CAFE24_SCOPES") ?? "",
        controlToken,
      });
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
      const port = opts.ports.settings;
      throw new Error(busyPortsMessage([{
        name: "settings",
        port,
        suggestion: nextFreePort(port, Object.values(opts.ports)),
      }]));
    }
    cleanups.push({ name: "the settings page", run: () => page.close() });
    env.fallback("CAFE24_APP_RETURN_URL", page.url);

    // ---- the functions -------------------------------------------------------------------------
    const log = await Deno.open(logPath, { append: true, create: true, mode: 0o600 });
    cleanups.push({ name: "the functions log", run: () => Promise.resolve(log.close()) });
    const functions = await spawnFunctions(env.values, functionsOutput(log));
    cleanups.push({ name: "the functions", run: () => functions.stop() });
    functionsOrigin = functions.origin;
    forceStop = () => functions.kill();
    checkpoint();

    // ---- the schedule: Vault secrets, every minute, the pg_net stand-in ------------------------
    await setVaultSecret(db, "cafe24_project_url", projectUrl);
    await setVaultSecret(db, "cafe24_cron_secret", env.get("CRON_SECRET")!);
    const [job] = await db<{ command: string }[]>`
      select command from cron.job where jobname = 'cafe24-refresh'`;
    if (job === undefined) {
      throw new Error("the migrations did not register the cafe24-refresh job");
    }
    // The migration's own job and command; only the schedule is local.
    await db`select cron.schedule('cafe24-refresh', '* * * * *', ${job.command})`;
    await db`update cron.job set active = true where jobname = 'cafe24-refresh'`;
    // Requests queued before this start carry the previous session's secret and URL.
    await db`delete from net.http_request_queue`;
    const deliverer: NetDeliverer = startNetDeliverer(dbUrl);
    const netWorker = await deliverer.worker();
    cleanups.push({
      name: netWorker === "stand-in" ? "the pg_net stand-in" : "the pg_net watcher",
      run: () => deliverer.stop(),
    });
    const [clock] = await db<{ now: Date }[]>`select now()`;
    const readyAt = clock!.now;

    const session: Session = {
      opts,
      env,
      real,
      fresh,
      tokenRing,
      dbUrl,
      pgDir,
      pgDirNote: location.note,
      projectUrl,
      sandbox,
      demo,
      functions,
      postgresPid: await postmasterPid(pgDir),
      auth,
      settingsPageUrl: page.launchUrl,
      fromUser,
      netWorker,
      readyMs: Date.now() - startedAt,
    };
    const user = await localUser(session);
    const commands = tryCommands(session, user);
    const info: StackInfo = {
      started_at: new Date().toISOString(),
      data_dir: opts.dataDir,
      postgres_dir: pgDir,
      db_url: dbUrl,
      supabase_url: projectUrl,
      mode: real ? "real" : "sandbox",
      cafe24_api_base_url: env.get("CAFE24_API_BASE_URL")!,
      sandbox_url: sandbox?.url ?? null,
      cron_secret: env.get("CRON_SECRET")!,
      control_token: controlToken,
      settings_page_url: page.launchUrl,
      local_user: {
        email: user.email,
        jwt: user.jwt,
        expires_at: user.expiresAt,
        authorize_url: user.browserUrl,
      },
      try: commands.lines,
      pids: { start: Deno.pid, functions: functions.pid, postgres: session.postgresPid },
    };
    await writeStackInfo(opts.dataDir, info);
    cleanups.push({ name: "stack.json", run: () => removeStackInfo(opts.dataDir) });

    const watcher = await createWatcher(db, readyAt, {
      envFile: shown(opts.envFile),
      log: shown(logPath),
    });
    printGuide(session, commands.printed, watcher.rows());

    // ---- live ----------------------------------------------------------------------------------
    const deadline = Date.now() + opts.onceTimeoutMs;
    let onceRun: RunRow | null = null;
    while (!stopRequested) {
      try {
        const { finished, tableDue } = await watcher.poll();
        if (tableDue) say(connectionTable(watcher.rows(), Date.now(), p));
        onceRun ??= finished.find((run) => run.trigger === "cron") ?? null;
      } catch (error) {
        say(p.red(`status query failed: ${error instanceof Error ? error.message : error}`));
        say(p.dim(`          → is PostgreSQL still running? Its log: ${shown(cluster.logFile)}`));
      }
      if (opts.once && onceRun !== null) break;
      if (opts.once && Date.now() > deadline) {
        complain(p.red(`no cron-driven run finished within ${opts.onceTimeoutMs / 1000} s`));
        await shutdown();
        return 1;
      }
      await Promise.race([stopSignal, new Promise((resolve) => setTimeout(resolve, POLL_MS))]);
    }
    if (opts.once && onceRun !== null) {
      say();
      say(p.bold("Summary of the first cron-driven run"));
      say(JSON.stringify(orderedSummary({ ...onceRun.summary }), null, 2));
    }
    say(p.dim("\nstopping …"));
    await shutdown();
    for (
      const line of stopLines({
        sandbox: !real,
        netWorker,
        pgDir: shown(pgDir),
        kb: await diskUsageKb(pgDir),
      })
    ) say(p.dim(line));
    return opts.once && onceRun?.status !== "finished" ? 1 : 0;
  } catch (error) {
    await shutdown();
    if (error instanceof Interrupted) {
      say(p.dim("stopped during start-up"));
      return 130;
    }
    complain(p.red(`npm start failed: ${error instanceof Error ? error.message : error}`));
    return 1;
  } finally {
    for (const signal of STOP_SIGNALS) Deno.removeSignalListener(signal, onSignal);
  }
}

if (import.meta.main) Deno.exit(await main());
