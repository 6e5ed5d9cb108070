/**
 * `npm run bench -- --baseline <ref>`: what a refresh costs at `<ref>` and in this checkout, side
 * by side in one run. `<ref>` is checked out into a temporary git worktree (node_modules linked
 * in; removed at the end, also on failure or Ctrl-C). Each side runs on its own code throughout:
 * its local/postgres/database.ts starts its own throwaway cluster with its own stand-ins and
 * supabase/migrations, its bench/setup.ts seeds the malls and starts its sandbox, and its
 * local/functions/server.ts serves its own supabase/functions. The passes alternate old/new
 * (--repeat of each; each pass two runs, one counting statements and one measuring CPU, each with
 * a fresh functions process and every mall due again), and the table holds each side's medians
 * and new / old.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Cafe24Sandbox } from "../local/cafe24_sandbox.ts";
import type { TestDatabase } from "../local/postgres/database.ts";
import { PROJECT_ROOT } from "../local/stack/stack_info.ts";
import type { BenchOptions } from "./options.ts";
import { FUNCTIONS_ROLE, type TlsMaterial } from "./setup.ts";
import { type FunctionsStarter, measureRefresh } from "./scenario_refresh.ts";
import { type FloorFigures, measureFloor } from "./scenario_floor.ts";
import {
  type PassFigures,
  renderSideBySide,
  replaceSection,
  SIDE_BY_SIDE_HEADING,
  type SideName,
} from "./side_by_side_report.ts";

type DatabaseModule = typeof import("../local/postgres/database.ts");
type SetupModule = typeof import("./setup.ts");
type ServerModule = typeof import("../local/functions/server.ts");

/** One side's code: the modules of its checkout. */
interface Side {
  name: SideName;
  label: string;
  root: string;
  database: DatabaseModule;
  setup: SetupModule;
  starter: FunctionsStarter;
}

