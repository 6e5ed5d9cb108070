import assert from "node:assert/strict";
import { junitCounts, summaryLine } from "../../../scripts/test.ts";

const XML = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="6" failures="1" errors="0" time="0.013">
    <testsuite name="./a_test.ts" tests="6" disabled="2" errors="0" failures="1">
        <testcase name="a" classname="./a_test.ts" time="0.001" line="1" col="6">
        </testcase>
        <testcase name="b" classname="./a_test.ts" time="0.000" line="2" col="6">
            <skipped/>
        </testcase>
        <testcase name="c" classname="./a_test.ts" time="0.001" line="3" col="6">
            <failure message="Uncaught Error: x">Error: x</failure>
        </testcase>
        <testcase name="d" classname="./a_test.ts" time="0.001" line="4" col="6">
        </testcase>
        <testcase name="d &gt; s1" classname="./a_test.ts" time="0.000" line="4" col="39">
        </testcase>
        <testcase name="d &gt; s2" classname="./a_test.ts" time="0.000" line="4" col="69">
            <skipped/>
        </testcase>
    </testsuite>
</testsuites>`;

Deno.test("npm test's last line counts tests as Deno does: passed, failed and ignored", () => {
  const counts = junitCounts(XML);
  assert.deepEqual(counts, { passed: 2, failed: 1, ignored: 1 });
  const names = ["format", "lint", "types"];
  assert.equal(
    summaryLine(counts, names.map((name) => ({ name, ok: true }))),
    "tests: 2 passed, 1 failed, 1 ignored; format, lint, types clean",
  );
  assert.equal(
    summaryLine(null, names.map((name) => ({ name, ok: name !== "lint" }))),
    "tests: no report (the test run itself broke); lint FAILED",
  );
});
