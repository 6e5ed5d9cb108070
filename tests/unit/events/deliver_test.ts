import assert from "node:assert/strict";
import {
  deliverEvents,
  MAX_EVENTS_PER_PASS,
  PASS_BUDGET_MS,
} from "../../../supabase/functions/_shared/events/deliver.ts";
import type { ClaimedEvent, EventStore } from "../../../supabase/functions/_shared/events/store.ts";

const WEBHOOK = { url: "https://app.example/hooks/cafe24", secret: "s".repeat(32) };

/** An outbox that never runs dry: every claim returns `limit` fresh events. */
function endlessStore(settled: { id: number; delivered: boolean; retryAt: Date }[]): EventStore {
  let next = 1;
  return {
    claim: (_lease, limit) =>
      Promise.resolve(Array.from({ length: limit }, (): ClaimedEvent => ({
        attempts: 1,
        event: {
          id: next++,
          type: "connected",
          auth_settings_id: crypto.randomUUID(),
          user_id: null,
          mall_id: "myshop",
          code: null,
          occurred_at: new Date(0).toISOString(),
        },
      }))),
    settle: (id, _lease, outcome) => {
      settled.push({ id, delivered: outcome.delivered, retryAt: outcome.retryAt });
      return Promise.resolve(outcome.delivered ? "delivered" : "retry_scheduled");
    },
    defer: () => Promise.resolve(0),
  };
}

Deno.test("deliverEvents() stops at MAX_EVENTS_PER_PASS", async () => {
  const settled: { id: number; delivered: boolean; retryAt: Date }[] = [];
  const summary = await deliverEvents({
    store: endlessStore(settled),
    webhook: WEBHOOK,
    fetch: () => Promise.resolve(new Response(null, { status: 204 })),
  });
  assert.equal(summary.attempted, MAX_EVENTS_PER_PASS);
  assert.equal(summary.delivered, MAX_EVENTS_PER_PASS);
  assert.equal(settled.length, MAX_EVENTS_PER_PASS);
});

Deno.test("deliverEvents() stops claiming when its time is up", async () => {
  let clock = 0;
  const settled: { id: number; delivered: boolean; retryAt: Date }[] = [];
  const summary = await deliverEvents({
    store: endlessStore(settled),
    webhook: WEBHOOK,
    now: () => clock,
    fetch: () => {
      clock += PASS_BUDGET_MS / 2;
      return Promise.resolve(new Response(null, { status: 200 }));
    },
  });
  assert.ok(summary.attempted < MAX_EVENTS_PER_PASS, String(summary.attempted));
  assert.equal(summary.attempted, settled.length);
});

Deno.test("deliverEvents() records failures with their retry time, and throws nothing", async () => {
  const settled: { id: number; delivered: boolean; retryAt: Date }[] = [];
  let calls = 0;
  const summary = await deliverEvents({
    store: endlessStore(settled),
    webhook: WEBHOOK,
    now: () => 1_000_000,
    random: () => 1,
    fetch: () => {
      calls++;
      return calls % 2 === 0
        ? Promise.reject(new TypeError("connection refused"))
        : Promise.resolve(new Response("moved", { status: 302, headers: { location: "/x" } }));
    },
  });
  assert.equal(summary.failed, MAX_EVENTS_PER_PASS);
  assert.ok(settled.every((s) => !s.delivered && s.retryAt.getTime() === 1_000_000 + 30_000));
});
