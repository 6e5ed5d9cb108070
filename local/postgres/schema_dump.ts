/**
 * Compares two databases' schemas object by object, as `pg_dump --schema-only --no-owner` writes
 * them: tables with their columns in order, constraints, indexes and storage parameters; types;
 * functions with their attributes and bodies; views; triggers; row security and policies; grants
 * (pg_dump's ACL entries); comments.
 *
 * A dump is split at pg_dump's own headers (`-- Name: …; Type: …; Schema: …; Owner: -`), and the
 * two dumps are compared by those keys, never by position: pg_dump orders objects partly by OID,
 * which differs between two databases built by different scripts.
 *
 *   const migrations = await dumpSchemas(dbUrlA, ["cafe24_private", "public"]);
 *   const schemas = await dumpSchemas(dbUrlB, ["cafe24_private", "public"]);
 *   const differences = compareDumps(migrations, schemas);
 *   if (differences.length > 0) throw new Error(describeDifferences(differences, labels));
 */

import { postgresBinary } from "./cluster.ts";

/** One object of a dump: pg_dump's header fields and the SQL it writes for the object. */
export interface DumpObject {
  /** `Name: …; Type: …; Schema: …` as in the dump's header (the owner is left out). */
  key: string;
  name: string;
  type: string;
  schema: string;
  /** The object's SQL, blank lines at either end removed. */
  text: string;
}

const HEADER = /^-- Name: (.+); Type: ([A-Z][A-Z ]*); Schema: ([^;]+); Owner: .*$/;

/** Lines that say how or when the dump was made rather than what the database holds. */
const NOISE = [
  /^\\(un)?restrict \S+$/, // pg_dump 15.14+: a random key per dump
  /^SET default_tablespace = .*;$/,
  /^SET default_table_access_method = .*;$/,
];

/** Splits a `pg_dump --schema-only` text into its objects, by key. What comes before the first
 * object (pg_dump's settings) and after the last (its closing line) is not an object. */
export function splitDump(dump: string): Map<string, DumpObject> {
  const lines = dump.split("\n").filter((line) => !NOISE.some((noise) => noise.test(line)));
  const objects = new Map<string, DumpObject>();
  let current: { name: string; type: string; schema: string; lines: string[] } | null = null;
  const finish = () => {
    if (current === null) return;
    let key = `Name: ${current.name}; Type: ${current.type}; Schema: ${current.schema}`;
    for (let n = 2; objects.has(key); n++) {
      key = `Name: ${current.name}; Type: ${current.type}; Schema: ${current.schema} (${n})`;
    }
    objects.set(key, {
      key,
      name: current.name,
      type: current.type,
      schema: current.schema,
      text: current.lines.join("\n").trim(),
    });
    current = null;
  };
  for (let i = 0; i < lines.length; i++) {
    // pg_dump frames every header, and its closing line, as `--` / `-- …` / `--`.
    if (lines[i] === "--" && lines[i + 2] === "--" && lines[i + 1]?.startsWith("-- ")) {
      finish();
      const header = HEADER.exec(lines[i + 1]!);
      if (header !== null) {
        current = { name: header[1]!, type: header[2]!, schema: header[3]!, lines: [] };
      }
      i += 2;
      continue;
    }
    current?.lines.push(lines[i]!);
  }
  finish();
  return objects;
}

/** The order differences are reported in: by schema (cluster-wide objects first), then by kind
 * in the order a reader meets them, then by name. Independent of either dump's own order. */
const TYPE_ORDER = [
  "SCHEMA",
  "EXTENSION",
  "TYPE",
  "DOMAIN",
  "FUNCTION",
  "TABLE",
  "SEQUENCE",
  "SEQUENCE OWNED BY",
  "DEFAULT",
  "VIEW",
  "CONSTRAINT",
  "FK CONSTRAINT",
  "INDEX",
  "TRIGGER",
  "ROW SECURITY",
  "POLICY",
  "COMMENT",
  "ACL",
];

export function compareObjects(a: DumpObject, b: DumpObject): number {
  // By code point, not by locale: the same order on every machine.
  const text = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  const schema = (o: DumpObject) => (o.schema === "-" ? "" : o.schema);
  const rank = (o: DumpObject) => {
    const i = TYPE_ORDER.indexOf(o.type);
    return i < 0 ? TYPE_ORDER.length : i;
  };
  return text(schema(a), schema(b)) || rank(a) - rank(b) || text(a.type, b.type) ||
    text(a.key, b.key);
}

