/**
 * The migrations in supabase/migrations/BASELINE.sha256 are the release baseline: databases have
 * applied them, and `supabase db push` never applies a migration twice, so an edit to one would
 * reach new databases only and a deleted one would leave a hole in every history. A change goes
 * into a new migration, named after the last one.
 *
 * After a deliberate new baseline (before a release only), rewrite the manifest with:
 *   cd supabase/migrations && sha256sum 2*.sql > BASELINE.sha256
 */
import assert from "node:assert/strict";

const MIGRATIONS = new URL("../../supabase/migrations/", import.meta.url);

interface BaselineEntry {
  sha256: string;
  name: string;
}

async function baseline(): Promise<BaselineEntry[]> {
  const text = await Deno.readTextFile(new URL("BASELINE.sha256", MIGRATIONS));
  return text.split("\n").filter((line) => line.trim() !== "").map((line) => {
    const match = /^([0-9a-f]{64}) [ *](\d{14}_[a-z0-9_]+\.sql)$/.exec(line);
    assert.ok(match, `BASELINE.sha256: not a "<sha256>  <migration>.sql" line: ${line}`);
    return { sha256: match[1]!, name: match[2]! };
  });
}

async function sha256(name: string): Promise<string | null> {
  try {
    const bytes = await Deno.readFile(new URL(name, MIGRATIONS));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function migrationNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(MIGRATIONS)) {
    if (entry.isFile && entry.name.endsWith(".sql")) names.push(entry.name);
  }
  return names.sort();
}

Deno.test("every baseline migration is unchanged: changes go into a new migration", async () => {
  const entries = await baseline();
  assert.ok(entries.length > 0, "BASELINE.sha256 lists no migration");
  const problems: string[] = [];
  for (const { sha256: expected, name } of entries) {
    const actual = await sha256(name);
    if (actual === null) {
      problems.push(`${name} is part of the released baseline and was deleted`);
    } else if (actual !== expected) {
      problems.push(`${name} is part of the released baseline and was changed`);
    }
  }
  assert.deepEqual(
    problems,
    [],
    `${problems.join("; ")}. Databases have applied these migrations and will not apply them ` +
      "again: restore them and add a new migration (supabase/migrations/<timestamp>_<name>.sql, " +
      "after the last one) with the change, made in its supabase/schemas file too.",
  );
});

Deno.test("migrations added after the baseline come after it", async () => {
  const listed = new Set((await baseline()).map((entry) => entry.name));
  const names = await migrationNames();
  const lastBaseline = names.filter((name) => listed.has(name)).at(-1)!;
  const misplaced = names.filter((name) => !listed.has(name) && name < lastBaseline);
  assert.deepEqual(
    misplaced,
    [],
    `new migrations must sort after the baseline's last (${lastBaseline}): databases that ` +
      "already applied it would skip or reject an older version; add a new migration with a " +
      "later timestamp instead",
  );
});
