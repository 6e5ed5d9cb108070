/**
 * `npm start`: the whole system on one machine, without Docker.
 *
 *   PostgreSQL 15 + pg_cron   <data dir>/postgres, port 54322, kept between runs (--reset wipes it),
 *                             with the Supabase stand-ins and the migrations (pinned Supabase CLI)
 *   functions                 http://127.0.0.1:54321/functions/v1/<name> (local/functions/serve.ts)
 *   Cafe24                    the sandbox on :54329 with demo malls, or the real Cafe24 when .env
 *                             holds real credentials
 *   schedule                  the migration's pg_cron job, every minute here, through Vault and the
 *                             pg_net stand-in to cafe24-refresh
 *
 * Prints each refresh run as it happens and the connections' status. Ctrl-C stops everything it
 * started. `--once`: wait for the first cron-driven run, print it, stop, exit.
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
import { type FunctionsProcess, spawnFunctions } from "../local/functions/process.ts";
import { type Gateway, startGateway } from "../local/functions/gateway.ts";
import {
  checkMachine,
  confirm,
  INSTALL_FIX,
  installPackages,
  isDebian,
} from "../local/stack/preflight.ts";
import {
  colourWanted,
  connectionTable,
  orderedSummary,
  paint,
  readConnections,
  runFinishedLines,
  type RunRow,
  runStartedLine,
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
  writeStackInfo,
} from "../local/stack/stack_info.ts";

const USAGE = `npm start -- [options]

Runs PostgreSQL with pg_cron, the Edge Functions, the Cafe24 sandbox and the real pg_cron
schedule on this machine, and shows every refresh run as it happens. Ctrl-C stops everything.

  --once                 wait for the first cron-driven run, print it and the status, stop, exit 0
  --reset                wipe the local database first (the data dir's postgres/ folder)
  --data-dir DIR         where the cluster, logs and stack.json live (default: .local)
  --env-file PATH        variables for the functions (default: .env; see .env.example)
  --db-port N            PostgreSQL port (default ${DEFAULT_PORTS.db}; 0 = any free port)
  --functions-port N     functions / API port (default ${DEFAULT_PORTS.functions}; 0 = any free)
  --sandbox-port N       Cafe24 sandbox port (default ${DEFAULT_PORTS.sandbox}; 0 = any free)
  --once-timeout S       --once gives up after S seconds (default 150)
  --install-missing      Debian, as root: apt-get install PostgreSQL 15 and pg_cron if missing
  -h, --help             this text`;

const HOST = "127.0.0.1";
const SANDBOX_SCOPES = "mall.read_store,mall.read_community";
const POLL_MS = 1_000;

class UsageError extends Error {}
class Interrupted extends Error {}

interface Options {
  once: boolean;
  reset: boolean;
  dataDir: string;
  envFile: string;
  envFileExplicit: boolean;
  ports: { db: number; functions: number; sandbox: number };
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
    },
    onceTimeoutMs: timeout * 1000,
    installMissing: values["install-missing"] ?? false,
  };
}

const p = paint(colourWanted(Deno.stdout));
const say = (line = "") => console.log(line);

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

function portFree(port: number): boolean {
  if (port === 0) return true;
  try {
    Deno.listen({ hostname: HOST, port }).close();
    return true;
  } catch {
    return false;
  }
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
  console.error(p.red("The local stack needs PostgreSQL 15 with pg_cron:"));
  for (const problem of check.problems) console.error(`  - ${problem}`);
  const debianRoot = Deno.uid() === 0 && (await isDebian());
  if (debianRoot) {
    const install = options.installMissing ||
      (await confirm(`Install them now with apt-get (${INSTALL_FIX.replace(/^sudo /, "")})?`));
    if (install) {
      if (await installPackages()) {
        check = await checkMachine();
        if (check.ok) return true;
        for (const problem of check.problems) console.error(`  - ${problem}`);
      }
      console.error(p.red("The installation did not complete."));
    }
  }
  console.error(`\nInstall them with:\n\n  ${INSTALL_FIX}\n`);
  if (debianRoot && !options.installMissing) {
    console.error("or let npm start do it: npm start -- --install-missing\n");
  }
  console.error("(Elsewhere: any PostgreSQL 15 with pg_cron; PG_BINDIR points at its bin/.)");
  return false;
}

/** Stops what an earlier, killed `npm start` left running on this data dir. */
async function clearLeftovers(dataDir: string, pgDir: string): Promise<void> {
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
  const pid = await postmasterPid(pgDir);
  if (pid !== null && processAlive(pid) && processCommandLine(pid).includes("postgres")) {
    Deno.kill(pid, "SIGINT"); // fast shutdown
    if (!(await waitUntil(() => !processAlive(pid), 60_000))) {
      throw new Error(`PostgreSQL (pid ${pid}) left by an earlier run did not stop`);
    }
    say(p.dim(`stopped a PostgreSQL left running by an earlier run (pid ${pid})`));
  }
  await removeStackInfo(dataDir);
}

