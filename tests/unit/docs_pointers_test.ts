/**
 * Docs and code point at SQL objects by name and at the schema file that holds them
 * (supabase/schemas), never at a migration: a migration is history, and the object it names may
 * have been restated by a later one. Released migrations themselves are frozen and keep what
 * their comments said; local/ code that applies supabase/migrations as a whole names the folder,
 * not a file.
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);
/** Where a pointer at a migration file is a mistake. */
const SCANNED = ["README.md", "docs/", "supabase/functions/", "local/", "scripts/", "bench/"];
const SKIPPED_DIRS = new Set(["node_modules", ".local"]);

interface Migration {
  file: string;
  /** What follows the timestamp, e.g. cafe24_claim. */
  slug: string;
}

async function migrations(): Promise<Migration[]> {
  const found: Migration[] = [];
  for await (const entry of Deno.readDir(new URL("supabase/migrations/", root))) {
    const match = /^\d{14}_([a-z0-9_]+)\.sql$/.exec(entry.name);
    if (entry.isFile && match) found.push({ file: entry.name, slug: match[1]! });
  }
  return found.sort((a, b) => a.file.localeCompare(b.file));
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Every way of pointing at a migration found in `text`: its whole file name, the slug after
 * part of the timestamp (`0220_cafe24_claim`), after an ellipsis (`…_cafe24_claim.sql`,
 * `..._cafe24_claim`), with `.sql` (`cafe24_claim.sql`), or by its concern (`the custody
 * migration`). */
export function migrationPointers(text: string, known: Migration[]): string[] {
  const found: string[] = [];
  for (const { slug } of known) {
    const name = escape(slug);
    const concern = escape(slug.replace(/^cafe24_/, "")).replaceAll("_", "[ _-]");
    const pattern = new RegExp(
      `(?:\\d{3,}_|(?:…|\\.\\.\\.)\\d*_?)${name}(?:\\.sql)?(?![a-z0-9_])` +
        `|(?<![a-z0-9_])${name}\\.sql` +
        `|(?<![a-z0-9_-])${concern} migrations?\\b`,
      "gi",
    );
    for (const [match] of text.matchAll(pattern)) found.push(match);
  }
  return found;
}

async function* textFiles(path: string): AsyncGenerator<{ path: string; text: string }> {
  const url = new URL(path, root);
  const info = await Deno.stat(url);
  if (info.isFile) {
    try {
      yield {
        path,
        text: new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(url)),
      };
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // not text (an image, say)
    }
    return;
  }
  for await (const entry of Deno.readDir(url)) {
    if (SKIPPED_DIRS.has(entry.name)) continue;
    yield* textFiles(`${path.replace(/\/?$/, "/")}${entry.name}${entry.isDirectory ? "/" : ""}`);
  }
}

/** The cafe24_private objects supabase/schemas creates, by name. */
async function schemaObjects(): Promise<Set<string>> {
  const names = new Set<string>();
  const dir = new URL("supabase/schemas/", root);
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".sql")) continue;
    const text = await Deno.readTextFile(new URL(entry.name, dir));
    const creates =
      /create\s+(?:or\s+replace\s+)?(?:unlogged\s+)?(?:function|view|table|type)\s+cafe24_private\.([a-z_][a-z0-9_]*)/gi;
    for (const [, name] of text.matchAll(creates)) names.add(name!);
  }
  return names;
}

Deno.test("a migration's file name is recognised however it is abbreviated", async () => {
  const known = await migrations();
  assert.ok(known.some((m) => m.slug === "cafe24_claim"), "the claim migration exists");
  for (
    const pointer of [
      "20261125000220_cafe24_claim.sql",
      "…0220_cafe24_claim.sql",
      "…_cafe24_claim.sql",
      "..._cafe24_claim.sql",
      "0700_cafe24_refresh_fanout",
      "cafe24_claim.sql",
      "custody migration",
      "refresh fanout migrations",
    ]
  ) {
    assert.deepEqual(migrationPointers(`see (${pointer}): `, known), [pointer]);
  }
  for (
    const other of [
      "supabase/schemas/30_refresh_rules_and_claim.sql",
      "supabase/migrations",
      "20250220051611_pg_net_perms_fix.sql",
      "cafe24_private.claim_connection()",
      "the cafe24_claim_test helper",
      "every migration",
      "the migration's own job",
    ]
  ) {
    assert.deepEqual(migrationPointers(other, known), [], other);
  }
});

Deno.test("docs and code point at schema files and objects, never at a migration file", async () => {
  const known = await migrations();
  const found: string[] = [];
  for (const path of SCANNED) {
    for await (const file of textFiles(path)) {
      for (const pointer of migrationPointers(file.text, known)) {
        found.push(`${file.path}: ${pointer}`);
      }
    }
  }
  assert.deepEqual(
    found,
    [],
    "point at the object and its schema file instead, e.g. " +
      "`cafe24_private.refresh_rules()` in supabase/schemas/30_refresh_rules_and_claim.sql",
  );
});

Deno.test("every cafe24_private object the README and docs/ name is defined in supabase/schemas", async () => {
  const defined = await schemaObjects();
  assert.ok(defined.has("connections") && defined.has("refresh_verdict"), [...defined].join(", "));
  const missing: string[] = [];
  for await (const file of textFiles("README.md")) {
    for (const [, name] of file.text.matchAll(/cafe24_private\.([a-z_][a-z0-9_]*)/g)) {
      if (!defined.has(name!)) missing.push(`${file.path}: cafe24_private.${name}`);
    }
  }
  for await (const file of textFiles("docs/")) {
    for (const [, name] of file.text.matchAll(/cafe24_private\.([a-z_][a-z0-9_]*)/g)) {
      if (!defined.has(name!)) missing.push(`${file.path}: cafe24_private.${name}`);
    }
  }
  assert.deepEqual(missing, []);
});
