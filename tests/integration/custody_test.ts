/**
 * Custody: a connection belongs to the person who started it, and no browser role can read a
 * token. Real PostgreSQL with the migrations, the functions over HTTP, the Cafe24 sandbox over
 * HTTP and a local JWKS, so the functions' real user verification runs.
 */
import assert from "node:assert/strict";
import { startTestAuth } from "../support/auth.ts";
import { browser } from "../support/connect.ts";
import {
  cafe24Entry,
  CONNECT_SETTINGS,
  connectionState,
  connectStackOptions,
  startRefreshStack,
} from "../support/stack.ts";
import { asRole, asUser } from "../support/roles.ts";

const uuid = (): string => crypto.randomUUID();

Deno.test("custody of a connection", async (t) => {
  const auth = await startTestAuth();
  const stack = await startRefreshStack(connectStackOptions(auth));
  try {
    const { db, sandbox } = stack;
    const web = browser(stack);
    for (
      const mall of [
        "victimshop",
        "aliceshop",
        "raceshop",
        "scopeshop",
        "sweepshop",
        "firstshop",
        "secondshop",
        "diesshop",
        "widenshop",
        "pendshop",
        "floodshop",
      ]
    ) {
      sandbox.addMall(mall);
    }
    // Whether a new grant ends a mall's older pairs is not documented by Cafe24: both are modelled.
    sandbox.addMall("livesshop", { newGrantRevokesOlderPairs: false });
    const [alice, bob, mallory, victim] = [uuid(), uuid(), uuid(), uuid()];
    const jwt = async (sub: string) => await auth.mint({ sub });
    const rowsOf = async (userId: string) => [
      ...await db.sql<{ id: string; providers: Record<string, unknown> }[]>`
        select id, providers from public.auth_settings where user_id = ${userId}`,
    ];
    const revokes = () => sandbox.counters().requests.revoke;

    await t.step("the account mix-up attack stores nothing for the attacker", async () => {
      // Mallory starts a connection for the victim's mall with her own session and asks for
      // everything; the victim's operator approves at Cafe24 and lands on the callback.
      const callbackUrl = await web.authorizeAtCafe24(await jwt(mallory), "victimshop");
      const { hop, fragment, query } = await web.callback(callbackUrl);
      assert.equal(hop.headers.get("referrer-policy"), "no-referrer");
      assert.equal(fragment.get("cafe24"), "pending");
      assert.equal(query.get("handle"), null, "the handle is never in the query string");
      const handle = fragment.get("handle")!;
      assert.match(handle, /^[A-Za-z0-9_-]{43}$/);
      assert.deepEqual(await rowsOf(mallory), [], "nothing attached to the attacker");
      assert.deepEqual(await rowsOf(victim), []);

      // The victim's app completes with the victim's session: refused, destroyed, revoked.
      const revokedBefore = revokes();
      const asVictim = await web.complete(await jwt(victim), handle);
      assert.equal(asVictim.status, 403);
      assert.deepEqual(asVictim.body, { error: "CONNECT_USER_MISMATCH" });
      assert.equal(revokes(), revokedBefore + 1, "the pair was revoked at Cafe24");
      assert.equal(sandbox.liveRefreshToken("victimshop"), undefined, "no live pair is left");

      // Even the initiator cannot use it afterwards, and nothing was stored for anyone.
      const asMallory = await web.complete(await jwt(mallory), handle);
      assert.equal(asMallory.status, 400);
      assert.deepEqual(asMallory.body, { error: "HANDLE_INVALID" });
      assert.deepEqual(await rowsOf(mallory), []);
      assert.deepEqual(await rowsOf(victim), []);
    });

    let aliceRow = "";
    await t.step("only the initiating session completes, once", async () => {
      const handle = await web.startConnection(await jwt(alice), "aliceshop");
      assert.equal((await web.complete(null, handle)).status, 401, "no session");
      assert.equal((await web.complete("not-a-jwt", handle)).status, 401, "a bad session");
      const done = await web.complete(await jwt(alice), handle);
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.deepEqual(done.body, { connected: true, mall_id: "aliceshop", shop_no: 1 });
      const [row] = await rowsOf(alice);
      aliceRow = row!.id;
      const entry = await cafe24Entry(db, aliceRow);
      assert.equal(entry.refresh_token, sandbox.liveRefreshToken("aliceshop"));
      assert.deepEqual(entry.scopes, CONNECT_SETTINGS.scopes.split(","));

      const again = await web.complete(await jwt(alice), handle);
      assert.deepEqual(again, { status: 400, body: { error: "HANDLE_INVALID" } });
      for (const bad of ["", "x".repeat(43), 42, null]) {
        const answer = await web.complete(await jwt(alice), bad);
        assert.deepEqual(answer, { status: 400, body: { error: "HANDLE_INVALID" } }, String(bad));
      }
    });

    await t.step("scopes come from the server's allow-list", async () => {
      const url = await web.get(
        `${stack.functions.url}/cafe24-authorize?mall_id=scopeshop&mode=json&scope=mall.write_product`,
        { headers: { authorization: `Bearer ${await jwt(alice)}` } },
      );
      assert.equal(url.status, 400);
      assert.equal(JSON.parse(url.body).error, "INVALID_SCOPE");
      const narrowed = await web.get(
        `${stack.functions.url}/cafe24-authorize?mall_id=scopeshop&mode=json&scope=mall.read_store`,
        { headers: { authorization: `Bearer ${await jwt(alice)}` } },
      );
      assert.equal(
        new URL(JSON.parse(narrowed.body).url).searchParams.get("scope"),
        "mall.read_store",
      );
      const whole = await web.get(
        `${stack.functions.url}/cafe24-authorize?mall_id=scopeshop&mode=json`,
        { headers: { authorization: `Bearer ${await jwt(alice)}` } },
      );
      assert.equal(
        new URL(JSON.parse(whole.body).url).searchParams.get("scope"),
        CONNECT_SETTINGS.scopes,
      );
    });

    await t.step(
      "a completed connection takes the mall over from its previous holder",
      async () => {
        const bobHandle = await web.startConnection(await jwt(bob), "aliceshop");
        const done = await web.complete(await jwt(bob), bobHandle);
        assert.equal(done.status, 200);
        const [bobRow] = await rowsOf(bob);
        assert.equal(
          (await cafe24Entry(db, bobRow!.id)).refresh_token,
          sandbox.liveRefreshToken("aliceshop"),
        );

        const aliceEntry = await cafe24Entry(db, aliceRow);
        assert.equal(aliceEntry.refresh_token, undefined);
        assert.equal(aliceEntry.access_token, undefined);
        assert.equal(aliceEntry.mall_id, "aliceshop", "settings are kept");
        assert.equal(aliceEntry.shop_no, 1);
        const state = await connectionState(db, aliceRow);
        assert.equal(state.status, "disconnected");
        assert.equal(state.last_error_code, "CONNECTION_TAKEN_OVER");
        const [view] = await asUser(
          db,
          alice,
          (sql) => sql`select * from public.cafe24_connections`,
        );
        assert.equal(view?.status, "disconnected");
        assert.equal(view?.needs_reconnect, true);
      },
    );

    await t.step("two completions racing for one mall leave exactly one holder", async () => {
      const users = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
      const handles: string[] = [];
      for (const user of users) {
        handles.push(await web.startConnection(await jwt(user), "raceshop"));
      }
      const answers = await Promise.all(
        users.map(async (user, i) => web.complete(await jwt(user), handles[i])),
      );
      for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const holders = await db.sql<{ user_id: string }[]>`
        select user_id from cafe24_private.connections
        where mall_id = 'raceshop' and refresh_token is not null`;
      assert.equal(holders.length, 1);
      const disconnected = await db.sql`
        select 1 from cafe24_private.connections
        where mall_id = 'raceshop' and status = 'disconnected'`;
      assert.equal(disconnected.length, 2);
    });

    await t.step(
      "a pending connection nobody completes is removed and revoked by the scheduled run",
      async () => {
        const handle = await web.startConnection(await jwt(alice), "sweepshop");
        assert.ok(sandbox.liveRefreshToken("sweepshop"), "Cafe24 issued a pair");
        const revokedBefore = revokes();
        // Ten minutes pass.
        await db.sql`
        update cafe24_private.pending_connections
        set expires_at = now() - interval '1 second' where mall_id = 'sweepshop'`;
        const run = await stack.refresh({ trigger: "cron" });
        assert.equal(run.status, 200, await run.text());
        const left = await db.sql`
        select 1 from cafe24_private.pending_connections where mall_id = 'sweepshop'`;
        assert.equal(left.length, 0);
        assert.equal(revokes(), revokedBefore + 1);
        assert.equal(
          sandbox.liveRefreshToken("sweepshop"),
          undefined,
          "the pair is dead at Cafe24",
        );
        const late = await web.complete(await jwt(alice), handle);
        assert.deepEqual(late, { status: 400, body: { error: "HANDLE_INVALID" } });
      },
    );

    await t.step("a revoke Cafe24 refuses leaves the pending row for a later sweep", async () => {
      await web.startConnection(await jwt(uuid()), "floodshop");
      const live = sandbox.liveRefreshToken("floodshop");
      assert.ok(live);
      // Someone spends the mall's rate limit at the revoke endpoint.
      for (let i = 0; i < 45; i++) {
        const response = await fetch(`${sandbox.url}/floodshop/api/v2/oauth/revoke`, {
          method: "POST",
        });
        await response.body?.cancel();
      }
      await db.sql`
        update cafe24_private.pending_connections
        set expires_at = now() - interval '1 second' where mall_id = 'floodshop'`;
      assert.equal((await stack.refresh({ trigger: "cron" })).status, 200);
      const [kept] = await db.sql<{ revoke_attempts: number }[]>`
        select revoke_attempts from cafe24_private.pending_connections where mall_id = 'floodshop'`;
      assert.equal(kept?.revoke_attempts, 1, "refused by Cafe24 (429): kept for later");
      assert.equal(sandbox.liveRefreshToken("floodshop"), live);

      // The bucket drains; the row's wait is over; the next sweep revokes and removes it.
      sandbox.clock.advance(60_000);
      await db.sql`
        update cafe24_private.pending_connections
        set next_revoke_at = now() - interval '1 second' where mall_id = 'floodshop'`;
      assert.equal((await stack.refresh({ trigger: "cron" })).status, 200);
      const left = await db.sql`
        select 1 from cafe24_private.pending_connections where mall_id = 'floodshop'`;
      assert.equal(left.length, 0);
      assert.equal(sandbox.liveRefreshToken("floodshop"), undefined);
    });

    await t.step(
      "connecting another mall on the same row revokes the pair it replaces",
      async () => {
        const carol = uuid();
        await web.connect(await jwt(carol), "firstshop");
        assert.ok(sandbox.liveRefreshToken("firstshop"));
        const revokedBefore = revokes();
        await web.connect(await jwt(carol), "secondshop");
        const rows = await rowsOf(carol);
        assert.equal(rows.length, 1, "one settings row, now holding the second mall");
        assert.equal((await cafe24Entry(db, rows[0]!.id)).mall_id, "secondshop");
        assert.equal(revokes(), revokedBefore + 1);
        assert.equal(sandbox.liveRefreshToken("firstshop"), undefined, "no live pair nobody holds");
      },
    );

    await t.step(
      "a new grant that ends older pairs: the refused grant's pair goes to the holder",
      async () => {
        const dana = uuid();
        await web.connect(await jwt(dana), "diesshop");
        const [danaRow] = await rowsOf(dana);
        // Someone else gets the operator to approve a new grant; its completion is refused.
        const handle = await web.startConnection(await jwt(mallory), "diesshop");
        assert.equal((await web.complete(await jwt(dana), handle)).status, 403);
        // That grant ended Dana's stored pair; the new one, the mall's only live pair, is hers.
        const live = sandbox.livePairs("diesshop");
        assert.equal(live.length, 1);
        assert.equal((await cafe24Entry(db, danaRow!.id)).refresh_token, live[0]!.refreshToken);
        const run = await stack.refresh({ mall_id: "diesshop", force: "true" });
        const summary = await run.json();
        assert.equal(summary.refreshed, 1, JSON.stringify(summary));
        assert.equal((await connectionState(db, danaRow!.id)).status, "active");
        assert.deepEqual(await rowsOf(mallory), [], "nothing for the one who started it");
      },
    );

    await t.step(
      "a new grant that leaves older pairs valid: the holder keeps working; a takeover revokes",
      async () => {
        const erin = uuid();
        await web.connect(await jwt(erin), "livesshop");
        const [erinRow] = await rowsOf(erin);
        const handle = await web.startConnection(await jwt(mallory), "livesshop");
        assert.equal((await web.complete(await jwt(erin), handle)).status, 403);
        // The holder took the new pair; her previous one was revoked.
        const kept = sandbox.livePairs("livesshop");
        assert.equal(kept.length, 1);
        assert.equal((await cafe24Entry(db, erinRow!.id)).refresh_token, kept[0]!.refreshToken);
        const run = await stack.refresh({ mall_id: "livesshop", force: "true" });
        assert.equal((await run.json()).refreshed, 1);
        assert.equal((await connectionState(db, erinRow!.id)).status, "active");

        // Frank connects the same mall: Erin's pair is removed here and revoked at Cafe24.
        const frank = uuid();
        await web.connect(await jwt(frank), "livesshop");
        const live = sandbox.livePairs("livesshop");
        assert.equal(live.length, 1, "only Frank's pair is live");
        const [frankRow] = await rowsOf(frank);
        assert.equal((await cafe24Entry(db, frankRow!.id)).refresh_token, live[0]!.refreshToken);
        assert.equal((await connectionState(db, erinRow!.id)).status, "disconnected");
      },
    );

    await t.step(
      "a scope added to the Cafe24 link by hand is refused and its pair revoked",
      async () => {
        const started = await web.get(
          `${stack.functions.url}/cafe24-authorize?mall_id=widenshop&mode=json`,
          { headers: { authorization: `Bearer ${await jwt(alice)}` } },
        );
        const url = new URL(JSON.parse(started.body).url);
        url.searchParams.set("scope", `${url.searchParams.get("scope")},mall.write_order`);
        const atCafe24 = await web.get(url);
        assert.equal(atCafe24.status, 302, atCafe24.body);
        const revokedBefore = revokes();
        const { query, fragment } = await web.callback(new URL(atCafe24.location!));
        assert.equal(query.get("reason"), "SCOPE_NOT_REQUESTED");
        assert.equal(fragment.get("handle"), null);
        assert.equal(revokes(), revokedBefore + 1);
        assert.equal(sandbox.liveRefreshToken("widenshop"), undefined);
        const parked = await db.sql`
        select 1 from cafe24_private.pending_connections where mall_id = 'widenshop'`;
        assert.equal(parked.length, 0);
      },
    );

    await t.step("one user parks at most 5 pending connections; the next is revoked", async () => {
      const gina = uuid();
      for (let i = 0; i < 5; i++) await web.startConnection(await jwt(gina), "pendshop");
      const revokedBefore = revokes();
      const { query } = await web.callback(
        await web.authorizeAtCafe24(await jwt(gina), "pendshop"),
      );
      assert.equal(query.get("reason"), "TOO_MANY_PENDING_CONNECTIONS");
      assert.equal(revokes(), revokedBefore + 1);
      const [row] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from cafe24_private.pending_connections where user_id = ${gina}`;
      assert.equal(row!.n, 5);
    });

    await t.step("one user's authorize calls at once never deadlock", async () => {
      const token = await jwt(uuid());
      const answers = await Promise.all(
        Array.from(
          { length: 40 },
          () =>
            fetch(`${stack.functions.url}/cafe24-authorize?mall_id=scopeshop&mode=json`, {
              headers: { authorization: `Bearer ${token}` },
            }).then(async (response) => {
              await response.body?.cancel();
              return response.status;
            }),
        ),
      );
      assert.deepEqual(answers.filter((status) => status !== 200), []);
    });

    await t.step(
      "no browser role reads a token: authenticated sees only its own rows",
      async () => {
        // Another provider's token must go too.
        await db.sql`
        update public.auth_settings
        set providers = providers || ${
          db.sql.json({
            other: { api_token: "secret-x", refresh_token: "r-x", region: "kr" },
            google: {
              oauth: { refresh_token: "g-r" },
              tokens: [{ access_token: "g-a" }],
              lang: "ko",
            },
            keyed: { apiKey: "k-1", private_key: "k-2", client_cert: "k-3", plan: "pro" },
            slack_token: "xoxb-bare",
          })
        }::jsonb
        where id = ${aliceRow}`;
        // Other providers show only the keys the operator allows, and only scalar values.
        await db.sql`
        insert into cafe24_private.view_allowed_keys (provider, key)
        values ('other', 'region'), ('google', 'lang'), ('google', 'oauth'), ('keyed', 'plan')`;
        await assert.rejects(
          asUser(db, alice, (sql) => sql`select providers from public.auth_settings`),
          /permission denied/,
        );
        await assert.rejects(
          asUser(db, alice, (sql) => sql`select * from cafe24_private.connections`),
          /permission denied/,
        );
        await assert.rejects(
          asUser(db, alice, (sql) => sql`select * from cafe24_private.pending_connections`),
          /permission denied/,
        );
        const views = await asUser(
          db,
          alice,
          (sql) => sql`select * from public.cafe24_connections`,
        );
        assert.equal(views.length, 1);
        assert.equal(views[0]!.auth_settings_id, aliceRow);
        assert.ok(!JSON.stringify(views).includes('token":'), JSON.stringify(views));
        const safe = await asUser(
          db,
          alice,
          (sql) => sql`select * from public.auth_settings_without_tokens`,
        );
        assert.equal(safe.length, 1);
        assert.deepEqual(safe[0]!.providers.other, { region: "kr" });
        assert.deepEqual(safe[0]!.providers.google, { lang: "ko" });
        assert.deepEqual(safe[0]!.providers.keyed, { plan: "pro" });
        assert.equal(safe[0]!.providers.slack_token, undefined);
        for (const secret of ["secret-x", "r-x", "g-r", "g-a", "k-1", "k-2", "k-3", "xoxb-bare"]) {
          assert.ok(!JSON.stringify(safe).includes(secret), secret);
        }
        assert.equal(safe[0]!.providers.cafe24.mall_id, "aliceshop");
        const bobsView = await asUser(
          db,
          bob,
          (sql) => sql`select * from public.cafe24_connections`,
        );
        assert.deepEqual(
          bobsView.map((row) => row.mall_id),
          ["aliceshop"],
        );
        assert.equal(bobsView[0]!.status, "active");
        assert.equal(bobsView[0]!.needs_reconnect, false);
        for (
          const relation of ["auth_settings", "cafe24_connections", "auth_settings_without_tokens"]
        ) {
          await assert.rejects(
            asRole(db, "anon", (sql) => sql`select * from ${sql("public." + relation)}`),
            /permission denied/,
            relation,
          );
        }
      },
    );

    await t.step("no token ever appeared in a URL or a page", () => {
      assert.ok(web.hops.length > 20, "the hops were recorded");
      for (const hop of web.hops) {
        const visible = `${hop.url} ${hop.location ?? ""} ${hop.body}`;
        assert.doesNotMatch(visible, /access_token|refresh_token/, visible.slice(0, 200));
      }
    });
  } finally {
    await stack.stop();
    await auth.close();
  }
});