async function setVaultSecret(sql: postgres.Sql, name: string, value: string): Promise<void> {
  const [existing] = await sql<{ id: string }[]>`select id from vault.secrets where name = ${name}`;
  if (existing) await sql`select vault.update_secret(${existing.id}::uuid, ${value})`;
  else await sql`select vault.create_secret(${value}, ${name})`;
}

interface Watcher {
  poll(): Promise<RunRow[]>;
}

/** Prints new and finished runs, pg_net failures and failed cron jobs since `since`. */
async function createWatcher(sql: postgres.Sql, since: Date): Promise<Watcher> {
  const printed = new Map<string, string>();
  const [marks] = await sql<{ response: string; cron: string }[]>`
    select
      (select coalesce(max(id), 0) from net._http_response)::text as response,
      (select coalesce(max(runid), 0) from cron.job_run_details)::text as cron`;
  let lastResponse = BigInt(marks!.response);
  let lastCronRun = BigInt(marks!.cron);

  return {
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
          for (const line of runFinishedLines(run, malls, p)) say(line);
          finished.push(run);
        }
        printed.set(run.id, run.status);
      }

      const responses = await sql<
        {
          id: string;
          status_code: number | null;
          content: string | null;
          timed_out: boolean | null;
          error_msg: string | null;
        }[]
      >`
        select id::text as id, status_code, content, timed_out, error_msg from net._http_response
        where id > ${lastResponse.toString()}::bigint order by id`;
      for (const response of responses) {
        lastResponse = BigInt(response.id);
        if (response.status_code !== null && response.status_code < 300) continue;
        let detail = response.error_msg ?? "";
        if (response.status_code !== null) {
          let code = "";
          try {
            code = String((JSON.parse(response.content ?? "") as { error?: unknown }).error ?? "");
          } catch { /* not JSON */ }
          detail = `HTTP ${response.status_code}${code === "" ? "" : ` ${code}`}`;
        }
        say(
          `${p.dim(new Date().toTimeString().slice(0, 8))}  pg_net request ${response.id} ` +
            p.red(response.timed_out ? `timed out (${detail})` : detail),
        );
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
          say(
            `${p.dim(new Date().toTimeString().slice(0, 8))}  pg_cron job cafe24-refresh ` +
              p.red(`failed: ${cronRun.return_message ?? "(no message)"}`),
          );
        }
      }
      return finished;
    },
  };
}

/** Everything the guide printed at start-up needs to know. */
interface Session {
  opts: Options;
  env: LocalEnv;
  real: boolean;
  fresh: boolean;
  dbUrl: string;
  projectUrl: string;
  sandbox: Cafe24Sandbox | undefined;
  demo: DemoConnection[];
  functions: FunctionsProcess;
  postgresPid: number | null;
  auth: LocalAuth;
  /** Names whose value came from .env or the shell rather than from this stack. */
  fromUser: Set<string>;
}

