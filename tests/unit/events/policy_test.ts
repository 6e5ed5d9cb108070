import assert from "node:assert/strict";
import {
  DELIVERY_RETRY_BASE_MS,
  DELIVERY_RETRY_MAX_MS,
  deliveryRetryDelayMs,
  isAccepted,
} from "../../../supabase/functions/_shared/events/policy.ts";

Deno.test("deliveryRetryDelayMs() doubles from 30 s per attempt", () => {
  const full = () => 1;
  assert.equal(deliveryRetryDelayMs(1, full), DELIVERY_RETRY_BASE_MS);
  assert.equal(deliveryRetryDelayMs(2, full), 2 * DELIVERY_RETRY_BASE_MS);
  assert.equal(deliveryRetryDelayMs(5, full), 16 * DELIVERY_RETRY_BASE_MS);
});

Deno.test("deliveryRetryDelayMs() draws from 50-100 % of the step", () => {
  assert.equal(deliveryRetryDelayMs(1, () => 0), DELIVERY_RETRY_BASE_MS / 2);
  assert.equal(deliveryRetryDelayMs(3, () => 0.5), 0.75 * 4 * DELIVERY_RETRY_BASE_MS);
});

Deno.test("deliveryRetryDelayMs() stops growing at an hour, for any attempt count", () => {
  for (const attempts of [8, 9, 50, 10_000, Number.MAX_SAFE_INTEGER]) {
    assert.equal(deliveryRetryDelayMs(attempts, () => 1), DELIVERY_RETRY_MAX_MS, String(attempts));
  }
  assert.equal(deliveryRetryDelayMs(0, () => 1), DELIVERY_RETRY_BASE_MS);
});

Deno.test("isAccepted() takes 2xx only; a redirect is a failure", () => {
  for (const status of [200, 201, 202, 204, 299]) assert.equal(isAccepted(status), true);
  for (const status of [100, 199, 300, 301, 302, 307, 308, 400, 404, 410, 500, 503]) {
    assert.equal(isAccepted(status), false, String(status));
  }
});
