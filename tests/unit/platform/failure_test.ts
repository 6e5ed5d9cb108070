import assert from "node:assert/strict";
import postgres from "postgres";
import {
  failureCode,
  reportFailure,
} from "../../../supabase/functions/_shared/platform/failure.ts";
import { withCapturedLogs } from "../../support/logs.ts";

const TOKEN = "rt-the-refresh-token-0123456789";

/** An error as postgres.js makes one from the server's ErrorResponse fields. */
function serverError(fields: Record<string, string>): Error {
  const PostgresError = postgres.PostgresError as unknown as new (
    fields: Record<string, string>,
  ) => Error;
  return new PostgresError({ severity: "ERROR", ...fields });
}

/** An error as postgres.js or node:net makes one for a connection (a plain Error with a code). */
const connectionError = (code: string) =>
  Object.assign(new Error(`${code} 127.0.0.1:5432`), { code });

Deno.test("failureCode(): DATABASE_UNAVAILABLE only when the database could not be reached", () => {
  const unreachable: (Error & { code?: unknown })[] = [
    ...["CONNECT_TIMEOUT", "CONNECTION_CLOSED", "CONNECTION_DESTROYED", "CONNECTION_ENDED"]
      .map(connectionError),
    ...["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENOTFOUND"].map(connectionError),
    ...["08006", "08001", "57P01", "57P03", "53300"].map((code) =>
      serverError({ code, message: "the server cannot serve the connection" })
    ),
  ];
  for (const error of unreachable) {
    assert.equal(
      failureCode(error),
      "DATABASE_UNAVAILABLE",
      String(error.code),
    );
  }
  const internal: unknown[] = [
    serverError({ code: "23505", message: "duplicate key value violates unique constraint" }),
    serverError({ code: "42883", message: "function does not exist" }),
    serverError({ code: "57014", message: "canceling statement due to statement timeout" }),
    // A SQLSTATE-shaped code on an error the server did not send says nothing about the database.
    connectionError("08006"),
    new TypeError("Cannot read properties of undefined (reading 'id')"),
    new Error("connection refused"),
    "a string",
    null,
  ];
  for (const error of internal) assert.equal(failureCode(error), "INTERNAL_ERROR", String(error));
});

Deno.test("reportFailure() logs the error's name, SQLSTATE and SQL function, never its text", async () => {
  const error = serverError({
    code: "23505",
    message: `duplicate key value violates unique constraint (refresh_token)=(${TOKEN})`,
    detail: `Key (refresh_token)=(${TOKEN}) already exists.`,
    hint: `check ${TOKEN}`,
    where: `SQL function "store_refreshed_tokens" with ${TOKEN}`,
  });
  const [answer, lines] = await withCapturedLogs((lines) =>
    [
      reportFailure("cafe24_test_failed", error, {
        sqlFunction: "cafe24_private.store_refreshed_tokens",
        fields: { run_id: "r1" },
      }),
      lines,
    ] as const
  );
  assert.equal(answer, "INTERNAL_ERROR");
  assert.equal(lines.length, 1);
  const { at: _, ...line } = lines[0]!;
  assert.deepEqual(line, {
    level: "error",
    event: "cafe24_test_failed",
    run_id: "r1",
    failure: "INTERNAL_ERROR",
    error: "PostgresError",
    sqlstate: "23505",
    sql_function: "cafe24_private.store_refreshed_tokens",
  });
  assert.ok(!JSON.stringify(lines).includes(TOKEN));
});

Deno.test("reportFailure() gives a connection error's code and answers DATABASE_UNAVAILABLE", async () => {
  const error = Object.assign(new Error(`connect ECONNREFUSED ${TOKEN}`), {
    code: "ECONNREFUSED",
    address: TOKEN,
  });
  const [answer, lines] = await withCapturedLogs((lines) =>
    [reportFailure("cafe24_test_failed", error), lines] as const
  );
  assert.equal(answer, "DATABASE_UNAVAILABLE");
  const { at: _, ...line } = lines[0]!;
  assert.deepEqual(line, {
    level: "error",
    event: "cafe24_test_failed",
    failure: "DATABASE_UNAVAILABLE",
    error: "Error",
    error_code: "ECONNREFUSED",
  });
  assert.ok(!JSON.stringify(lines).includes(TOKEN));
});

Deno.test("reportFailure() names what is not an Error 'unknown', with nothing of its value", async () => {
  const [answer, lines] = await withCapturedLogs((lines) =>
    [reportFailure("cafe24_test_failed", { code: "08006", message: TOKEN }), lines] as const
  );
  assert.equal(answer, "INTERNAL_ERROR");
  const { at: _, ...line } = lines[0]!;
  assert.deepEqual(line, {
    level: "error",
    event: "cafe24_test_failed",
    failure: "INTERNAL_ERROR",
    error: "unknown",
  });
});
