/**
 * The whole check, as CI runs it: format, lint, type check, then every test (unit and
 * integration, against a throwaway PostgreSQL with pg_cron, the Cafe24 sandbox and the functions
 * over HTTP). Ends with one `tests: N passed, N failed` line.
 *
 *   npm test                # everything
 *   npm test -- tests/unit  # extra arguments go to `deno test`
 */

import { pathExists } from "../local/files.ts";

const deno = Deno.execPath();
const root = new URL("../", import.meta.url);

async function run(label: string, args: string[]): Promise<boolean> {
  console.log(`\n== ${label}: deno ${args.join(" ")}`);
  const { code } = await new Deno.Command(deno, {
    args,
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return code === 0;
}

const typeChecked = [
  "supabase/functions/*/index.ts",
  "scripts/",
  "local/",
  "tests/",
  ...(await pathExists(new URL("bench", root)) ? ["bench/"] : []),
];

const staticChecks = [
  await run("format", ["fmt", "--check"]),
  await run("lint", ["lint"]),
  await run("types", ["check", ...typeChecked]),
];

const junitPath = ".test-results/junit.xml";
await Deno.mkdir(new URL(".test-results", root), { recursive: true });
const testArgs = Deno.args.length > 0 ? Deno.args : ["tests/"];
const testsOk = await run("tests", [
  "test",
  "--allow-all",
  `--junit-path=${junitPath}`,
  ...testArgs,
]);

let passed = 0;
let failed = 0;
try {
  const xml = await Deno.readTextFile(new URL(junitPath, root));
  const suite = /<testsuites[^>]*\btests="(\d+)"[^>]*\bfailures="(\d+)"[^>]*\berrors="(\d+)"/.exec(
    xml,
  );
  if (suite) {
    const [total, failures, errors] = suite.slice(1).map(Number) as [number, number, number];
    failed = failures + errors;
    passed = total - failed;
  }
} catch {
  // No report: the test run itself broke; counted below.
}
const staticFailures = staticChecks.filter((ok) => !ok).length;
if (!testsOk && failed === 0) failed = 1;
console.log(
  `\nstatic checks: ${staticChecks.length - staticFailures} passed, ${staticFailures} failed`,
);
console.log(`tests: ${passed} passed, ${failed + staticFailures} failed`);
Deno.exit(testsOk && staticFailures === 0 ? 0 : 1);
