/**
 * Every function's front door, over HTTP: a caller without a credential learns nothing about
 * the configuration (401 before any CONFIG_* answer), and a setting one function does not use
 * never stops it. The functions run as a child process against a real database; Cafe24 is the
 * sandbox.
 */
import assert from "node:assert/strict";
import { CRON_SECRET, type RefreshStack, startRefreshStack } from "../support/stack.ts";

const PROTECTED: { name: string; method: string }[] = [
  { name: "cafe24-authorize", method: "GET" },
  { name: "cafe24-callback", method: "POST" },
  { name: "cafe24-connections", method: "GET" },
  { name: "cafe24-disconnect", method: "POST" },
  { name: "cafe24-events", method: "POST" },
  { name: "cafe24-refresh", method: "POST" },
  { name: "cafe24-token", method: "POST" },
];

Deno.test("the front door: authentication before configuration, only a function's own settings", async (t) => {
  let stack: RefreshStack | undefined;
  try {
    stack = await startRefreshStack();
    const { db } = stack;

    await t.step(
      "with settings missing, an anonymous caller gets 401 from every function",
      async () => {
        const broken = await stack!.startFunctions({
          SUPABASE_DB_URL: "",
          CAFE24_CLIENT_ID: "",
          SUPABASE_URL: "https://ref.supabase.co",
          SUPABASE_ANON_KEY: "anon",
        });
        try {
          for (const { name, method } of PROTECTED) {
            const response = await fetch(`${broken.url}/${name}`, {
              method,
              headers: { "content-type": "application/json" },
              ...(method === "POST" ? { body: "{}" } : {}),
            });
            const body = await response.json();
            assert.equal(response.status, 401, `${name}: ${JSON.stringify(body)}`);
            assert.deepEqual(body, { error: "UNAUTHORIZED" }, name);
          }
          // The one caller with a credential learns what is missing.
          const operator = await fetch(`${broken.url}/cafe24-refresh`, {
            method: "POST",
            headers: { "x-cron-secret": CRON_SECRET },
          });
          assert.equal(operator.status, 500);
          assert.deepEqual((await operator.json()).missing, [
            "CAFE24_CLIENT_ID",
            "SUPABASE_DB_URL",
          ]);
        } finally {
          await broken.stop();
        }
      },
    );

    await t.step("a 29-character OAuth state secret does not stop cafe24-refresh", async () => {
      const connectBroken = await stack!.startFunctions({
        CAFE24_OAUTH_STATE_SECRET: "s".repeat(29),
        CAFE24_APP_RETURN_URL: "not a url",
      });
      try {
        const [before] = await db.sql<{ n: number }[]>`
          select count(*)::int as n from cafe24_private.refresh_runs`;
        const response = await fetch(`${connectBroken.url}/cafe24-refresh`, {
          method: "POST",
          headers: { "x-cron-secret": CRON_SECRET },
        });
        const summary = await response.json();
        assert.equal(response.status, 200, JSON.stringify(summary));
        assert.equal(typeof summary.run_id, "string");
        const [after] = await db.sql<{ n: number }[]>`
          select count(*)::int as n from cafe24_private.refresh_runs`;
        assert.equal(after!.n, before!.n + 1, "the run was recorded");
        assert.ok(
          !connectBroken.output.some((line) => line.includes("CAFE24_OAUTH_STATE_SECRET")),
          "nothing about the connect flow's settings in cafe24-refresh's log",
        );
      } finally {
        await connectBroken.stop();
      }
    });
  } finally {
    await stack?.stop();
  }
});
