/**
 * The schedule's decisions, as the SQL makes them (supabase/schemas/50_schedule_and_project_calls.sql):
 * how a tick splits what is due into invocations, how many early refreshes it may add, which
 * project URLs it sends to, and which pg_cron schedule a tick length becomes. Pure functions, case
 * by case, against real PostgreSQL; cron_schedule_test.ts drives them end to end.
 */
import assert from "node:assert/strict";
import { startTestDatabase } from "../../local/postgres/database.ts";

Deno.test("refresh schedule decisions", async (t) => {
  const db = await startTestDatabase();
  try {
    await t.step(
      "a tick splits the due connections evenly over as few invocations as the cap allows",
      async () => {
        const cases: [number, number, number, [number, number | null, boolean]][] = [
          // requested, cap, max parallel → invocations, per invocation, bound hit
          [0, 75, 15, [0, null, false]],
          [1, 75, 15, [1, 1, false]],
          [75, 75, 15, [1, 75, false]],
          [76, 75, 15, [2, 38, false]],
          [1111, 75, 15, [15, 75, false]],
          [1126, 75, 15, [15, 75, true]],
          [23, 4, 10, [6, 4, false]],
          [10, 2, 3, [3, 2, true]],
        ];
        for (const [requested, cap, parallel, expected] of cases) {
          const [row] = await db.sql<
            { invocations: number; per_invocation: number | null; bound_hit: boolean }[]
          >`
          select * from cafe24_private.refresh_tick_split(${requested}, ${cap}, ${parallel})`;
          assert.deepEqual(
            [row!.invocations, row!.per_invocation, row!.bound_hit],
            expected,
            `${requested} due, cap ${cap}, ${parallel} at most`,
          );
          if (expected[0] > 0) {
            assert.ok(expected[0] * expected[1]! >= Math.min(requested, cap * parallel));
          }
        }
      },
    );

    await t.step(
      "early refreshes fill the tick up to its even share, within the spare capacity's share",
      async () => {
        const cases: [number, number, number, number, number, [number, number]][] = [
          // due, upcoming, capacity, window minutes, share % → even share, budget
          // 1,000 due within 45 min + 1 tick: 22 a tick; 5 due leaves room for 17.
          [5, 1000, 1125, 45, 50, [22, 17]],
          // Already at or above the even share: nothing early.
          [22, 1000, 1125, 45, 50, [22, 0]],
          [500, 1000, 1125, 45, 50, [22, 0]],
          // The share of spare capacity bounds it: 10 % of (100 − 5) = 9.
          [5, 10000, 100, 45, 10, [218, 9]],
          // No share, or no spare capacity: nothing.
          [0, 1000, 1125, 45, 0, [22, 0]],
          [1125, 100000, 1125, 45, 50, [2174, 0]],
        ];
        for (const [due, upcoming, capacity, minutes, share, expected] of cases) {
          const [row] = await db.sql<{ even_share: string; budget: string }[]>`
          select * from cafe24_private.refresh_tick_early_budget(
            ${due}, ${upcoming}, ${capacity}, 60, ${`${minutes} minutes`}::interval, ${share})`;
          assert.deepEqual(
            [Number(row!.even_share), Number(row!.budget)],
            expected,
            `due ${due}, upcoming ${upcoming}, capacity ${capacity}, ${share} %`,
          );
        }
      },
    );

    await t.step("only an https origin (or http on loopback) is a project URL", async () => {
      const accepted = [
        "https://abcdefghijklmnop.supabase.co",
        "https://abcdefghijklmnop.supabase.co/",
        "https://functions.example:8443",
        "http://127.0.0.1:54321",
        "http://localhost:54321",
        "http://[::1]:54321",
        "http://host.docker.internal:54321",
      ];
      for (const url of accepted) {
        const [row] = await db.sql`select cafe24_private.project_url_problem(${url}) as problem`;
        assert.equal(row!.problem, null, url);
      }
      const refused = [
        "",
        "https://ref.supabase.co/functions/v1",
        "https://ref.supabase.co/functions/v1/cafe24-refresh",
        "https://ref.supabase.co?a=1",
        "https://ref.supabase.co/#x",
        "https://me@ref.supabase.co",
        "http://ref.supabase.co",
        "http://10.0.0.5:54321",
        "ws://ref.supabase.co",
        "//ref.supabase.co",
        "https://",
        "https://ref.supabase.co:0",
        "https://.supabase.co",
        "https://ref.supabase.co\n",
      ];
      for (const url of refused) {
        const [row] = await db.sql`select cafe24_private.project_url_problem(${url}) as problem`;
        assert.equal(typeof row!.problem, "string", JSON.stringify(url));
      }
    });

    await t.step("a tick length becomes the pg_cron schedule", async () => {
      const cases: [number, string][] = [
        [60, "* * * * *"],
        [300, "*/5 * * * *"],
        [3600, "0 * * * *"],
        [30, "30 seconds"],
      ];
      for (const [seconds, schedule] of cases) {
        const [row] = await db.sql`select cafe24_private.refresh_cron_schedule(${seconds}) as s`;
        assert.equal(row!.s, schedule, String(seconds));
      }
      for (const seconds of [0, 90, 420, 7200]) {
        await assert.rejects(
          db.sql`select cafe24_private.refresh_cron_schedule(${seconds})`,
          /tick_seconds must be/,
          String(seconds),
        );
      }
    });
  } finally {
    await db.stop();
  }
});