export interface DumpDifference {
  key: string;
  /** The object's SQL in the first dump, or null when only the second has it. */
  expected: string | null;
  /** The object's SQL in the second dump, or null when only the first has it. */
  actual: string | null;
}

/** Every object that is missing from one dump or written differently in the two, in the order
 * of compareObjects. Empty when the dumps describe the same objects. */
export function compareDumps(expected: string, actual: string): DumpDifference[] {
  const a = splitDump(expected);
  const b = splitDump(actual);
  const all = new Map([...b, ...a]);
  return [...all.values()].sort(compareObjects)
    .filter((o) => a.get(o.key)?.text !== b.get(o.key)?.text)
    .map((o) => ({
      key: o.key,
      expected: a.get(o.key)?.text ?? null,
      actual: b.get(o.key)?.text ?? null,
    }));
}

/**
 * A line diff of two texts: `-` lines only in `before`, `+` lines only in `after`, and up to
 * `context` unchanged lines around each change; `…` where unchanged lines are left out. At most
 * `maxLines` lines, then a count of what is left out.
 */
export function lineDiff(before: string, after: string, context = 2, maxLines = 40): string {
  const a = before.split("\n");
  const b = after.split("\n");
  // Longest common subsequence, from the end.
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j]
        ? lcs[i + 1]![j + 1]! + 1
        : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: { op: " " | "-" | "+"; line: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push({ op: " ", line: a[i++]! });
      j++;
    } else if (i < a.length && (j === b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      ops.push({ op: "-", line: a[i++]! });
    } else {
      ops.push({ op: "+", line: b[j++]! });
    }
  }
  const shown = ops.map((o, k) =>
    o.op !== " " ||
    ops.slice(Math.max(0, k - context), k + context + 1).some((near) => near.op !== " ")
  );
  const out: string[] = [];
  ops.forEach((o, k) => {
    if (shown[k]) out.push(`${o.op} ${o.line}`);
    else if (shown[k - 1] || k === 0) out.push("…");
  });
  if (out.length > maxLines) {
    const left = out.length - maxLines;
    return [...out.slice(0, maxLines), `(${left} more line${left === 1 ? "" : "s"})`].join("\n");
  }
  return out.join("\n");
}

/**
 * Says which objects differ: the first one by name, with a diff of its SQL (`-` as in
 * `labels.expected`, `+` as in `labels.actual`), then the keys of up to nine more.
 */
export function describeDifferences(
  differences: DumpDifference[],
  labels: { expected: string; actual: string },
): string {
  if (differences.length === 0) return `${labels.expected} and ${labels.actual} agree`;
  const [first, ...rest] = differences as [DumpDifference, ...DumpDifference[]];
  const lines = [
    `${labels.expected} and ${labels.actual} differ in ${differences.length} object` +
    `${differences.length === 1 ? "" : "s"}. The first: ${first.key}`,
  ];
  if (first.expected === null) {
    lines.push(`only in ${labels.actual}:`, first.actual!);
  } else if (first.actual === null) {
    lines.push(`only in ${labels.expected}:`, first.expected);
  } else {
    lines.push(
      `--- ${labels.expected}`,
      `+++ ${labels.actual}`,
      lineDiff(first.expected, first.actual),
    );
  }
  if (rest.length > 0) {
    lines.push("Also different:", ...rest.slice(0, 9).map((d) => `  ${d.key}`));
    if (rest.length > 9) lines.push(`  … and ${rest.length - 9} more`);
  }
  return lines.join("\n");
}

/**
 * `pg_dump --schema-only --no-owner` of the given schemas, with the pg_dump of the PostgreSQL
 * installation the clusters use (PG_BINDIR, see cluster.ts). The password goes to pg_dump as
 * PGPASSWORD, never on its command line. Throws with pg_dump's message on failure.
 */
export async function dumpSchemas(dbUrl: string, schemas: string[]): Promise<string> {
  const url = new URL(dbUrl);
  const out = await new Deno.Command(await postgresBinary("pg_dump"), {
    args: [
      "--schema-only",
      "--no-owner",
      ...schemas.map((schema) => `--schema=${schema}`),
      "--host",
      url.hostname,
      "--port",
      url.port || "5432",
      "--username",
      decodeURIComponent(url.username),
      "--dbname",
      decodeURIComponent(url.pathname.slice(1)),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { PGPASSWORD: decodeURIComponent(url.password) },
  }).output();
  const dec = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(`pg_dump failed (exit ${out.code}):\n${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout);
}
