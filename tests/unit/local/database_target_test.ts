import assert from "node:assert/strict";
import {
  chooseDatabase,
  redactUrl,
  type TargetInputs,
} from "../../../local/stack/database_target.ts";
import type { StackInfo } from "../../../local/stack/stack_info.ts";

const STACK = { db_url: "postgresql://postgres:local@127.0.0.1:54322/postgres" } as StackInfo;
const REMOTE = "postgresql://postgres.ref:pw@aws-0-eu.pooler.supabase.com:5432/postgres";
const inputs = (overrides: Partial<TargetInputs>): TargetInputs => ({
  flag: undefined,
  shellEnv: {},
  fileEnv: {},
  envFile: ".env",
  stack: null,
  ...overrides,
});

Deno.test("chooseDatabase() without a URL or a running stack says how to get one, never guesses", () => {
  const target = chooseDatabase(inputs({}));
  assert.equal(target.ok, false);
  assert.match(!target.ok ? target.message : "", /npm start.*or set SUPABASE_DB_URL/s);
});

Deno.test("chooseDatabase() takes the environment, then the env file, then the running stack", () => {
  const fromShell = chooseDatabase(
    inputs({
      shellEnv: { SUPABASE_DB_URL: REMOTE },
      fileEnv: { SUPABASE_DB_URL: "x" },
      stack: STACK,
    }),
  );
  assert.ok(fromShell.ok);
  assert.equal(fromShell.url, REMOTE);
  assert.equal(fromShell.localStack, false);
  assert.match(fromShell.source, /environment/);

  const fromFile = chooseDatabase(inputs({ fileEnv: { SUPABASE_DB_URL: REMOTE }, stack: STACK }));
  assert.ok(fromFile.ok);
  assert.equal(fromFile.source, "SUPABASE_DB_URL from .env");

  const fromStack = chooseDatabase(inputs({ shellEnv: { SUPABASE_DB_URL: "" }, stack: STACK }));
  assert.ok(fromStack.ok);
  assert.equal(fromStack.url, STACK.db_url);
  assert.equal(fromStack.localStack, true);
  assert.deepEqual(fromStack.warnings, []);
});

Deno.test("chooseDatabase() warns when --db-url carries a password", () => {
  const withPassword = chooseDatabase(inputs({ flag: REMOTE }));
  assert.ok(withPassword.ok);
  assert.match(withPassword.warnings[0]!, /--db-url carries a password/);
  const without = chooseDatabase(inputs({ flag: "postgresql://postgres@db.example/postgres" }));
  assert.ok(without.ok);
  assert.deepEqual(without.warnings, []);
});

Deno.test("redactUrl() masks the password", () => {
  assert.equal(
    redactUrl(REMOTE),
    "postgresql://postgres.ref:***@aws-0-eu.pooler.supabase.com:5432/postgres",
  );
});