async function git(args: string[], cwd = PROJECT_ROOT): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: Deno.env.toObject(),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(`git ${args.join(" ")} failed: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout).trim();
}

async function loadSide(name: SideName, root: string, label: string): Promise<Side> {
  const at = (path: string) => pathToFileURL(join(root, path)).href;
  let database: DatabaseModule, setup: SetupModule, server: ServerModule;
  try {
    database = await import(at("local/postgres/database.ts"));
    setup = await import(at("bench/setup.ts"));
    server = await import(at("local/functions/server.ts"));
  } catch (error) {
    throw new Error(
      `${label}: its local/postgres/database.ts, bench/setup.ts and local/functions/server.ts ` +
        "do not load; --baseline needs a ref with the same bench harness",
      { cause: error },
    );
  }
  return {
    name,
    label,
    root,
    database,
    setup,
    starter: {
      startFunctionsServer: server.startFunctionsServer,
      sandboxFunctionEnv: server.sandboxFunctionEnv,
    },
  };
}

/** This checkout's side with CAFE24_PLAINTEXT_TOKEN_COPY=true: every store also writes the access
 * token into providers.cafe24, the document rewrite the copy mode keeps. */
function copyModeOf(side: Side): Side {
  return {
    ...side,
    name: "copy",
    label: `${side.label}, CAFE24_PLAINTEXT_TOKEN_COPY=true`,
    starter: {
      ...side.starter,
      sandboxFunctionEnv: (...args) => ({
        ...side.starter.sandboxFunctionEnv(...args),
        CAFE24_PLAINTEXT_TOKEN_COPY: "true",
      }),
    },
  };
}

/** `git worktree add --detach` of `commit` in a new temporary directory, node_modules linked. */
async function addWorktree(commit: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "bench-baseline-" });
  try {
    await git(["worktree", "add", "--detach", dir, commit]);
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
  await Deno.symlink(
    await Deno.realPath(join(PROJECT_ROOT, "node_modules")),
    join(dir, "node_modules"),
  );
  return dir;
}

async function removeWorktree(dir: string): Promise<void> {
  await git(["worktree", "remove", "--force", dir]).catch(async (error) => {
    console.warn(`${error instanceof Error ? error.message : error}; removing ${dir} by hand`);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await git(["worktree", "prune"]).catch(() => {});
  });
}

type StatementTracking = "all" | "top";

/**
 * What pg_stat_statements tracks in the side's database from its next session on (each pass's
 * functions process opens its own): `all` counts the statements run inside SQL and PL/pgSQL
 * functions too; `top`, the default (also Supabase's), only what clients send.
 */
async function trackStatements(db: TestDatabase, track: StatementTracking): Promise<void> {
  await db.sql.unsafe(`alter database postgres set pg_stat_statements.track = '${track}'`);
}

/** A side's throwaway database with pg_stat_statements tracking nested statements too, the
 * functions' own role (as bench/setup.ts's startBenchDatabase, through the side's own code), and
 * its pg_cron jobs switched off. */
async function startSideDatabase(side: Side): Promise<TestDatabase> {
  const db = await side.database.startTestDatabase({
    preloadLibraries: ["pg_stat_statements"],
    settings: {
      "pg_stat_statements.track": "all",
      "pg_stat_statements.track_utility": "on",
      "pg_stat_statements.max": 10000,
    },
  });
  try {
    await db.sql`create extension if not exists pg_stat_statements`;
    await db.sql.unsafe(`create role ${FUNCTIONS_ROLE} login superuser password '${db.password}'`);
    // The migrations' pg_cron jobs (ticks every minute) would land in some passes and not others.
    await db.sql`update cron.job set active = false`.catch(() => {});
  } catch (error) {
    await db.stop().catch(() => {});
    throw error;
  }
  return db;
}

/** The processes this one started that still run (by their parent pid in /proc). */
function childPids(): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === Deno.pid) {
        pids.push(Number(entry.name));
      }
    } catch {
      // ended while we looked
    }
  }
  return pids;
}

interface Running {
  side: Side;
  db: TestDatabase;
  sandbox: Cafe24Sandbox;
}

export interface SideBySideContext {
  options: BenchOptions;
  tls: TlsMaterial | null;
  command: string;
  machine: string;
}

export async function runSideBySide(ref: string, context: SideBySideContext): Promise<void> {
  const { options, tls } = context;
  const commit = await git(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]).catch(() => {
    throw new Error(`--baseline ${ref}: not a commit in this repository`);
  });
  const baselineLabel = `\`${ref}\` = ${await git(["log", "-1", "--format=%h (%s)", commit])}`;
  const dirty = (await git(["status", "--porcelain", "--untracked-files=no"])) !== "";
  const currentLabel = `this checkout, ${await git(["log", "-1", "--format=%h (%s)", "HEAD"])}${
    dirty ? " with uncommitted changes" : ""
  }`;
  const concurrency = options.concurrencies[0] ?? 16;

  console.log(`baseline: ${baselineLabel}\ncurrent: ${currentLabel}`);
  const worktree = await addWorktree(commit);
  // Deno runs no finally blocks on a signal: stop what this run started, remove the worktree.
  const running: Running[] = [];
  let leaving = false;
  const onSignal = () => {
    if (leaving) return;
    leaving = true;
    console.warn("\ninterrupted: stopping this run's processes and removing the worktree…");
    (async () => {
      for (const pid of childPids()) {
        try {
          Deno.kill(pid, "SIGTERM"); // a functions process of a pass
        } catch { /* already gone */ }
      }
      for (const { sandbox, db } of running) {
        await sandbox.close().catch(() => {});
        await db.stop().catch(() => {});
      }
      await removeWorktree(worktree);
      Deno.exit(130);
    })();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const sizes: { n: number; passes: PassFigures[]; floors: FloorFigures[] }[] = [];
  try {
    const current = await loadSide("current", PROJECT_ROOT, currentLabel);
    const sides = [
      await loadSide("baseline", worktree, baselineLabel),
      current,
      copyModeOf(current),
    ];
    for (const n of options.sizes) {
      try {
        for (const side of sides) {
          console.log(`\nN = ${n}, ${side.name}: database (its own migrations), sandbox, seeding…`);
          const db = await startSideDatabase(side);
          const sandbox = await side.setup.startBenchSandbox(options, tls).catch(async (e) => {
            await db.stop();
            throw e;
          });
          running.push({ side, db, sandbox });
          await side.setup.seedConnections(db, sandbox, n);
        }
        const passes: PassFigures[] = [];
        const floors: FloorFigures[] = [];
        for (let pass = 1; pass <= options.repeat; pass++) {
          for (const { side, db, sandbox } of running) {
            // Two runs per pass: one counts the statements (track = all), one measures the CPU
            // under the platform's default (track = top), since counting every nested statement
            // adds its own work to each and would tax most the code that nests the most.
            const run = async (track: StatementTracking) => {
              await trackStatements(db, track);
              if (pass > 1 || track === "top") await side.setup.makeAllDue(db);
              return await measureRefresh(
                db,
                sandbox,
                options,
                tls,
                n,
                concurrency,
                pass,
                side.starter,
              );
            };
            const counted = await run("all");
            const m = await run("top");
            // The counting run's figures, per refresh of the measuring run.
            const counts = (value: number) => value * m.refreshed / Math.max(1, counted.refreshed);
            const figures: PassFigures = {
              side: side.name,
              pass,
              refreshed: m.refreshed,
              wallMs: m.wallMs,
              postgresCpuMs: m.postgresCpuMs,
              countedPostgresCpuMs: counts(counted.postgresCpuMs),
              statements: counts(counted.roundTrips + counted.nestedStatements),
              roundTrips: counts(counted.roundTrips),
              functionCpuMs: m.functionCpuMs,
            };
            passes.push(figures);
            const per = (v: number) => (v / Math.max(1, m.refreshed)).toFixed(3);
            console.log(
              `  pass ${pass} ${side.name.padEnd(8)} ${m.refreshed} refreshed in ${
                (m.wallMs / 1000).toFixed(2)
              } s (${m.passes} call(s)); per refresh: PostgreSQL CPU ${per(m.postgresCpuMs)} ms (${
                per(figures.countedPostgresCpuMs)
              } while counting), ${per(figures.statements)} statements, ${
                per(figures.roundTrips)
              } round trips, function CPU ${per(m.functionCpuMs)} ms`,
            );
          }
          const current = running.find(({ side }) => side.name === "current");
          if (current !== undefined) {
            const floor = await measureFloor(
              current.db,
              n,
              concurrency,
              options.latencyMs,
              options.jitterMs,
            );
            floors.push(floor);
            console.log(
              `  floor: select 1 ${floor.roundTripMs.toFixed(3)} ms, one-row update ${
                floor.rowWriteMs.toFixed(3)
              } ms of PostgreSQL CPU per statement`,
            );
          }
        }
        sizes.push({ n, passes, floors });
      } finally {
        for (const { sandbox, db } of running.splice(0)) {
          await sandbox.close().catch(() => {});
          await db.stop().catch(() => {});
        }
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await removeWorktree(worktree);
  }

  const text = renderSideBySide({
    baselineLabel,
    currentLabel,
    command: context.command,
    date: new Date().toISOString(),
    machine: context.machine,
    concurrency,
    latencyMs: options.latencyMs,
    jitterMs: options.jitterMs,
    sizes,
  });
  console.log(`\n${text}`);
  if (options.write) {
    const old = await Deno.readTextFile(options.out).catch(() => "");
    await Deno.writeTextFile(options.out, replaceSection(old, SIDE_BY_SIDE_HEADING, text));
    console.log(`"${SIDE_BY_SIDE_HEADING.slice(3)}" written to ${options.out}`);
  }
}
