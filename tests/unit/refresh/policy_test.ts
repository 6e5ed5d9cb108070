import assert from "node:assert/strict";
import {
  decideAfterFailure,
  type FailureInput,
  retryDelayMs,
} from "../../../supabase/functions/_shared/refresh/policy.ts";
import {
  REFRESH_FAILURES,
  type RefreshFailureCode,
} from "../../../supabase/functions/_shared/platform/errors.ts";

const MINUTE_MS = 60_000;
const LOWEST = () => 0;
const HIGHEST = () => 0.9999999999;
const MIDDLE = () => 0.5;

/** The undrawn step after `failures` earlier failures: 1, 2, 4 … minutes, capped at 30. */
const STEPS_MS = [1, 2, 4, 8, 16, 30, 30, 30].map((minutes) => minutes * MINUTE_MS);

function input(overrides: Partial<FailureInput> & Pick<FailureInput, "code">): FailureInput {
  return { consecutiveFailures: 0, retryAfterMs: null, answerPossiblyLost: false, ...overrides };
}

Deno.test("retryDelayMs() starts at 1 minute and doubles per failure up to 30 minutes", () => {
  STEPS_MS.forEach((step, failures) => {
    assert.equal(retryDelayMs(failures, null, HIGHEST), step, `${failures} failures, top of range`);
    assert.equal(retryDelayMs(failures, null, LOWEST), step / 2, `${failures} failures, bottom`);
  });
});

Deno.test("retryDelayMs() doubles the delay with each failure for the same draw", () => {
  for (let failures = 0; failures < 4; failures++) {
    assert.equal(
      retryDelayMs(failures + 1, null, MIDDLE),
      2 * retryDelayMs(failures, null, MIDDLE),
      `${failures} → ${failures + 1}`,
    );
  }
});

Deno.test("retryDelayMs() always draws within 50-100 % of the step", () => {
  for (let failures = 0; failures <= 12; failures++) {
    const step = STEPS_MS[Math.min(failures, STEPS_MS.length - 1)] ?? Number.NaN;
    for (let i = 0; i < 1000; i++) {
      const draw = i / 1000;
      const delay = retryDelayMs(failures, null, () => draw);
      assert.ok(
        delay >= step / 2 && delay <= step,
        `${failures} failures, random ${draw}: ${delay} not in [${step / 2}, ${step}]`,
      );
    }
  }
});

Deno.test("retryDelayMs() uses the random draw for jitter", () => {
  const low = retryDelayMs(3, null, () => 0.1);
  const high = retryDelayMs(3, null, () => 0.9);
  assert.ok(low < high, `${low} < ${high}`);
});

Deno.test("retryDelayMs() stays at 30 minutes after very many failures", () => {
  for (const failures of [50, 1_000, Number.MAX_SAFE_INTEGER]) {
    assert.equal(retryDelayMs(failures, null, HIGHEST), 30 * MINUTE_MS, String(failures));
  }
});

Deno.test("retryDelayMs() treats Retry-After as a floor", () => {
  assert.equal(retryDelayMs(0, 10 * MINUTE_MS, LOWEST), 10 * MINUTE_MS);
  assert.equal(retryDelayMs(5, 45 * MINUTE_MS, HIGHEST), 45 * MINUTE_MS);
  // A shorter Retry-After does not shorten the backoff.
  assert.equal(retryDelayMs(3, 1_000, LOWEST), 4 * MINUTE_MS);
  assert.equal(retryDelayMs(0, 0, LOWEST), 30_000);
});

Deno.test("retryDelayMs() caps Retry-After at 1 hour", () => {
  assert.equal(retryDelayMs(0, 60 * MINUTE_MS + 1, LOWEST), 60 * MINUTE_MS);
  assert.equal(retryDelayMs(0, 5 * 60 * MINUTE_MS, HIGHEST), 60 * MINUTE_MS);
  assert.equal(retryDelayMs(0, 365 * 24 * 60 * MINUTE_MS, HIGHEST), 60 * MINUTE_MS);
});

Deno.test("decideAfterFailure() makes invalid_grant permanent without a retry", () => {
  assert.deepEqual(decideAfterFailure(input({ code: "CAFE24_INVALID_GRANT" }), MIDDLE), {
    code: "CAFE24_INVALID_GRANT",
    permanent: true,
    retryInMs: null,
  });
});

