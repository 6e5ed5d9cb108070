/**
 * Finding 2: a setting for one function stops another. A 29-character CAFE24_OAUTH_STATE_SECRET
 * (a connect-flow setting) and an invalid tuning value must not stop cafe24-refresh: the run
 * goes ahead with the default and says so in its `warnings`; only the database URL, the app's
 * credentials and, for scheduled callers, an unset CRON_SECRET may stop it.
 */
import assert from "node:assert/strict";
import { connectMall, CRON_SECRET, startRefreshStack } from "../../support/stack.ts";

export async function finding02(t: Deno.TestContext): Promise<void> {
  const stack = await startRefreshStack();
  try {
    await connectMall(stack, "shopsetting");
    const misconfigured = await stack.startFunctions({
      CAFE24_OAUTH_STATE_SECRET: "s".repeat(29),
      CAFE24_APP_RETURN_URL: "not a url",
      CAFE24_REFRESH_CONCURRENCY: "lots",
      CAFE24_REFRESH_POLICY: "sometimes",
    });
    await t.step("the scheduled run refreshes the due mall and warns", async () => {
      const response = await fetch(`${misconfigured.url}/cafe24-refresh`, {
        method: "POST",
        headers: { "x-cron-secret": CRON_SECRET },
      });
      const summary = await response.json();
      assert.equal(response.status, 200, JSON.stringify(summary));
      assert.equal(summary.refreshed, 1, "the due mall was refreshed");
      assert.deepEqual(summary.warnings, ["CONFIG_VALUE_IGNORED"]);
      const [run] = await stack.db.sql<{ warnings: string[] }[]>`
        select summary -> 'warnings' as warnings from cafe24_private.refresh_runs
        where id = ${summary.run_id}`;
      assert.deepEqual(run?.warnings, ["CONFIG_VALUE_IGNORED"], "the run's record says it too");
    });
    await t.step("the log names each ignored variable and its rule, never its value", () => {
      const ignored = misconfigured.output.filter((line) =>
        line.includes('"event":"config_value_ignored"')
      );
      assert.ok(ignored.length > 0);
      assert.ok(ignored.every((line) => line.includes("CAFE24_REFRESH_CONCURRENCY")));
      assert.ok(
        ignored.every((line) => line.includes("CAFE24_REFRESH_POLICY must be eager or keep_alive")),
      );
      assert.ok(!misconfigured.output.join("\n").includes("sometimes"));
      assert.ok(!misconfigured.output.join("\n").includes("CAFE24_OAUTH_STATE_SECRET"));
    });
    await misconfigured.stop();
  } finally {
    await stack.stop();
  }
}
