/**
 * What the local stack needs from the machine, checked before anything starts: PostgreSQL 15's
 * server binaries and pg_cron for it (the same places local/postgres/cluster.ts looks),
 * and, when root, the `postgres` OS user the cluster runs as. Each gap comes with the exact
 * command that fixes it, scripts/install-prerequisites (the README's and CI's install step); on
 * Debian as root, `--install-missing` (or a yes at the prompt) runs it.
 */

import { pgBindirOverride } from "../postgres/cluster.ts";
import { PROJECT_ROOT } from "./stack_info.ts";
import { isExecutable, pathExists } from "../files.ts";

export const INSTALL_FIX = "scripts/install-prerequisites";

const DEFAULT_BINDIR = "/usr/lib/postgresql/15/bin";
const DEFAULT_SHAREDIR = "/usr/share/postgresql/15";
const DEFAULT_PKGLIBDIR = "/usr/lib/postgresql/15/lib";

export interface Preflight {
  ok: boolean;
  /** One line per missing piece. */
  problems: string[];
}

async function pgConfig(bin: string, flag: string): Promise<string | null> {
  try {
    const out = await new Deno.Command(bin, { args: [flag], stdout: "piped", stderr: "null" })
      .output();
    const value = new TextDecoder().decode(out.stdout).trim();
    return out.code === 0 && value !== "" ? value : null;
  } catch {
    return null;
  }
}

export async function checkMachine(): Promise<Preflight> {
  const problems: string[] = [];
  const override = pgBindirOverride();
  const config = override ? `${override}/pg_config` : "pg_config";
  const bindir = override ?? (await pgConfig(config, "--bindir")) ?? DEFAULT_BINDIR;
  const missing = [];
  for (const bin of ["initdb", "pg_ctl", "postgres"]) {
    if (!(await isExecutable(`${bindir}/${bin}`))) missing.push(bin);
  }
  if (missing.length > 0) {
    problems.push(`PostgreSQL 15 server binaries missing in ${bindir}: ${missing.join(", ")}`);
  }
  const sharedir = (await pgConfig(config, "--sharedir")) ?? DEFAULT_SHAREDIR;
  const pkglibdir = (await pgConfig(config, "--pkglibdir")) ?? DEFAULT_PKGLIBDIR;
  const control = [
    `${sharedir}/extension/pg_cron.control`,
    `${DEFAULT_SHAREDIR}/extension/pg_cron.control`,
  ];
  const hasControl = (await pathExists(control[0]!)) || (await pathExists(control[1]!));
  if (!hasControl || !(await pathExists(`${pkglibdir}/pg_cron.so`))) {
    problems.push(`pg_cron for PostgreSQL 15 missing (${control[0]}, ${pkglibdir}/pg_cron.so)`);
  }
  if (Deno.uid() === 0 && missing.length === 0) {
    const user = await new Deno.Command("id", {
      args: ["-u", "postgres"],
      stdout: "null",
      stderr: "null",
    })
      .output().catch(() => ({ code: 1 }));
    if (user.code !== 0) {
      problems.push("running as root, but there is no 'postgres' OS user to run the cluster as");
    }
  }
  return { ok: problems.length === 0, problems };
}

export async function isDebian(): Promise<boolean> {
  return await pathExists("/etc/debian_version") && await pathExists("/usr/bin/apt-get");
}

/** The system packages, as the README's install step installs them (npm ci already ran). */
export async function installPackages(): Promise<boolean> {
  const out = await new Deno.Command(`${PROJECT_ROOT}/${INSTALL_FIX}`, {
    args: ["--no-npm"],
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return out.code === 0;
}

/** Asks a yes/no question on the terminal; false when stdin is not a terminal. */
export async function confirm(question: string): Promise<boolean> {
  if (!Deno.stdin.isTerminal()) return false;
  await Deno.stdout.write(new TextEncoder().encode(`${question} [y/N] `));
  const buffer = new Uint8Array(64);
  const n = await Deno.stdin.read(buffer);
  const answer = n === null ? "" : new TextDecoder().decode(buffer.subarray(0, n)).trim();
  return /^y(es)?$/i.test(answer);
}
