import assert from "node:assert/strict";
import { retryWaitMs, withRetries } from "../../../supabase/functions/_shared/platform/retry.ts";

/** A call that throws `failures` times, then answers; and the waits withRetries asked for. */
function flaky(failures: number) {
  let calls = 0;
  const waits: number[] = [];
  return {
    call: () => {
      calls++;
      return calls <= failures
        ? Promise.reject(new Error(`failure ${calls}`))
        : Promise.resolve(`answer after ${calls}`);
    },
    wait: (ms: number) => {
      waits.push(ms);
      return Promise.resolve();
    },
    calls: () => calls,
    waits,
  };
}

Deno.test("withRetries() answers at once when the first try succeeds", async () => {
  const f = flaky(0);
  assert.equal(
    await withRetries(f.call, { attempts: 4, firstDelayMs: 250 }, f.wait),
    "answer after 1",
  );
  assert.deepEqual(f.waits, []);
});

Deno.test("withRetries() waits twice as long after each failure, then answers", async () => {
  const f = flaky(3);
  assert.equal(
    await withRetries(f.call, { attempts: 4, firstDelayMs: 250 }, f.wait),
    "answer after 4",
  );
  assert.deepEqual(f.waits, [250, 500, 1_000]);
});

Deno.test("withRetries() throws the last error after the last try, without a wait after it", async () => {
  const f = flaky(10);
  await assert.rejects(
    withRetries(f.call, { attempts: 5, firstDelayMs: 400 }, f.wait),
    /^Error: failure 5$/,
  );
  assert.equal(f.calls(), 5);
  assert.deepEqual(f.waits, [400, 800, 1_600, 3_200]);
  assert.equal(retryWaitMs({ attempts: 5, firstDelayMs: 400 }), 6_000);
});

Deno.test("withRetries() with one attempt never retries", async () => {
  const f = flaky(1);
  await assert.rejects(
    withRetries(f.call, { attempts: 1, firstDelayMs: 100 }, f.wait),
    /failure 1/,
  );
  assert.deepEqual(f.waits, []);
  assert.equal(retryWaitMs({ attempts: 1, firstDelayMs: 100 }), 0);
});

Deno.test("withRetries() waits for real by default", async () => {
  const f = flaky(1);
  const started = performance.now();
  assert.equal(await withRetries(f.call, { attempts: 2, firstDelayMs: 30 }), "answer after 2");
  assert.ok(performance.now() - started >= 25);
});