/** The banner: what runs where, commands to try, and the connections. */
async function printGuide(s: Session, db: postgres.Sql): Promise<void> {
  const { opts, env, functions: fn } = s;
  const relData = opts.dataDir.startsWith(PROJECT_ROOT + "/")
    ? opts.dataDir.slice(PROJECT_ROOT.length + 1)
    : opts.dataDir;
  const row = (label: string, text: string) => say(`  ${label.padEnd(11)} ${text}`);
  say();
  say(p.bold("Cafe24 connector — local stack"));
  row(
    "database",
    `${s.dbUrl}  ${
      p.dim(`(${relData}/postgres, ${s.fresh ? "new" : "reused"}; --reset wipes it)`)
    }`,
  );
  row("functions", `${s.projectUrl}/functions/v1/{${fn.names.join(",")}}`);
  row(
    "cafe24",
    s.real
      ? `${p.yellow("REAL")} ${REAL_CAFE24_BASE_URL} (credentials from ${opts.envFile})`
      : `sandbox ${s.sandbox!.baseUrlTemplate}  ${p.dim(`(${s.demo.length} demo connections)`)}`,
  );
  row("schedule", "pg_cron 'cafe24-refresh' every minute → pg_net stand-in → cafe24-refresh");
  row("logs", `${relData}/functions.log  ${p.dim("(JSON lines from the functions)")}`);
  say(p.dim(
    `  pids        start=${Deno.pid} functions=${fn.pid} postgres=${s.postgresPid ?? "?"}`,
  ));
  if (env.generated.length > 0) {
    say(
      p.dim(`  generated   ${env.generated.join(", ")} for this session (not in ${opts.envFile})`),
    );
  }
  if (env.replaced.length > 0) {
    say(p.dim(`  local       ${env.replaced.join(", ")} replaced by this stack's values`));
  }
  if (s.real && !s.fromUser.has("CAFE24_REDIRECT_URI")) {
    say(p.yellow(
      `  note        CAFE24_REDIRECT_URI is not set: using ${env.get("CAFE24_REDIRECT_URI")}, ` +
        "which the real Cafe24 accepts only if registered (HTTPS: use a tunnel)",
    ));
  }

  say();
  say(p.bold("Try"));
  // A secret from .env or the shell may be shared with a deployment: referenced, never printed.
  const cronSecretFromUser = s.fromUser.has("CRON_SECRET");
  if (cronSecretFromUser) {
    say(`  set -a; . ${shellQuote(opts.envFile)}; set +a    # CRON_SECRET into your shell`);
  }
  const secretHeader = cronSecretFromUser
    ? `"x-cron-secret: $CRON_SECRET"`
    : shellQuote(`x-cron-secret: ${env.get("CRON_SECRET")}`);
  const refreshUrl = shellQuote(`${s.projectUrl}/functions/v1/cafe24-refresh?force=true`);
  say(`  curl -sS -X POST ${refreshUrl} -H ${secretHeader}`);
  const cliFlags = opts.dataDir === DEFAULT_DATA_DIR
    ? ""
    : ` --data-dir ${shellQuote(opts.dataDir)}`;
  const laterMall = s.demo.find((d) => d.expect === "refresh_later")?.mallId ?? "<mall_id>";
  say(`  npm run refresh --${cliFlags} --mall ${laterMall} --force`);
  say(`  psql ${s.dbUrl} -c 'select * from cafe24_private.connection_status'`);
  if (fn.names.includes("cafe24-authorize")) await printAuthorize(s, relData);

  say();
  say(p.bold("Connections"));
  say(connectionTable(await readConnections(db), Date.now(), p));
  say();
  say(p.dim(
    opts.once
      ? "Waiting for the first cron-driven run (pg_cron fires at the start of each minute) …"
      : "Runs appear below as they happen (pg_cron fires at the start of each minute). " +
        "Ctrl-C stops everything.",
  ));
}

