import assert from "node:assert/strict";
import {
  extractSection,
  floorTable,
  type PassFigures,
  renderSideBySide,
  replaceSection,
  SIDE_BY_SIDE_HEADING,
  summarise,
} from "../../../bench/side_by_side_report.ts";
import type { FloorFigures } from "../../../bench/scenario_floor.ts";

const pass = (side: PassFigures["side"], n: number, cost: number): PassFigures => ({
  side,
  pass: n,
  refreshed: 100,
  wallMs: 1000 * cost,
  postgresCpuMs: 100 * cost,
  countedPostgresCpuMs: 130 * cost,
  statements: 2000 * cost,
  roundTrips: 150,
  functionCpuMs: 300 * cost,
});

/** The section for one N of malls, with everything but its passes and floors fixed. */
const render = (passes: PassFigures[], floors: FloorFigures[] = []) =>
  renderSideBySide({
    baselineLabel: "`abc` = abc (old)",
    currentLabel: "this checkout",
    command: "npm run bench -- --baseline abc",
    date: "2026-12-07T00:00:00.000Z",
    machine: "2 cores",
    concurrency: 16,
    latencyMs: 50,
    jitterMs: 10,
    sizes: [{ n: 300, passes, floors }],
  });

Deno.test("summarise() takes each side's median per refresh and new / old", () => {
  const figures = summarise([
    pass("baseline", 1, 4),
    pass("current", 1, 1),
    pass("baseline", 2, 8),
    pass("current", 2, 2),
    pass("baseline", 3, 6),
    pass("current", 3, 9),
  ]);
  const pg = figures.find((f) => f.label.startsWith("PostgreSQL CPU"))!;
  assert.deepEqual([pg.baseline, pg.current], [6, 2]);
  assert.equal(pg.ratio, 2 / 6);
  const trips = figures.find((f) => f.label.startsWith("round trips"))!;
  assert.deepEqual([trips.baseline, trips.current, trips.ratio], [1.5, 1.5, 1]);
  const statements = figures.find((f) => f.label.startsWith("statements"))!;
  assert.deepEqual([statements.baseline, statements.current], [120, 40]);
});

Deno.test("summarise() gives no ratio where the baseline has nothing", () => {
  const figures = summarise([{ ...pass("baseline", 1, 0) }, pass("current", 1, 1)]);
  assert.ok(Number.isNaN(figures.find((f) => f.label.startsWith("function CPU"))!.ratio));
  const none = summarise([]);
  assert.ok(none.every((f) => Number.isNaN(f.baseline) && Number.isNaN(f.ratio)));
});

