/**
 * supabase/schemas and supabase/migrations describe the same schema. One database gets the
 * migrations (the pinned Supabase CLI, as `supabase db push` applies them), another the schema
 * files, both on top of the same Supabase stand-ins; `pg_dump --schema-only --no-owner` of
 * cafe24_private and public must then agree object by object: tables with their column order,
 * constraints, indexes and storage parameters, types, functions (attributes and bodies), views,
 * triggers, row security, grants and comments.
 *
 * Each database has a cluster of its own: pg_cron can only be created in the database that
 * cron.database_name names, so a second database in one cluster could not take 00_*.sql. The
 * comparison is also shown to fail, naming the object, on schema text with a changed function
 * body, a missing grant and a column in another order.
 */
import assert from "node:assert/strict";
import {
  readSchemaFiles,
  type SchemaFile,
  startTestDatabase,
  type TestDatabase,
} from "../../local/postgres/database.ts";
import {
  compareDumps,
  describeDifferences,
  type DumpDifference,
  dumpSchemas,
  splitDump,
} from "../../local/postgres/schema_dump.ts";

const SCHEMAS = ["cafe24_private", "public"];
const LABELS = { expected: "supabase/migrations", actual: "supabase/schemas" };

/** Starts every database at once; stops the ones that started when one of them fails. */
async function startAll(sources: (SchemaFile[] | "migrations")[]): Promise<TestDatabase[]> {
  const started = await Promise.allSettled(
    sources.map((source) =>
      source === "migrations" ? startTestDatabase() : startTestDatabase({ schemaFiles: source })
    ),
  );
  const failed = started.find((s) => s.status === "rejected");
  const dbs = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  if (failed !== undefined) {
    await Promise.allSettled(dbs.map((db) => db.stop()));
    throw failed.reason;
  }
  return dbs;
}

/** The schema files with `from` replaced by `to` in one of them; `from` must occur exactly once,
 * so a change to the schema text that moves it fails here rather than seeding nothing. */
function seeded(files: SchemaFile[], name: string, from: string, to: string): SchemaFile[] {
  const file = files.find((f) => f.name === name);
  assert.ok(file, `supabase/schemas/${name} exists`);
  assert.equal(file.text.split(from).length, 2, `${name} holds ${JSON.stringify(from)} once`);
  return files.map((f) => (f === file ? { name, text: f.text.replace(from, () => to) } : f));
}

interface Seed {
  what: string;
  files: SchemaFile[];
  /** The pg_dump key the comparison must name first. */
  key: string;
  /** Lines the short diff must show. */
  shows: string[];
}

Deno.test("supabase/schemas builds exactly the schema supabase/migrations builds", async (t) => {
  const files = await readSchemaFiles();
  assert.ok(files.length > 0, "supabase/schemas holds SQL files");
  const seeds: Seed[] = [
    {
      what: "a changed function body",
      files: seeded(
        files,
        "60_connect_and_custody.sql",
        "as $$ select 20 $$;",
        "as $$ select 21 $$;",
      ),
      key: "Name: max_open_oauth_states(); Type: FUNCTION; Schema: cafe24_private",
      shows: ["-     AS $$ select 20 $$;", "+     AS $$ select 21 $$;"],
    },
    {
      what: "a missing grant",
      files: seeded(
        files,
        "60_connect_and_custody.sql",
        "grant execute on function cafe24_private.without_credentials(jsonb) to authenticated;\n",
        "",
      ),
      key:
        "Name: FUNCTION without_credentials(p_providers jsonb); Type: ACL; Schema: cafe24_private",
      shows: [
        "- GRANT ALL ON FUNCTION cafe24_private.without_credentials(p_providers jsonb) TO authenticated;",
      ],
    },
    {
      what: "a column in another order",
      files: seeded(
        files,
        "20_connections.sql",
        "  user_id uuid,\n  mall_id text,\n",
        "  mall_id text,\n  user_id uuid,\n",
      ),
      key: "Name: connections; Type: TABLE; Schema: cafe24_private",
      shows: ["-     user_id uuid,", "+     user_id uuid,"],
    },
  ];

  const [migrations, schemas, ...variants] = await startAll([
    "migrations",
    files,
    ...seeds.map((seed) => seed.files),
  ]);
  try {
    const expected = await dumpSchemas(migrations!.dbUrl, SCHEMAS);

    await t.step("every object agrees: definitions, grants and comments", async () => {
      // A comparison of two empty dumps would prove nothing.
      const types = new Set([...splitDump(expected).values()].map((o) => o.type));
      for (const type of ["TABLE", "FUNCTION", "VIEW", "TRIGGER", "ACL", "COMMENT"]) {
        assert.ok(types.has(type), `the dump of supabase/migrations holds a ${type}`);
      }
      const differences = compareDumps(expected, await dumpSchemas(schemas!.dbUrl, SCHEMAS));
      assert.equal(differences.length, 0, describeDifferences(differences, LABELS));
    });

    const found = await Promise.all(
      variants.map(async (db) => compareDumps(expected, await dumpSchemas(db.dbUrl, SCHEMAS))),
    );
    for (const [i, seed] of seeds.entries()) {
      await t.step(`fails on ${seed.what}, naming the object`, () => {
        const differences: DumpDifference[] = found[i]!;
        assert.deepEqual(differences.map((d) => d.key), [seed.key]);
        const message = describeDifferences(differences, LABELS);
        assert.ok(message.includes(`The first: ${seed.key}`), message);
        for (const line of seed.shows) assert.ok(message.includes(line), `${line}\n${message}`);
      });
    }
  } finally {
    await Promise.allSettled([migrations, schemas, ...variants].map((db) => db!.stop()));
  }
});
