/**
 * Connection events: one event per state change, written by the database, and delivered to the
 * app's webhook signed, in order per connection, retried, never with a token. Real PostgreSQL
 * with the migrations, the functions over HTTP, the Cafe24 sandbox, a local JWKS and a local
 * webhook receiver.
 */
import assert from "node:assert/strict";
import { waitFor } from "../support/wait.ts";
import { startTestAuth } from "../support/auth.ts";
import { browser } from "../support/connect.ts";
import { asRole } from "../support/roles.ts";
import {
  CLIENT_SECRET,
  connectionState,
  connectMall,
  connectStackOptions,
  CRON_SECRET,
  insertConnection,
  startRefreshStack,
} from "../support/stack.ts";
import { recordTokensSeen } from "../support/tokens_seen.ts";
import { startWebhookReceiver } from "../support/webhook_receiver.ts";
import { startNetDeliverer } from "../../local/supabase/pg_net_deliverer.ts";
import { verifySignedBody } from "../../supabase/functions/_shared/platform/signature.ts";
import { EVENT_HEADERS } from "../../supabase/functions/_shared/events/headers.ts";

const WEBHOOK_SECRET = "test-events-webhook-secret-0123456789abcdef";
const MALL = "evshop";

Deno.test("connection events", async (t) => {
  const auth = await startTestAuth();
  const receiver = startWebhookReceiver();
  const options = connectStackOptions(auth);
  const stack = await startRefreshStack({
    ...options,
    env: {
      ...options.env,
      CAFE24_EVENTS_WEBHOOK_URL: receiver.url,
      CAFE24_EVENTS_WEBHOOK_SECRET: WEBHOOK_SECRET,
    },
  });
  const deliverer = startNetDeliverer(stack.db.dbUrl);
  try {
    const { db, sandbox } = stack;
    const tokensSeen = recordTokensSeen(stack);
    const web = browser(stack);
    sandbox.addMall(MALL);
    const [alice, bob] = [crypto.randomUUID(), crypto.randomUUID()];
    const jwt = (sub: string) => auth.mint({ sub });

    const rowOf = async (userId: string) => {
      const [row] = await db.sql<{ id: string }[]>`
        select id from public.auth_settings where user_id = ${userId}`;
      return row!.id;
    };
    const connect = async (userId: string) => {
      const handle = await web.startConnection(await jwt(userId), MALL);
      const done = await web.complete(await jwt(userId), handle);
      assert.equal(done.status, 200, JSON.stringify(done.body));
      return await rowOf(userId);
    };
    const refresh = async () => {
      const response = await stack.refresh({ mall_id: MALL, force: "true" });
      assert.equal(response.status, 200);
      return await response.json();
    };
    const eventsOf = async (id: string) =>
      (await db.sql<{ type: string; code: string | null }[]>`
        select type, code from cafe24_private.connection_events
        where auth_settings_id = ${id} order by id`).map((e) =>
        e.code === null ? e.type : `${e.type}:${e.code}`
      );
    const eventIds = async (id: string) =>
      (await db.sql<{ id: string }[]>`
        select id from cafe24_private.connection_events
        where auth_settings_id = ${id} order by id`).map((e) => Number(e.id));
    const runEvents = async (server = stack.functions, headers: HeadersInit = {}) => {
      const response = await fetch(`${server.url}/cafe24-events`, {
        method: "POST",
        headers: { "x-cron-secret": CRON_SECRET, ...headers },
      });
      return { status: response.status, body: await response.json() };
    };
    const delivery = async (eventId: number) => {
      const [row] = await db.sql<{
        attempts: number;
        delivered_at: Date | null;
        next_attempt_at: Date;
        last_status: number | null;
        last_error: string | null;
      }[]>`select * from cafe24_private.connection_event_deliveries where event_id = ${eventId}`;
      return row!;
    };
    const makeDue = (eventId: number) =>
      db.sql`
        update cafe24_private.connection_event_deliveries set next_attempt_at = now()
        where event_id = ${eventId}`;

    let aliceRow = "";
    let bobRow = "";
    await t.step("each change of state writes one event; a plain refresh writes none", async () => {
      aliceRow = await connect(alice);
      assert.deepEqual(await eventsOf(aliceRow), ["connected"]);

      assert.equal((await refresh()).refreshed, 1);
      assert.deepEqual(await eventsOf(aliceRow), ["connected"], "a refresh is not an event");

      sandbox.queueFaults(MALL, [{ kind: "server_error", status: 500 }]);
      assert.equal((await refresh()).failed, 1);
      assert.equal((await connectionState(db, aliceRow)).consecutive_failures, 1);
      assert.deepEqual(await eventsOf(aliceRow), ["connected"], "a retried failure is not");
      // The retry is due at once instead of after its backoff.
      await db.sql`
        update cafe24_private.connections set next_attempt_at = now()
        where auth_settings_id = ${aliceRow}`;
      assert.equal((await refresh()).refreshed, 1);
      assert.deepEqual(await eventsOf(aliceRow), ["connected", "recovered"]);

      sandbox.revokeRefreshToken(MALL);
      assert.equal((await refresh()).failed, 1);
      assert.deepEqual(await eventsOf(aliceRow), [
        "connected",
        "recovered",
        "reconnect_required:CAFE24_INVALID_GRANT",
      ]);

      assert.equal(await connect(alice), aliceRow);
      bobRow = await connect(bob);
      assert.equal(await connect(bob), bobRow, "a reconnect of an active connection");
      const revokes = sandbox.counters().requests.revoke;
      const answer = await fetch(`${stack.functions.url}/cafe24-disconnect`, {
        method: "POST",
        headers: { authorization: `Bearer ${await jwt(bob)}`, "content-type": "application/json" },
        body: JSON.stringify({ mall_id: MALL }),
      });
      assert.deepEqual(await answer.json(), { disconnected: true, mall_id: MALL, revoked: true });
      assert.equal(sandbox.counters().requests.revoke, revokes + 1);

      assert.deepEqual(await eventsOf(aliceRow), [
        "connected",
        "recovered",
        "reconnect_required:CAFE24_INVALID_GRANT",
        "connected",
        "taken_over:CONNECTION_TAKEN_OVER",
      ]);
      assert.deepEqual(await eventsOf(bobRow), [
        "connected",
        "connected",
        "disconnected:DISCONNECTED_BY_USER",
      ]);
      const [first] = await db.sql<{ user_id: string; mall_id: string }[]>`
        select user_id, mall_id from cafe24_private.connection_events
        where auth_settings_id = ${bobRow} order by id limit 1`;
      assert.deepEqual({ ...first }, { user_id: bob, mall_id: MALL });
    });

    await t.step("the history is append-only", async () => {
      await assert.rejects(
        db.sql`update cafe24_private.connection_events set code = 'CHANGED'`,
        /append-only/,
      );
      await assert.rejects(db.sql`delete from cafe24_private.connection_events`, /append-only/);
      const seen = await asRole(
        db,
        "service_role",
        (sql) => sql`select count(*)::int as n from cafe24_private.connection_events`,
      );
      assert.equal(seen[0]!.n, 8);
      await assert.rejects(
        asRole(
          db,
          "service_role",
          (sql) =>
            sql`insert into cafe24_private.connection_events (auth_settings_id, type)
                values (${aliceRow}, 'connected') returning id`,
        ),
        /permission denied/,
      );
      await assert.rejects(
        asRole(
          db,
          "service_role",
          (sql) =>
            sql`update cafe24_private.connection_event_deliveries set attempts = 0 returning 1`,
        ),
        /permission denied/,
      );
      for (const role of ["authenticated", "anon"]) {
        await assert.rejects(
          asRole(db, role, (sql) => sql`select * from cafe24_private.connection_events`),
          /permission denied/,
          role,
        );
      }
    });

    await t.step(
      "delivery is signed, in order per connection, retried after a 500, never with a token",
      async () => {
        const [aliceFirst] = await eventIds(aliceRow);
        receiver.answer = (d) => d.eventId === aliceFirst && d.attempt === 1 ? 500 : 200;

        const first = await runEvents();
        assert.equal(first.status, 200);
        assert.deepEqual(
          { ...first.body, duration_ms: 0 },
          { attempted: 4, delivered: 3, failed: 1, duration_ms: 0 },
        );
        assert.deepEqual(
          receiver.deliveries.map((d) => d.eventId).filter((id) => id !== aliceFirst),
          await eventIds(bobRow),
          "the other connection went on, in order",
        );
        assert.equal(
          receiver.deliveries.filter((d) => d.eventId === aliceFirst).length,
          1,
          "alice's later events wait for her first",
        );
        const failed = await delivery(aliceFirst!);
        assert.equal(failed.attempts, 1);
        assert.equal(failed.delivered_at, null);
        assert.equal(failed.last_status, 500);
        assert.equal(failed.last_error, "HTTP 500");
        const waitMs = failed.next_attempt_at.getTime() - Date.now();
        assert.ok(waitMs > 10_000 && waitMs <= 30_000, `backoff ${waitMs} ms`);

        const early = await runEvents();
        assert.equal(early.body.attempted, 0, "nothing is sent before the backoff is over");
        const heads = await db.sql`select * from cafe24_private.due_event_heads(10)`;
        assert.equal(heads.length, 0, "so the cron job would not even call the function");

        await makeDue(aliceFirst!);
        const second = await runEvents();
        assert.equal(second.body.delivered, 5);
        const aliceIds = await eventIds(aliceRow);
        assert.deepEqual(
          receiver.deliveries.map((d) => d.eventId).filter((id) => aliceIds.includes(id)),
          [aliceFirst, ...aliceIds],
          "alice's events arrive in order, the first one twice (at least once)",
        );
        assert.equal((await delivery(aliceFirst!)).attempts, 2);
        assert.notEqual((await delivery(aliceFirst!)).delivered_at, null);

        const now = Math.floor(Date.now() / 1000);
        for (const d of receiver.deliveries) {
          assert.equal(d.headers.get("content-type"), "application/json");
          const signed = verifySignedBody(
            WEBHOOK_SECRET,
            {
              timestamp: d.headers.get(EVENT_HEADERS.timestamp),
              signature: d.headers.get(EVENT_HEADERS.signature),
            },
            d.body,
            now,
          );
          assert.ok(signed, `event ${d.eventId} carries a valid signature`);
          assert.equal(
            verifySignedBody(
              "another-secret-of-sufficient-length!!",
              {
                timestamp: d.headers.get(EVENT_HEADERS.timestamp),
                signature: d.headers.get(EVENT_HEADERS.signature),
              },
              d.body,
              now,
            ),
            false,
          );
          assert.equal(JSON.parse(d.body).id, d.eventId);
        }
        const last = JSON.parse(receiver.deliveries.at(-1)!.body);
        assert.deepEqual(Object.keys(last), [
          "id",
          "type",
          "auth_settings_id",
          "user_id",
          "mall_id",
          "code",
          "occurred_at",
        ]);
        assert.equal(last.type, "taken_over");
        assert.equal(last.code, "CONNECTION_TAKEN_OVER");
        assert.equal(last.user_id, alice);
        assert.match(last.occurred_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);

        const secrets = [...tokensSeen(), CLIENT_SECRET, CRON_SECRET, WEBHOOK_SECRET];
        assert.ok(secrets.length >= 10, `tokens were captured (${secrets.length})`);
        for (const d of receiver.deliveries) {
          const visible = `${d.path} ${[...d.headers].flat().join(" ")} ${d.body}`;
          for (const secret of secrets) {
            assert.ok(!visible.includes(secret), `a secret in delivery of event ${d.eventId}`);
          }
        }
      },
    );

    await t.step("a redirect is a failed delivery and is not followed", async () => {
      await insertConnection(db, { mallId: "evmoved", refreshToken: "r-moved" });
      const [movedEvent] = await db.sql<{ id: string }[]>`
        select max(id) as id from cafe24_private.connection_events`;
      const eventId = Number(movedEvent!.id);
      receiver.answer = (d) =>
        d.path === "/hook" && d.eventId === eventId && d.attempt === 1
          ? new Response(null, { status: 301, headers: { location: `${receiver.origin}/moved` } })
          : 200;
      const before = receiver.deliveries.length;
      const moved = await runEvents();
      assert.deepEqual({ ...moved.body, duration_ms: 0 }, {
        attempted: 1,
        delivered: 0,
        failed: 1,
        duration_ms: 0,
      });
      assert.deepEqual(receiver.deliveries.slice(before).map((d) => d.path), ["/hook"]);
      const failed = await delivery(eventId);
      assert.equal(failed.last_status, 301);
      assert.match(failed.last_error!, /redirects are not followed/);
      await makeDue(eventId);
      assert.equal((await runEvents()).body.delivered, 1);
      assert.ok(receiver.deliveries.every((d) => d.path === "/hook"));
    });

    await t.step("a hanging webhook never holds up a refresh", async () => {
      const { id } = await connectMall(stack, "evslow");
      const [held] = await eventIds(id);
      let release: (status: number) => void = () => {};
      receiver.answer = (d) =>
        d.eventId === held ? new Promise<number>((resolve) => release = resolve) : 200;
      const count = receiver.deliveries.length;
      const pass = runEvents();
      await receiver.waitFor(count + 1);

      // While the delivery is in flight: a refresh, and a failure that writes a new event.
      const refreshed = await stack.refresh({ mall_id: "evslow", force: "true" });
      assert.equal((await refreshed.json()).refreshed, 1);
      sandbox.revokeRefreshToken("evslow");
      const failed = await stack.refresh({ mall_id: "evslow", force: "true" });
      assert.equal((await failed.json()).failed, 1);
      assert.deepEqual(await eventsOf(id), [
        "connected",
        "reconnect_required:CAFE24_INVALID_GRANT",
      ]);

      release(200);
      const done = await pass;
      assert.equal(done.body.delivered, 2, "the held event, then the one written meanwhile");
      assert.deepEqual(
        receiver.deliveries.slice(count).map((d) => d.eventId),
        await eventIds(id),
      );
    });

    await t.step("only the scheduler's secret runs a pass", async () => {
      const url = `${stack.functions.url}/cafe24-events`;
      const answers = [
        await fetch(url, { method: "POST" }),
        await fetch(url, { method: "POST", headers: { "x-cron-secret": "wrong" } }),
        await fetch(url, {
          method: "POST",
          headers: { authorization: `Bearer ${await jwt(alice)}` },
        }),
      ];
      for (const answer of answers) {
        assert.equal(answer.status, 401);
        assert.deepEqual(await answer.json(), { error: "UNAUTHORIZED" });
      }
      assert.equal((await fetch(url)).status, 405);
    });

    await t.step("without a webhook URL nothing is sent; due events wait an hour", async () => {
      const quiet = await stack.startFunctions({ CAFE24_EVENTS_WEBHOOK_URL: "" });
      await insertConnection(db, { mallId: "evquiet", refreshToken: "r-quiet" });
      const [quietEvent] = await db.sql<{ id: string }[]>`
        select max(id) as id from cafe24_private.connection_events`;
      const before = receiver.deliveries.length;
      const answer = await runEvents(quiet);
      assert.deepEqual(answer, { status: 200, body: { webhook: "not_configured", deferred: 1 } });
      assert.equal(receiver.deliveries.length, before);
      const waiting = await delivery(Number(quietEvent!.id));
      const waitMs = waiting.next_attempt_at.getTime() - Date.now();
      assert.ok(waitMs > 55 * 60_000 && waitMs <= 60 * 60_000, `deferred by ${waitMs} ms`);
      assert.equal(waiting.attempts, 0);
      await makeDue(Number(quietEvent!.id));
    });

    await t.step("events are kept 90 days; nothing else deletes them", async () => {
      const [old] = await db.sql<{ id: string }[]>`
        insert into cafe24_private.connection_events (auth_settings_id, type, code, occurred_at)
        values (gen_random_uuid(), 'disconnected', 'DISCONNECTED_BY_USER', now() - interval '91 days')
        returning id`;
      const [recent] = await db.sql<{ id: string }[]>`
        insert into cafe24_private.connection_events (auth_settings_id, type, occurred_at)
        values (gen_random_uuid(), 'connected', now() - interval '89 days')
        returning id`;
      for (const { id } of [old!, recent!]) {
        await assert.rejects(
          db.sql`delete from cafe24_private.connection_events where id = ${id}`,
          /append-only/,
        );
      }
      const [{ trimmed }] = await db.sql<[{ trimmed: number }]>`
        select cafe24_private.trim_connection_events() as trimmed`;
      assert.ok(trimmed >= 1);
      const left = await db.sql<{ id: string }[]>`
        select id from cafe24_private.connection_events where id in (${old!.id}, ${recent!.id})`;
      assert.deepEqual(left.map((row) => row.id), [recent!.id]);
    });

    await t.step("the cron job wakes the function only when an event is due", async () => {
      const [job] = await db.sql<{ schedule: string; command: string }[]>`
        select schedule, command from cron.job where jobname = 'cafe24-events'`;
      assert.equal(job!.schedule, "* * * * *");
      // The job's own command, run here rather than by a tick that could race these steps (once
      // Vault has the secrets, every job would reach the functions).
      await db.sql`update cron.job set active = false`;
      const projectUrl = stack.functions.url.replace(/\/functions\/v1$/, "");
      await db.sql`select vault.create_secret(${projectUrl}, 'cafe24_project_url')`;
      await db.sql`select vault.create_secret(${CRON_SECRET}, 'cafe24_cron_secret')`;
      const invoke = async () => {
        const [row] = await db.sql.unsafe(job!.command);
        const value = Object.values(row!)[0];
        return value === null ? null : Number(value);
      };

      const before = receiver.deliveries.length;
      const requestId = await invoke();
      assert.ok(requestId !== null, "the event left due by the last step wakes it");
      await deliverer.drain();
      const [response] = await db.sql<{ status_code: number; content: string }[]>`
        select status_code, content from net._http_response where id = ${requestId}`;
      assert.equal(response!.status_code, 202);
      const [arrived] = await receiver.waitFor(before + 1).then((all) => all.slice(before));
      assert.equal(arrived!.eventId > 0, true);
      await waitFor(
        "the delivery to be recorded",
        async () => (await delivery(arrived!.eventId)).delivered_at,
      );

      assert.equal(await invoke(), null, "nothing due: no request at all");
      const [queued] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from net.http_request_queue`;
      assert.equal(queued!.n, 0);
    });
  } finally {
    await deliverer.stop();
    await stack.stop();
    await receiver.close();
    await auth.close();
  }
});
