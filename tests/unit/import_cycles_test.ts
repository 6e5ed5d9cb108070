/**
 * No module imports itself back, `import type` included: a cycle means two modules each own part
 * of the other's idea. The graph is every relative import and re-export of the project's
 * TypeScript (the functions, their shared code, scripts, the local platform, benchmarks and test
 * helpers), read from the source text.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const FOLDERS = ["supabase/functions", "scripts", "local", "bench", "tests"];

/** Relative specifiers of static imports, re-exports and dynamic imports in `source`. */
export function relativeImports(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?(?:[\w*\s{},$]*?\s+from\s+)?["'](\.{1,2}\/[^"']+)["']/g,
    /\bimport\s*\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of source.matchAll(pattern)) found.push(match[1]!);
  }
  return found;
}

/** The first cycle found in `graph` (module → modules it imports), as a closed path, or null. */
export function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string): string[] | null => {
    state.set(node, "open");
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === "open") return [...path.slice(path.indexOf(next)), next];
      if (!state.has(next)) {
        const cycle = visit(next);
        if (cycle !== null) return cycle;
      }
    }
    path.pop();
    state.set(node, "done");
    return null;
  };
  for (const node of [...graph.keys()].sort()) {
    if (!state.has(node)) {
      const cycle = visit(node);
      if (cycle !== null) return cycle;
    }
  }
  return null;
}

async function* sourceFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* sourceFiles(path);
    else if (entry.isFile && /\.(ts|js)$/.test(path)) yield path;
  }
}

async function projectGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const folder of FOLDERS) {
    for await (const file of sourceFiles(join(ROOT, folder))) {
      // This file's own examples are not imports.
      if (file === SELF) continue;
      const imports = relativeImports(await Deno.readTextFile(file))
        .map((specifier) => relative(ROOT, normalize(join(dirname(file), specifier))));
      graph.set(relative(ROOT, file), imports);
    }
  }
  return graph;
}

Deno.test("relativeImports() reads static, type-only, re-exported and dynamic imports", () => {
  const source = [
    'import { a } from "./a.ts";',
    'import type { B } from "../b.ts";',
    "import {\n  c,\n  type C,\n} from './c.ts';",
    'export { d } from "./d.ts";',
    'export * from "./e.ts";',
    'import "./side_effect.ts";',
    'const f = await import("./f.ts");',
    'import postgres from "postgres";',
  ].join("\n");
  assert.deepEqual(relativeImports(source).sort(), [
    "../b.ts",
    "./a.ts",
    "./c.ts",
    "./d.ts",
    "./e.ts",
    "./f.ts",
    "./side_effect.ts",
  ]);
});

Deno.test("findCycle() names a cycle, type-only edges included, and passes a tree", () => {
  const tree = new Map([["a", ["b", "c"]], ["b", ["c"]], ["c", []]]);
  assert.equal(findCycle(tree), null);
  const cyclic = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", []]]);
  assert.deepEqual(findCycle(cyclic), ["a", "b", "c", "a"]);
});

Deno.test("the project's import graph has no cycle", async () => {
  const graph = await projectGraph();
  assert.ok(graph.size > 100, `read ${graph.size} modules`);
  for (const [file, imports] of graph) {
    for (const target of imports) {
      assert.ok(graph.has(target), `${file} imports ${target}, which the graph does not hold`);
    }
  }
  const cycle = findCycle(graph);
  assert.equal(cycle, null, `import cycle: ${cycle?.join(" → ")}`);
});
