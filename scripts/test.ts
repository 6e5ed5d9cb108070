/**
 * The whole check, as CI runs it: format, lint, type check, then every test (unit and
 * integration, against a throwaway PostgreSQL with pg_cron, the Cafe24 sandbox and the functions
 * over HTTP). Ends with one line: the tests passed, failed and ignored (read from the JUnit
 * report, so steps are not counted as tests) and the static checks that failed.
 *
 *   npm test                # everything
 *   npm test -- tests/unit  # extra arguments go to `deno test`
 */

import { pathExists } from "../local/files.ts";

export interface TestCounts {
  passed: number;
  failed: number;
  ignored: number;
}

/** The tests of a `deno test --junit-path` report, as Deno counts them: steps ("a > b") aside. */
export function junitCounts(xml: string): TestCounts {
  const counts = { passed: 0, failed: 0, ignored: 0 };
  for (const match of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const name = /\bname="([^"]*)"/.exec(match[1]!)?.[1] ?? "";
    if (name.includes(" &gt; ")) continue;
    const inner = match[3] ?? "";
    if (/<(failure|error)\b/.test(inner)) counts.failed++;
    else if (/<skipped\b/.test(inner)) counts.ignored++;
    else counts.passed++;
  }
  return counts;
}

/** The last line of npm test. */
export function summaryLine(
  counts: TestCounts | null,
  staticChecks: { name: string; ok: boolean }[],
): string {
  const failedChecks = staticChecks.filter((check) => !check.ok).map((check) => check.name);
  const tests = counts === null
    ? "tests: no report (the test run itself broke)"
    : `tests: ${counts.passed} passed, ${counts.failed} failed, ${counts.ignored} ignored`;
  const checks = failedChecks.length === 0
    ? `${staticChecks.map((check) => check.name).join(", ")} clean`
    : `${failedChecks.join(", ")} FAILED`;
  return `${tests}; ${checks}`;
}

async function main(): Promise<number> {
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
    { name: "format", ok: await run("format", ["fmt", "--check"]) },
    { name: "lint", ok: await run("lint", ["lint"]) },
    { name: "types", ok: await run("types", ["check", ...typeChecked]) },
  ];

  const junitPath = ".test-results/junit.xml";
  await Deno.mkdir(new URL(".test-results", root), { recursive: true });
  await Deno.remove(new URL(junitPath, root)).catch(() => {});
  const testArgs = Deno.args.length > 0 ? Deno.args : ["tests/"];
  const testsOk = await run("tests", [
    "test",
    "--allow-all",
    // The Cafe24 sandbox reads request.signal to see a client give up during a delay or a hang:
    // with the new behaviour it aborts only then, and Deno prints no legacy-abort warning.
    "--unstable-no-legacy-abort",
    `--junit-path=${junitPath}`,
    ...testArgs,
  ]);

  let counts: TestCounts | null = null;
  try {
    counts = junitCounts(await Deno.readTextFile(new URL(junitPath, root)));
  } catch {
    // No report: the test run itself broke; said in the summary.
  }
  if (counts !== null && !testsOk && counts.failed === 0) counts.failed = 1;
  console.log(`\n${summaryLine(counts, staticChecks)}`);
  return testsOk && staticChecks.every((check) => check.ok) ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
