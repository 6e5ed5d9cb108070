import assert from "node:assert/strict";
import {
  compareDumps,
  describeDifferences,
  lineDiff,
  splitDump,
} from "../../../local/postgres/schema_dump.ts";

const LABELS = { expected: "migrations", actual: "schemas" };

/** An object as pg_dump frames it. */
function entry(name: string, type: string, schema: string, sql: string): string {
  return `--\n-- Name: ${name}; Type: ${type}; Schema: ${schema}; Owner: -\n--\n\n${sql}\n\n\n`;
}

function dump(...entries: string[]): string {
  return [
    "--\n-- PostgreSQL database dump\n--\n\n",
    "\\restrict AbC123\n\n",
    "-- Dumped from database version 15.18\n\n",
    "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n",
    ...entries,
    "--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict AbC123\n\n",
  ].join("");
}

const SCHEMA = entry("app", "SCHEMA", "-", "CREATE SCHEMA app;");
const TABLE = entry("t", "TABLE", "app", "CREATE TABLE app.t (\n    a integer,\n    b text\n);");
const FUNCTION = entry(
  "f()",
  "FUNCTION",
  "app",
  "CREATE FUNCTION app.f() RETURNS integer\n    LANGUAGE sql\n    AS $$ select 1 $$;",
);
const ACL = entry("TABLE t", "ACL", "app", "GRANT SELECT ON TABLE app.t TO service_role;");

Deno.test("splitDump() keys each object by pg_dump's header and keeps only its SQL", () => {
  const objects = splitDump(
    dump(
      SCHEMA,
      TABLE,
      "SET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n",
      ACL,
    ),
  );
  assert.deepEqual([...objects.keys()], [
    "Name: app; Type: SCHEMA; Schema: -",
    "Name: t; Type: TABLE; Schema: app",
    "Name: TABLE t; Type: ACL; Schema: app",
  ]);
  const table = objects.get("Name: t; Type: TABLE; Schema: app")!;
  assert.equal(table.name, "t");
  assert.equal(table.type, "TABLE");
  assert.equal(table.schema, "app");
  // The settings pg_dump writes between objects and its closing lines belong to no object.
  assert.equal(table.text, "CREATE TABLE app.t (\n    a integer,\n    b text\n);");
  assert.equal(
    objects.get("Name: TABLE t; Type: ACL; Schema: app")!.text,
    "GRANT SELECT ON TABLE app.t TO service_role;",
  );
});

Deno.test("compareDumps() ignores the order of the objects and each dump's random key", () => {
  const a = dump(SCHEMA, TABLE, FUNCTION, ACL);
  const b = dump(ACL, FUNCTION, SCHEMA, TABLE).replaceAll("AbC123", "XyZ789");
  assert.deepEqual(compareDumps(a, b), []);
  assert.equal(describeDifferences([], LABELS), "migrations and schemas agree");
});

Deno.test("compareDumps() finds a changed body, a missing grant and columns in another order", () => {
  const changed = dump(
    SCHEMA,
    TABLE.replace("    a integer,\n    b text", "    b text,\n    a integer"),
    FUNCTION.replace("select 1", "select 2"),
  );
  const differences = compareDumps(dump(SCHEMA, TABLE, FUNCTION, ACL), changed);
  // In a stable order: by schema, then functions before tables before grants.
  assert.deepEqual(differences.map((d) => d.key), [
    "Name: f(); Type: FUNCTION; Schema: app",
    "Name: t; Type: TABLE; Schema: app",
    "Name: TABLE t; Type: ACL; Schema: app",
  ]);
  assert.equal(differences[2]!.actual, null);
  assert.equal(differences[2]!.expected, "GRANT SELECT ON TABLE app.t TO service_role;");
});

Deno.test("describeDifferences() names the first object, shows its diff and lists the rest", () => {
  const differences = compareDumps(
    dump(SCHEMA, TABLE, FUNCTION, ACL),
    dump(SCHEMA, TABLE, FUNCTION.replace("select 1", "select 2")),
  );
  const message = describeDifferences(differences, LABELS);
  assert.equal(
    message,
    [
      "migrations and schemas differ in 2 objects. The first: Name: f(); Type: FUNCTION; Schema: app",
      "--- migrations",
      "+++ schemas",
      "  CREATE FUNCTION app.f() RETURNS integer",
      "      LANGUAGE sql",
      "-     AS $$ select 1 $$;",
      "+     AS $$ select 2 $$;",
      "Also different:",
      "  Name: TABLE t; Type: ACL; Schema: app",
    ].join("\n"),
  );
  const onlyInSchemas = describeDifferences(compareDumps(dump(SCHEMA), dump(SCHEMA, ACL)), LABELS);
  assert.match(
    onlyInSchemas,
    /The first: Name: TABLE t; Type: ACL; Schema: app\nonly in schemas:\n/,
  );
});

Deno.test("lineDiff() shows changes with two lines of context and elides the rest", () => {
  const before = ["1", "2", "3", "4", "5", "6", "7", "8", "9"].join("\n");
  const after = ["1", "2", "3", "4", "five", "6", "7", "8", "9"].join("\n");
  assert.equal(
    lineDiff(before, after),
    ["…", "  3", "  4", "- 5", "+ five", "  6", "  7", "…"].join("\n"),
  );
  assert.equal(lineDiff("a", "a\nb"), "  a\n+ b");
  const long = lineDiff("", Array.from({ length: 50 }, (_, i) => `line ${i}`).join("\n"), 2, 10);
  assert.equal(long.split("\n").length, 11);
  assert.match(long, /\(41 more lines\)$/);
});
