/**
 * scripts/install-prerequisites, the one install step of the README and CI, run against fake
 * apt-get, apt-cache, dpkg-query and sudo that record what they were asked: it updates the package
 * lists before installing, never upgrades, uses sudo only when not root, and needs neither when
 * nothing is missing.
 */
import assert from "node:assert/strict";

const SCRIPT = new URL("../../../scripts/install-prerequisites", import.meta.url);

interface Outcome {
  code: number;
  output: string;
  calls: string[];
}

/** Runs a copy of the script as a non-root user with `fakes` (name → shell body) first on PATH. */
async function runScript(fakes: Record<string, string>, args: string[] = []): Promise<Outcome> {
  const dir = await Deno.makeTempDir({ prefix: "install-prereq-" });
  try {
    await Deno.chmod(dir, 0o777);
    await Deno.mkdir(`${dir}/scripts`);
    await Deno.mkdir(`${dir}/bin`);
    await Deno.copyFile(SCRIPT, `${dir}/scripts/install-prerequisites`);
    const log = `${dir}/calls.log`;
    await Deno.writeTextFile(log, "");
    await Deno.chmod(log, 0o666);
    for (const [name, body] of Object.entries(fakes)) {
      await Deno.writeTextFile(
        `${dir}/bin/${name}`,
        `#!/bin/sh\necho "${name} $*" >> ${log}\n${body}\n`,
      );
      await Deno.chmod(`${dir}/bin/${name}`, 0o755);
    }
    await Deno.chmod(`${dir}/scripts/install-prerequisites`, 0o755);
    // Only these real tools are on PATH, so that a real sudo or apt-get is never reached.
    for (const tool of ["bash", "dirname", "env", "id", "node", "sed"]) {
      if (!(tool in fakes)) await Deno.symlink(await which(tool), `${dir}/bin/${tool}`);
    }
    const command = [`${dir}/scripts/install-prerequisites`, ...args];
    // As root, run as the unprivileged postgres OS user, so that "not root" is exercised.
    const [cmd, ...rest] = Deno.uid() === 0
      ? [await which("runuser"), "-u", "postgres", "--", ...command]
      : command;
    const out = await new Deno.Command(cmd!, {
      args: rest,
      env: { PATH: `${dir}/bin`, HOME: dir },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      output: dec.decode(out.stdout) + dec.decode(out.stderr),
      calls: (await Deno.readTextFile(log)).split("\n").filter((l) => l !== ""),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function which(tool: string): Promise<string> {
  const out = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "piped" })
    .output();
  const path = new TextDecoder().decode(out.stdout).trim();
  assert.ok(path.startsWith("/"), `${tool} is not installed`);
  return path;
}

const NOTHING_INSTALLED = 'echo "unknown ok not-installed"';
const ALL_INSTALLED = 'printf "install ok installed"';

Deno.test("install-prerequisites installs what is missing through sudo: update first, never upgrade", async () => {
  const result = await runScript({
    "dpkg-query": NOTHING_INSTALLED,
    "sudo": '"$@"',
    "apt-get": "true",
    "apt-cache": "true",
  }, ["--no-npm"]);
  assert.equal(result.code, 0, result.output);
  const apt = result.calls.filter((call) => call.startsWith("apt-get"));
  assert.equal(apt[0], "apt-get update -q");
  assert.match(apt[1]!, /^apt-get install -y -q --no-install-recommends --no-upgrade /);
  for (const name of ["postgresql-15", "postgresql-15-cron", "openssl"]) {
    assert.ok(apt[1]!.split(" ").includes(name), `${name} in ${apt[1]}`);
  }
  assert.ok(result.calls.some((call) => call.startsWith("sudo env DEBIAN_FRONTEND=")));
  assert.ok(!result.calls.some((call) => call.startsWith("npm")), "--no-npm runs no npm");
});

Deno.test("install-prerequisites says what to do without root or sudo", async () => {
  const result = await runScript({ "dpkg-query": NOTHING_INSTALLED, "apt-get": "true" }, [
    "--no-npm",
  ]);
  assert.equal(result.code, 1);
  assert.match(result.output, /Run this as root, or install sudo/);
  assert.deepEqual(result.calls.filter((call) => call.startsWith("apt-get")), []);
});

Deno.test("install-prerequisites needs no root when everything is there, then runs npm ci", async () => {
  const result = await runScript({ "dpkg-query": ALL_INSTALLED, "npm": "true" });
  assert.equal(result.code, 0, result.output);
  assert.deepEqual(result.calls.filter((call) => call.startsWith("apt-get")), []);
  assert.ok(result.calls.includes("npm ci --no-audit --no-fund"), result.calls.join("\n"));
});

Deno.test("install-prerequisites names the missing package source", async () => {
  const result = await runScript({
    "dpkg-query": NOTHING_INSTALLED,
    "sudo": '"$@"',
    "apt-get": "true",
    "apt-cache": "exit 100",
  }, ["--no-npm"]);
  assert.equal(result.code, 1);
  assert.match(result.output, /postgresql-15 is not in this machine's apt sources/);
});
