/**
 * Throwaway PostgreSQL 15 clusters for tests: initdb into a temp dir, start with pg_cron preloaded,
 * listen on 127.0.0.1 only, stop (and delete) in the caller's `finally`.
 *
 * Every connection needs the cluster's password (scram-sha-256 in pg_hba.conf, never `trust`):
 * other users and programs on the machine must not get a superuser session, which could read the
 * stored tokens and run programs as the cluster's OS user. The password is random per cluster; a
 * kept cluster keeps it in `harness.password` (mode 0600) inside its data dir.
 *
 * Which PostgreSQL: the one `PG_BINDIR` names (a directory holding initdb, pg_ctl and postgres),
 * else the one `pg_config` on the PATH reports, else Debian's PostgreSQL 15. Where that
 * installation also ships Supabase's pg_net or supabase_vault, they are preloaded too (see
 * SUPABASE_LIBRARIES), and local/supabase/stand_ins.sql then creates them instead of stand-ins.
 *
 * Nothing is registered globally (no unload hooks, no signal handlers): whoever starts a cluster
 * stops it. As root the cluster runs as the unprivileged `postgres` OS user via `runuser`, since
 * initdb and postgres refuse to run as root.
 */

import { childrenOf, processAlive } from "../processes.ts";
import { isExecutable, pathExists } from "../files.ts";

export interface PostgresClusterOptions {
  /** Data directory. Default: `data/` inside a fresh temp dir, removed on stop. */
  dataDir?: string;
  /** TCP port on 127.0.0.1. Default: a free port. */
  port?: number;
  /** Reuse an existing initialized `dataDir` (or initialize it), and don't delete it on stop. */
  keep?: boolean;
  /** fsync=off, full_page_writes=off. Default true: crash-safety of the machine is irrelevant
   * for test data. (synchronous_commit stays on: kill() must not lose acknowledged commits.) */
  fast?: boolean;
  cronIntervalNote?: never;
  /** Libraries preloaded next to pg_cron, e.g. `["pg_stat_statements"]` (the benchmark's
   * statement counts). */
  preloadLibraries?: string[];
  /** Extra postgresql.conf settings, written after the harness's own (so they win). Strings are
   * quoted; numbers and booleans are written as they are. */
  settings?: Record<string, string | number | boolean>;
}

export interface PostgresCluster {
  /** postgresql://postgres:PASSWORD@127.0.0.1:PORT/postgres */
  dbUrl: string;
  /** The `postgres` role's password (random, hex). */
  password: string;
  port: number;
  dataDir: string;
  logFile: string;
  /** Fast shutdown. Idempotent. Deletes the temp dir unless `keep`. */
  stop(): Promise<void>;
  /** Stop (default mode "fast") and start again on the same port with the same data. Also starts a
   * cluster that was kill()ed (crash recovery). */
  restart(options?: { mode?: "fast" | "immediate" }): Promise<void>;
  /** SIGKILL the postmaster and all of its children (a hard crash). restart() recovers; stop()
   * cleans up. */
  kill(): Promise<void>;
}

const INSTALL_FIX = "apt-get install -y postgresql-15 postgresql-15-cron";
/** The environment variable that picks another PostgreSQL installation: its `bin/` directory. */
export const PG_BINDIR_VARIABLE = "PG_BINDIR";
const DEFAULT_BINDIR = "/usr/lib/postgresql/15/bin";
const DEFAULT_SHAREDIR = "/usr/share/postgresql/15";
const RUN_AS = "postgres";
const HARNESS_CONF = "harness.conf";
const PASSWORD_FILE = "harness.password";
const VAULT_KEY_SCRIPT = "vault_root_key.sh";
const MAX_SOCKET_PATH = 100; // sun_path is 108 bytes; leave room for the terminator.

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function join(...parts: string[]): string {
  return parts.join("/").replace(/\/+/g, "/");
}

function dirname(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const i = trimmed.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  return trimmed.slice(0, i);
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : join(Deno.cwd(), path);
}

/** Runs a command with the parent's environment (it carries certificate settings etc.). `input`
 * goes to its stdin (a secret never goes on a command line, where any user can read it). */