Deno.test("decideAfterFailure() reports invalid_grant after a possibly lost answer as CAFE24_ANSWER_LOST", () => {
  assert.deepEqual(
    decideAfterFailure(input({ code: "CAFE24_INVALID_GRANT", answerPossiblyLost: true }), MIDDLE),
    { code: "CAFE24_ANSWER_LOST", permanent: true, retryInMs: null },
  );
});

Deno.test("decideAfterFailure() leaves other codes alone when an answer may have been lost", () => {
  const decision = decideAfterFailure(
    input({ code: "CAFE24_SERVER_ERROR", answerPossiblyLost: true, consecutiveFailures: 2 }),
    LOWEST,
  );
  assert.deepEqual(decision, {
    code: "CAFE24_SERVER_ERROR",
    permanent: false,
    retryInMs: 2 * MINUTE_MS,
  });
});

Deno.test("decideAfterFailure() makes INVALID_MALL_ID permanent with retryInMs null", () => {
  assert.deepEqual(
    decideAfterFailure(input({ code: "INVALID_MALL_ID", retryAfterMs: 5_000 }), MIDDLE),
    { code: "INVALID_MALL_ID", permanent: true, retryInMs: null },
  );
});

Deno.test("decideAfterFailure() waits at least 15 minutes after CAFE24_CLIENT_AUTH_FAILED", () => {
  for (let failures = 0; failures <= 8; failures++) {
    for (const random of [LOWEST, MIDDLE, HIGHEST]) {
      const decision = decideAfterFailure(
        input({ code: "CAFE24_CLIENT_AUTH_FAILED", consecutiveFailures: failures }),
        random,
      );
      assert.equal(decision.permanent, false);
      assert.equal(decision.code, "CAFE24_CLIENT_AUTH_FAILED");
      assert.ok(
        decision.retryInMs !== null && decision.retryInMs >= 15 * MINUTE_MS,
        `${failures} failures: ${decision.retryInMs}`,
      );
    }
  }
  assert.equal(
    decideAfterFailure(input({ code: "CAFE24_CLIENT_AUTH_FAILED" }), LOWEST).retryInMs,
    15 * MINUTE_MS,
  );
  assert.equal(
    decideAfterFailure(
      input({ code: "CAFE24_CLIENT_AUTH_FAILED", consecutiveFailures: 9 }),
      HIGHEST,
    ).retryInMs,
    30 * MINUTE_MS,
  );
});

Deno.test("decideAfterFailure() honours a 429's Retry-After", () => {
  const decision = decideAfterFailure(
    input({ code: "CAFE24_RATE_LIMITED", retryAfterMs: 20 * MINUTE_MS }),
    HIGHEST,
  );
  assert.deepEqual(decision, {
    code: "CAFE24_RATE_LIMITED",
    permanent: false,
    retryInMs: 20 * MINUTE_MS,
  });
});

Deno.test("decideAfterFailure() retries every transient failure with the backoff delay", () => {
  const codes = Object.keys(REFRESH_FAILURES) as RefreshFailureCode[];
  const transient = codes.filter((code) =>
    !REFRESH_FAILURES[code].permanent && code !== "CAFE24_CLIENT_AUTH_FAILED"
  );
  assert.ok(transient.includes("CAFE24_TIMEOUT"));
  assert.ok(transient.includes("CAFE24_MALFORMED_RESPONSE"));
  for (const code of transient) {
    for (let failures = 0; failures <= 6; failures++) {
      const draw = () => 0.37;
      assert.deepEqual(
        decideAfterFailure(input({ code, consecutiveFailures: failures }), draw),
        { code, permanent: false, retryInMs: retryDelayMs(failures, null, draw) },
        `${code} after ${failures} failures`,
      );
    }
  }
});

Deno.test("decideAfterFailure() never schedules a retry for a permanent failure", () => {
  const codes = Object.keys(REFRESH_FAILURES) as RefreshFailureCode[];
  const permanent = codes.filter((code) => REFRESH_FAILURES[code].permanent);
  assert.deepEqual(
    [...permanent].sort(),
    ["CAFE24_ANSWER_LOST", "CAFE24_INVALID_GRANT", "INVALID_MALL_ID"],
  );
  for (const code of permanent) {
    const decision = decideAfterFailure(
      input({ code, consecutiveFailures: 3, retryAfterMs: MINUTE_MS }),
      MIDDLE,
    );
    assert.equal(decision.permanent, true, code);
    assert.equal(decision.retryInMs, null, code);
  }
});