Deno.test("renderSideBySide() has a table per N and a row per pass, in the order run", () => {
  const text = render([pass("baseline", 1, 2), pass("current", 1, 1)]);
  assert.ok(text.startsWith(`${SIDE_BY_SIDE_HEADING}\n`));
  assert.match(text, /^### 300 malls due$/m);
  assert.match(text, /^\| PostgreSQL CPU per refresh \(ms\) \| 2\.000 \| 1\.000 \| 0\.50 \|$/m);
  assert.match(text, /^\| 1 \| baseline \| 100 \| 2\.00 \|/m);
  assert.ok(text.indexOf("| 1 | baseline |") < text.indexOf("| 1 | current |"));
});

Deno.test("the CPU while counting nested statements stands apart from the CPU measured", () => {
  const text = render([pass("baseline", 1, 2), pass("current", 1, 1)]);
  assert.match(text, /^\| PostgreSQL CPU per refresh \(ms\) \| 2\.000 \| 1\.000 \| 0\.50 \|$/m);
  assert.match(
    text,
    /^\| … while pg_stat_statements counts nested statements \(ms\) \| 2\.600 \| 1\.300 \| 0\.50 \|$/m,
  );
  assert.match(
    text,
    /^\| 1 \| current \| 100 \| 1\.00 \| 1\.000 \| 1\.300 \| 20\.00 \| 1\.50 \| 3\.000 \|$/m,
  );
  assert.match(text, /track = all/);
  assert.match(text, /Supabase's/);
});

Deno.test("the copy mode gets its own columns, against the baseline, only when it ran", () => {
  const withCopy = render([pass("baseline", 1, 4), pass("current", 1, 1), pass("copy", 1, 3)]);
  assert.match(withCopy, /\| new \/ old \| copy mode \| copy \/ old \|$/m);
  assert.match(
    withCopy,
    /^\| PostgreSQL CPU per refresh \(ms\) \| 4\.000 \| 1\.000 \| 0\.25 \| 3\.000 \| 0\.75 \|$/m,
  );
  assert.match(withCopy, /^\| 1 \| copy \| 100 \|/m);
  const without = render([pass("baseline", 1, 4), pass("current", 1, 1)]);
  assert.doesNotMatch(without, /copy mode/);
  const pg = summarise([pass("baseline", 1, 4), pass("current", 1, 1)])[0]!;
  assert.ok(Number.isNaN(pg.copy) && Number.isNaN(pg.copyRatio));
});

Deno.test("the floor table gives each floor's median and what the current side costs over it", () => {
  assert.deepEqual(floorTable([], 1, 16), [], "nothing where no floor was measured");
  const lines = floorTable(
    [
      { roundTripMs: 0.2, rowWriteMs: 0.5 },
      { roundTripMs: 0.1, rowWriteMs: 0.4 },
      { roundTripMs: 0.3, rowWriteMs: 0.6 },
    ],
    1.2,
    16,
  );
  const text = lines.join("\n");
  assert.match(text, /median of 3/);
  assert.match(text, /16 workers/);
  assert.match(text, /^\| `select 1`: the round trip alone \| 0\.200 \| 6\.00 \|$/m);
  assert.match(text, /^\| one-row UPDATE .* \| 0\.500 \| 2\.40 \|$/m);
  // In the section, after the medians table.
  const section = render([pass("baseline", 1, 2), pass("current", 1, 1)], [
    { roundTripMs: 0.25, rowWriteMs: 0.5 },
  ]);
  assert.match(section, /^\| one-row UPDATE .* \| 0\.500 \| 2\.00 \|$/m);
  assert.ok(section.indexOf("| PostgreSQL CPU per refresh") < section.indexOf("| `select 1`"));
});

Deno.test("replaceSection() appends a missing section after one blank line", () => {
  assert.equal(
    replaceSection("# T\n\ntext\n\n\n", "## S", "## S\n\nnew"),
    "# T\n\ntext\n\n## S\n\nnew\n",
  );
  assert.equal(replaceSection("", "## S", "## S\n"), "## S\n");
});

Deno.test("replaceSection() replaces the section up to the next heading of its level", () => {
  const doc = "# T\n\n## A\n\na\n\n## S\n\nold\n\n### sub\n\nold too\n\n## B\n\nb\n";
  assert.equal(
    replaceSection(doc, "## S", "## S\n\nnew\n"),
    "# T\n\n## A\n\na\n\n## S\n\nnew\n\n## B\n\nb\n",
  );
  assert.equal(
    replaceSection("# T\n\n## S\n\nold\n", "## S", "## S\n\nnew\n"),
    "# T\n\n## S\n\nnew\n",
  );
});

Deno.test("extractSection() returns what replaceSection() would replace, or null", () => {
  const doc = "# T\n\n## S\n\nkept\n\n### sub\n\n## B\n";
  assert.equal(extractSection(doc, "## S"), "## S\n\nkept\n\n### sub\n");
  assert.equal(extractSection(doc, "## X"), null);
  // A regenerated report keeps the section.
  const fresh = "# T\n\n## B\n";
  assert.equal(
    replaceSection(fresh, "## S", extractSection(doc, "## S")!),
    "# T\n\n## B\n\n## S\n\nkept\n\n### sub\n",
  );
});