async function run(cmd: string, args: string[], input?: string): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: "/",
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** 16 random bytes as hex: safe in a URL, a pgpass line and a SQL literal as it is. */
function randomPassword(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Only from `postgres` connections over TCP or the socket, and only with the password. */
const PG_HBA = [
  "# Written by local/postgres/cluster.ts on every start: do not edit.",
  "local all all scram-sha-256",
  "host all all 127.0.0.1/32 scram-sha-256",
  "host all all ::1/128 scram-sha-256",
].join("\n") + "\n";

async function tryPgConfig(pgConfig: string, flag: string): Promise<string | null> {
  try {
    const r = await run(pgConfig, [flag]);
    const v = r.stdout.trim();
    return r.code === 0 && v !== "" ? v : null;
  } catch {
    return null; // not installed
  }
}

interface PgInstall {
  bindir: string;
  sharedir: string;
  pkglibdir: string | null;
  /** Supabase extensions this installation ships, in SUPABASE_LIBRARIES order. */
  supabaseLibraries: string[];
}

/** The PostgreSQL `bin/` directory chosen through PG_BINDIR, if any. */
export function pgBindirOverride(): string | undefined {
  return Deno.env.get(PG_BINDIR_VARIABLE) || undefined;
}

/**
 * Supabase's extensions that only work preloaded: pg_net starts its background worker from
 * shared_preload_libraries (CREATE EXTENSION fails otherwise), and supabase_vault reads its root
 * key at server start. Each is preloaded when the installation has its library and control file,
 * which is also what makes pg_available_extensions list it.
 */
const SUPABASE_LIBRARIES = ["pg_net", "supabase_vault"];

async function shippedLibraries(
  sharedir: string,
  pkglibdir: string | null,
  names: string[],
): Promise<string[]> {
  const shipped: string[] = [];
  for (const name of names) {
    const control = await pathExists(join(sharedir, "extension", `${name}.control`));
    const library = pkglibdir === null || (await pathExists(join(pkglibdir, `${name}.so`)));
    if (control && library) shipped.push(name);
  }
  return shipped;
}

/**
 * supabase_vault reads its root key (64 hex digits) at server start from a script's output. Each
 * cluster gets its own random key, written once into its data directory, so a kept cluster still
 * decrypts its secrets after a restart. Returns the settings that point the server at it.
 */
async function vaultKeySettings(
  dataDir: string,
  chown: (path: string) => Promise<void>,
): Promise<string[]> {
  const script = join(dataDir, VAULT_KEY_SCRIPT);
  if (!(await pathExists(script))) {
    const key = Array.from(
      crypto.getRandomValues(new Uint8Array(32)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    await Deno.writeTextFile(
      script,
      `#!/bin/sh\n# This cluster's Vault root key, local only (local/postgres/cluster.ts).\n` +
        `echo ${key}\n`,
      { mode: 0o700 },
    );
    await Deno.chmod(script, 0o700);
    await chown(script);
  }
  return [`vault.getkey_script = ${sqlString(script)}`];
}

/** Which of pg_net and supabase_vault the PostgreSQL installation in use ships (and so preloads). */
export async function installedSupabaseLibraries(): Promise<string[]> {
  return (await locatePostgres()).supabaseLibraries;
}

/** A program of the PostgreSQL installation the clusters run (e.g. `pg_dump`), from the same
 * `bin/` directory as their server: PG_BINDIR, else pg_config's, else Debian's PostgreSQL 15. */
export async function postgresBinary(name: string): Promise<string> {
  const { bindir } = await locatePostgres();
  const path = join(bindir, name);
  if (!(await isExecutable(path))) throw new Error(`${name} not found in ${bindir}`);
  return path;
}

async function locatePostgres(): Promise<PgInstall> {
  const override = pgBindirOverride();
  let bindir: string;
  let pgConfig: string;
  if (override) {
    bindir = override;
    pgConfig = join(override, "pg_config");
  } else {
    pgConfig = "pg_config";
    bindir = (await tryPgConfig(pgConfig, "--bindir")) ?? DEFAULT_BINDIR;
  }
  const missing: string[] = [];
  for (const bin of ["initdb", "pg_ctl", "postgres"]) {
    if (!(await isExecutable(join(bindir, bin)))) missing.push(bin);
  }
  if (missing.length > 0) {
    throw new Error(
      `PostgreSQL 15 server binaries not found: ${missing.join(", ")} missing in ${bindir}` +
        `${override ? ` (from ${PG_BINDIR_VARIABLE})` : ""}. Install them (as root) with:\n\n` +
        `${INSTALL_FIX}\n\nor point ${PG_BINDIR_VARIABLE} at a directory holding initdb, pg_ctl ` +
        `and postgres.`,
    );
  }
  const sharedir = (await tryPgConfig(pgConfig, "--sharedir")) ?? DEFAULT_SHAREDIR;
  const pkglibdir = await tryPgConfig(pgConfig, "--pkglibdir");
  const candidates = [join(sharedir, "extension", "pg_cron.control")];
  if (sharedir !== DEFAULT_SHAREDIR) {
    candidates.push(join(DEFAULT_SHAREDIR, "extension", "pg_cron.control"));
  }
  let found = false;
  for (const c of candidates) {
    if (await pathExists(c)) found = true;
  }
  if (found && pkglibdir !== null && !(await pathExists(join(pkglibdir, "pg_cron.so")))) {
    found = false;
  }
  if (!found) {
    throw new Error(
      `pg_cron is not installed for this PostgreSQL (looked for ${candidates.join(", ")}` +
        `${pkglibdir !== null ? ` and ${join(pkglibdir, "pg_cron.so")}` : ""}). ` +
        `Install it (as root) with:\n\n${INSTALL_FIX}\n`,
    );
  }
  const supabaseLibraries = await shippedLibraries(sharedir, pkglibdir, SUPABASE_LIBRARIES);
  return { bindir, sharedir, pkglibdir, supabaseLibraries };
}

interface RunUser {
  /** Prefix that runs a command as the cluster's OS user. */
  wrap(cmd: string, args: string[]): [string, string[]];
  uid: number | null;
  gid: number | null;
}

async function resolveRunUser(): Promise<RunUser> {
  if (Deno.uid() !== 0) {
    return { wrap: (cmd, args) => [cmd, args], uid: null, gid: null };
  }
  const uid = await run("id", ["-u", RUN_AS]);
  const gid = await run("id", ["-g", RUN_AS]);
  if (uid.code !== 0 || gid.code !== 0) {
    throw new Error(
      `Running as root, but there is no '${RUN_AS}' OS user to run the cluster as ` +
        `(initdb/postgres refuse root). Install the server package, which creates it:\n\n` +
        `${INSTALL_FIX}\n`,
    );
  }
  return {
    wrap: (cmd, args) => ["runuser", ["-u", RUN_AS, "--", cmd, ...args]],
    uid: Number(uid.stdout.trim()),
    gid: Number(gid.stdout.trim()),
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

async function readPostmasterPid(dataDir: string): Promise<number | null> {
  try {
    const text = await Deno.readTextFile(join(dataDir, "postmaster.pid"));
    const pid = Number(text.split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return await cond();
}

async function acceptsConnections(port: number): Promise<boolean> {
  // A TCP connect succeeds as soon as the postmaster listens; pg_ctl -w has already waited for
  // the startup to finish. Check the port too, to be sure it is ours and on 127.0.0.1.
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

async function tail(path: string, lines = 30): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export async function startPostgresCluster(
  options: PostgresClusterOptions = {},
): Promise<PostgresCluster> {
  const pg = await locatePostgres();
  const user = await resolveRunUser();
  const keep = options.keep ?? false;
  const fast = options.fast ?? true;
  const preload = options.preloadLibraries ?? [];
  const extraSettings = options.settings ?? {};
  for (const name of [...Object.keys(extraSettings), ...preload]) {
    if (!/^[a-z_][a-z0-9_.]*$/.test(name)) throw new Error(`invalid setting or library ${name}`);
  }

  /** Directories we created and must delete on stop (unless keep). */
  const owned: string[] = [];
  const chown = async (path: string) => {
    if (user.uid !== null && user.gid !== null) await Deno.chown(path, user.uid, user.gid);
  };
  const pgRun = (bin: string, args: string[], input?: string) => {
    const [cmd, full] = user.wrap(join(pg.bindir, bin), args);
    return run(cmd, full, input);
  };
  /** Written by us, read by the cluster's OS user only. */
  const writePrivate = async (path: string, text: string) => {
    await Deno.writeTextFile(path, text, { mode: 0o600 });
    await Deno.chmod(path, 0o600);
    await chown(path);
  };

  let dataDir: string;
  let socketDir: string;
  let password: string;
  const supabaseSettings: string[] = [];
  try {
    if (options.dataDir === undefined) {
      const base = await Deno.makeTempDir({ prefix: "pgtest-" });
      if (!keep) owned.push(base);
      await chown(base);
      dataDir = join(base, "data");
      socketDir = base;
    } else {
      dataDir = absolute(options.dataDir);
      const initialized = await pathExists(join(dataDir, "PG_VERSION"));
      if (initialized && !keep) {
        throw new Error(
          `${dataDir} already holds a PostgreSQL cluster. Pass keep: true to reuse it, or ` +
            `remove it first.`,
        );
      }
      if (!(await pathExists(dataDir))) {
        await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
        if (!keep) owned.push(dataDir);
      }
      await chown(dataDir);
      await Deno.chmod(dataDir, 0o700);
      // The socket goes into the data dir's parent when the cluster's OS user owns it, else into
      // a sibling dir that we create for it.
      const parent = dirname(dataDir);
      const parentInfo = await Deno.stat(parent);
      const myUid = user.uid ?? Deno.uid();
      if (parentInfo.uid === myUid) {
        socketDir = parent;
      } else {
        socketDir = `${dataDir}.sock`;
        if (!(await pathExists(socketDir))) {
          await Deno.mkdir(socketDir, { mode: 0o700 });
          if (!keep) owned.push(socketDir);
        }
        await chown(socketDir);
      }
    }
    if (user.uid !== null) {
      // initdb would fail with a less helpful message.
      const probeDir = (await pathExists(dataDir)) ? dataDir : dirname(dataDir);
      const probe = await run("runuser", ["-u", RUN_AS, "--", "test", "-w", probeDir]);
      if (probe.code !== 0) {
        throw new Error(
          `The '${RUN_AS}' OS user cannot write to ${probeDir}: a parent directory is not ` +
            `traversable by it (e.g. mode 0700 and owned by root). Use a world-traversable ` +
            `location (chmod 755 the parents, or TMPDIR=/tmp for the default temp dir).`,
        );
      }
    }
    if (join(socketDir, ".s.PGSQL.65535.lock").length > MAX_SOCKET_PATH) {
      const short = await Deno.makeTempDir({ prefix: "pgsock-" });
      owned.push(short);
      await chown(short);
      socketDir = short;
    }

    const passwordFile = join(dataDir, PASSWORD_FILE);
    if (!(await pathExists(join(dataDir, "PG_VERSION")))) {
      password = randomPassword();
      // initdb wants an empty data dir, so its password file waits next to the socket, which the
      // cluster's OS user can read.
      const pwfile = join(socketDir, ".initdb-password");
      await writePrivate(pwfile, password + "\n");
      let init: RunResult;
      try {
        init = await pgRun("initdb", [
          "-D",
          dataDir,
          "-U",
          "postgres",
          "--auth=scram-sha-256",
          `--pwfile=${pwfile}`,
          "--encoding=UTF8",
          "--locale=C",
          "--no-sync",
          "--no-instructions",
        ]);
      } finally {
        await Deno.remove(pwfile).catch(() => {});
      }
      if (init.code !== 0) {
        throw new Error(`initdb failed (exit ${init.code}):\n${init.stderr}\n${init.stdout}`);
      }
      await writePrivate(passwordFile, password + "\n");
    } else if (await pathExists(passwordFile)) {
      password = (await Deno.readTextFile(passwordFile)).trim();
    } else {
      // A kept cluster from before passwords (it trusted every local connection): give it one,
      // in single-user mode, which needs no connection and so no authentication.
      password = randomPassword();
      const set = await pgRun(
        "postgres",
        ["--single", "-D", dataDir, "postgres"],
        `alter role postgres password '${password}';\n`,
      );
      if (set.code !== 0) {
        throw new Error(`could not set the cluster's password (exit ${set.code}):\n${set.stderr}`);
      }
      await writePrivate(passwordFile, password + "\n");
    }
    const mainConf = join(dataDir, "postgresql.conf");
    const include = `include_if_exists = '${HARNESS_CONF}'`;
    if (!(await Deno.readTextFile(mainConf)).includes(include)) {
      await Deno.writeTextFile(
        mainConf,
        `\n# Added by local/postgres/cluster.ts\n${include}\n`,
        { append: true },
      );
    }
    if (pg.supabaseLibraries.includes("supabase_vault")) {
      supabaseSettings.push(...(await vaultKeySettings(dataDir, chown)));
    }
  } catch (e) {
    for (const dir of owned.reverse()) await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }

  const logFile = join(dataDir, "harness.log");
  const explicitPort = options.port;
  let port = explicitPort ?? freePort();
  let running = false;
  let stopped = false;

  const writeConf = async () => {
    const lines = [
      "# Written by local/postgres/cluster.ts on every start: do not edit.",
      `listen_addresses = '127.0.0.1'`,
      `port = ${port}`,
      `unix_socket_directories = ${sqlString(socketDir)}`,
      `max_connections = 200`,
      `shared_preload_libraries = ${
        sqlString([...new Set(["pg_cron", ...pg.supabaseLibraries, ...preload])].join(","))
      }`,
      ...supabaseSettings,
      `cron.database_name = 'postgres'`,
      `cron.use_background_workers = on`,
      `max_worker_processes = 32`,
      `password_encryption = 'scram-sha-256'`,
      `timezone = 'UTC'`,
      `log_timezone = 'UTC'`,
      `logging_collector = off`,
      // fast: no fsync, no full-page images. Both only matter when the MACHINE crashes; a killed
      // postgres (kill(), restart immediate) still recovers every acknowledged commit from the OS
      // page cache. synchronous_commit stays ON on purpose: with it off, kill() loses commits
      // acknowledged in the last ~200 ms (seen in harness_test), which fault tests must not
      // confuse with a bug; and with fsync off it costs nothing measurable (3000 single-row
      // commits: ~1.0 s either way).
      ...(fast ? ["fsync = off", "full_page_writes = off"] : []),
      ...Object.entries(extraSettings).map(([name, value]) =>
        `${name} = ${typeof value === "string" ? sqlString(value) : String(value)}`
      ),
    ];
    const path = join(dataDir, HARNESS_CONF);
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    await chown(path);
    // Also over a kept cluster's older pg_hba.conf, which trusted every local connection.
    await writePrivate(join(dataDir, "pg_hba.conf"), PG_HBA);
  };

  /** `mayRepick`: only on the first start; a restart keeps its port. */
  const start = async (mayRepick: boolean) => {
    for (let attempt = 1;; attempt++) {
      await writeConf();
      const r = await pgRun("pg_ctl", ["-D", dataDir, "-l", logFile, "-w", "-t", "60", "start"]);
      if (r.code === 0 && (await waitFor(() => acceptsConnections(port), 10_000))) {
        running = true;
        return;
      }
      const log = await tail(logFile);
      // A port picked by us can be taken between freePort() and bind(): pick another.
      if (
        mayRepick && explicitPort === undefined && attempt < 3 &&
        /could not (bind|create listen)/i.test(log)
      ) {
        port = freePort();
        continue;
      }
      throw new Error(
        `PostgreSQL did not start (pg_ctl exit ${r.code}) on port ${port}:\n${r.stderr}\n` +
          `--- ${logFile} (tail) ---\n${log}`,
      );
    }
  };

  const shutdown = async (mode: "fast" | "immediate") => {
    if (!running) return;
    const r = await pgRun("pg_ctl", ["-D", dataDir, "-m", mode, "-w", "-t", "60", "stop"]);
    if (r.code !== 0 && (await readPostmasterPid(dataDir)) !== null) {
      throw new Error(`pg_ctl stop -m ${mode} failed (exit ${r.code}):\n${r.stderr}`);
    }
    running = false;
  };

  const kill = async () => {
    const pid = await readPostmasterPid(dataDir);
    if (pid === null || !processAlive(pid)) {
      running = false;
      return;
    }
    const kids = childrenOf(pid);
    Deno.kill(pid, "SIGKILL");
    for (const kid of kids) {
      try {
        Deno.kill(kid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    const dead = await waitFor(() => [pid, ...kids].every((p) => !processAlive(p)), 10_000);
    if (!dead) throw new Error(`postgres processes survived SIGKILL (postmaster ${pid})`);
    // A killed postmaster stays a zombie until its parent (init) reaps it, which can take a
    // while, and postgres takes a zombie's pid in postmaster.pid for a live server. Every process
    // that held the lock files is dead: drop them.
    await Deno.remove(join(dataDir, "postmaster.pid")).catch(() => {});
    await Deno.remove(join(socketDir, `.s.PGSQL.${port}.lock`)).catch(() => {});
    await Deno.remove(join(socketDir, `.s.PGSQL.${port}`)).catch(() => {});
    running = false;
  };

  try {
    await start(true);
  } catch (e) {
    await kill().catch(() => {});
    for (const dir of owned.reverse()) await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }

  const cluster: PostgresCluster = {
    dbUrl: `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`,
    password,
    port,
    dataDir,
    logFile,
    async stop() {
      if (stopped) return;
      try {
        await shutdown("fast");
      } catch (e) {
        await kill(); // never leave a server behind
        if (!keep) await removeOwned();
        stopped = true;
        throw e;
      }
      stopped = true;
      if (!keep) await removeOwned();
    },
    async restart(opts = {}) {
      if (stopped) throw new Error("restart() after stop(): start a new cluster instead");
      await shutdown(opts.mode ?? "fast");
      await start(false);
    },
    async kill() {
      if (stopped) return;
      await kill();
    },
  };

  async function removeOwned() {
    for (const dir of owned.reverse()) await Deno.remove(dir, { recursive: true }).catch(() => {});
    owned.length = 0;
  }

  return cluster;
}