/** How to connect a mall: a user token for the local Auth stand-in, and a ready authorize URL. */
async function printAuthorize(s: Session, relData: string): Promise<void> {
  // With the sandbox: reconnect the demo mall whose refresh token is dead, as its owner.
  const target = s.demo.find((d) => d.expect === "reconnect_required");
  const user = target === undefined
    ? { id: "00000000-0000-4000-b000-0000000000ff", email: "developer@demo.local" }
    : { id: target.userId, email: target.email };
  const mallId = target?.mallId ?? "<your mall_id>";
  const token = await s.auth.mintUserToken(user);
  const authorize = `${s.projectUrl}/functions/v1/cafe24-authorize?mall_id=${mallId}&mode=json`;
  say(`  # connect a mall as user ${user.email} (token valid 24 h, this session only):`);
  say(`  export LOCAL_USER_JWT=${token}`);
  say(`  curl -sS -H "Authorization: Bearer $LOCAL_USER_JWT" ${shellQuote(authorize)}`);
  if (target === undefined) return;
  try {
    const response = await fetch(authorize, { headers: { authorization: `Bearer ${token}` } });
    const body = await response.json().catch(() => null) as { url?: unknown } | null;
    if (response.ok && typeof body?.url === "string") {
      say(`  # or open this in a browser within 10 min to reconnect ${mallId}:`);
      say(`  ${body.url}`);
    } else {
      say(
        p.yellow(`  (cafe24-authorize answered ${response.status}; see ${relData}/functions.log)`),
      );
    }
  } catch {
    say(p.yellow("  (cafe24-authorize did not answer)"));
  }
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

async function main(): Promise<number> {
  let options: Options | "help";
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${USAGE}`);
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

  // From here on, Ctrl-C stops what has started so far (between steps during start-up), or
  // everything once running. A second Ctrl-C kills the functions instead of waiting for them.
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
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const checkpoint = () => {
    if (stopRequested) throw new Interrupted();
  };

  const pgDir = `${opts.dataDir}/postgres`;
  const logPath = `${opts.dataDir}/functions.log`;
  const cleanups: { name: string; run: () => Promise<void> }[] = [];
  const shutdown = async () => {
    for (const step of cleanups.reverse()) {
      try {
        await step.run();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        console.error(p.red(`could not stop ${step.name}: ${message}`));
      }
    }
    cleanups.length = 0;
  };

  try {
    await Deno.mkdir(opts.dataDir, { recursive: true });
    await clearLeftovers(opts.dataDir, pgDir);
    if (opts.reset) {
      await Deno.remove(pgDir, { recursive: true }).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      await Deno.remove(logPath).catch(() => {});
      say(p.dim(`--reset: removed ${pgDir}`));
    }
    const busy = Object.entries(opts.ports).filter(([, port]) => !portFree(port));
    if (busy.length > 0) {
      throw new Error(
        busy.map(([name, port]) => `port ${port} (${name}) is in use; pass --${name}-port N`)
          .join("\n") + "\n(a `supabase start` or another npm start may hold it)",
      );
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

    // ---- PostgreSQL: kept between runs, so fsync stays on (fast: false) ------------------------
    checkpoint();
    const fresh = !(await Deno.stat(`${pgDir}/PG_VERSION`).then(() => true, () => false));
    say(p.dim(fresh ? `creating the database in ${pgDir} …` : "starting the database …"));
    const cluster = await startPostgresCluster({
      dataDir: pgDir,
      keep: true,
      fast: false,
      ...(opts.ports.db === 0 ? {} : { port: opts.ports.db }),
    });
    cleanups.push({ name: "PostgreSQL", run: () => cluster.stop() });
    const dbUrl = cluster.dbUrl;
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
          redirectUri: env.get("CAFE24_REDIRECT_URI")!,
          seed: 1,
          quiet: true,
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
    cleanups.push({ name: "the pg_net stand-in", run: () => deliverer.stop() });
    const [clock] = await db<{ now: Date }[]>`select now()`;
    const readyAt = clock!.now;

    const postgresPid = await postmasterPid(pgDir);
    const info: StackInfo = {
      started_at: new Date().toISOString(),
      data_dir: opts.dataDir,
      db_url: dbUrl,
      supabase_url: projectUrl,
      mode: real ? "real" : "sandbox",
      cafe24_api_base_url: env.get("CAFE24_API_BASE_URL")!,
      sandbox_url: sandbox?.url ?? null,
      pids: { start: Deno.pid, functions: functions.pid, postgres: postgresPid },
    };
    await writeStackInfo(opts.dataDir, info);
    cleanups.push({ name: "stack.json", run: () => removeStackInfo(opts.dataDir) });

    await printGuide({
      opts,
      env,
      real,
      fresh,
      dbUrl,
      projectUrl,
      sandbox,
      demo,
      functions,
      postgresPid,
      auth,
      fromUser,
    }, db);

    // ---- live ----------------------------------------------------------------------------------
    const watcher = await createWatcher(db, readyAt);
    const deadline = Date.now() + opts.onceTimeoutMs;
    let onceRun: RunRow | null = null;
    while (!stopRequested) {
      let finished: RunRow[] = [];
      try {
        finished = await watcher.poll();
      } catch (error) {
        say(p.red(`status query failed: ${error instanceof Error ? error.message : error}`));
      }
      const changed = finished.some((run) =>
        run.status !== "finished" || (run.summary?.refreshed ?? 0) > 0 ||
        (run.summary?.failed ?? 0) > 0
      );
      if (changed) {
        say(connectionTable(await readConnections(db).catch(() => []), Date.now(), p));
      }
      onceRun ??= finished.find((run) => run.trigger === "cron") ?? null;
      if (opts.once && onceRun !== null) break;
      if (opts.once && Date.now() > deadline) {
        console.error(p.red(`no cron-driven run finished within ${opts.onceTimeoutMs / 1000} s`));
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
    say(p.dim(`stopped: functions,${real ? "" : " Cafe24 sandbox,"} pg_net stand-in, PostgreSQL`));
    return opts.once && onceRun?.status !== "finished" ? 1 : 0;
  } catch (error) {
    await shutdown();
    if (error instanceof Interrupted) {
      say(p.dim("stopped during start-up"));
      return 130;
    }
    console.error(p.red(`npm start failed: ${error instanceof Error ? error.message : error}`));
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) Deno.exit(await main());
