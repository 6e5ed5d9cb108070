/**
 * Findings 6 and 7: custody. 6: a stranger's refused or abandoned attempt at a mall never leaves
 * the mall's real holder without a working pair, whichever way Cafe24 treats older pairs on a new
 * grant (`newGrantRevokesOlderPairs`). 7: the drop-in view public.auth_settings_without_tokens
 * shows settings by an allow-list, to every role that may read it.
 */
import assert from "node:assert/strict";
import { startTestAuth } from "../../support/auth.ts";
import { browser } from "../../support/connect.ts";
import {
  cafe24Entry,
  CONNECT_SETTINGS,
  connectionState,
  connectStackOptions,
  startRefreshStack,
} from "../../support/stack.ts";
import { startTestDatabase } from "../../../local/postgres/database.ts";
import { asRole, asUser } from "../../support/roles.ts";

export async function finding06(t: Deno.TestContext): Promise<void> {
  const auth = await startTestAuth();
  const stack = await startRefreshStack(connectStackOptions(auth));
  try {
    const { db, sandbox } = stack;
    const web = browser(stack);
    const jwt = async (sub: string) => await auth.mint({ sub });
    const mallory = crypto.randomUUID();
    const revokes = () => sandbox.counters().requests.revoke;
    const malloryRows = async () =>
      (await db.sql`select 1 from public.auth_settings where user_id = ${mallory}`).length;

    for (const revokesOlder of [true, false]) {
      const mall = revokesOlder ? "holdends" : "holdlives";
      sandbox.addMall(mall, { newGrantRevokesOlderPairs: revokesOlder });
      const victim = crypto.randomUUID();
      assert.equal((await web.connect(await jwt(victim), mall)).status, 200);
      const [row] = await db.sql<{ id: string }[]>`
        select id from public.auth_settings where user_id = ${victim}`;
      const victimRow = row!.id;

      /** The victim holds the mall's only live pair, and Cafe24 refreshes it. */
      const holderWorks = async (what: string) => {
        const live = sandbox.livePairs(mall);
        assert.equal(live.length, 1, `${what}: one live pair`);
        assert.equal(
          (await cafe24Entry(db, victimRow)).refresh_token,
          live[0]!.refreshToken,
          `${what}: the holder has it`,
        );
        const run = await stack.refresh({ mall_id: mall, force: "true" });
        const summary = await run.json();
        assert.equal(summary.refreshed, 1, `${what}: ${JSON.stringify(summary)}`);
        assert.equal((await connectionState(db, victimRow)).status, "active", what);
        assert.equal(
          (await cafe24Entry(db, victimRow)).refresh_token,
          sandbox.liveRefreshToken(mall),
          `${what}: the rotated pair is stored`,
        );
        assert.equal(await malloryRows(), 0, `${what}: the stranger has nothing`);
      };

      await t.step(`grants end older pairs: ${revokesOlder}; a refused completion`, async () => {
        // Mallory starts an attempt at the victim's mall, the operator approves it, and the
        // victim's app completes it with the victim's session: refused.
        const handle = await web.startConnection(await jwt(mallory), mall);
        const refused = await web.complete(await jwt(victim), handle);
        assert.deepEqual(refused, { status: 403, body: { error: "CONNECT_USER_MISMATCH" } });
        assert.deepEqual(
          await web.complete(await jwt(mallory), handle),
          { status: 400, body: { error: "HANDLE_INVALID" } },
        );
        await holderWorks("refused");
      });

      await t.step(
        `grants end older pairs: ${revokesOlder}; an attempt left to expire`,
        async () => {
          await web.startConnection(await jwt(mallory), mall);
          await db.sql`
          update cafe24_private.pending_connections
          set expires_at = now() - interval '1 second' where mall_id = ${mall}`;
          const run = await stack.refresh({ trigger: "cron" });
          assert.equal(run.status, 200, await run.text());
          const left = await db.sql`
          select 1 from cafe24_private.pending_connections where mall_id = ${mall}`;
          assert.equal(left.length, 0);
          await holderWorks("expired, swept");

          const late = await web.startConnection(await jwt(mallory), mall);
          await db.sql`
          update cafe24_private.pending_connections
          set expires_at = now() - interval '1 second' where mall_id = ${mall}`;
          assert.equal((await web.complete(await jwt(mallory), late)).status, 400);
          await holderWorks("expired, completed late");
        },
      );

      await t.step(
        `grants end older pairs: ${revokesOlder}; narrower scopes are revoked`,
        async () => {
          const narrow = CONNECT_SETTINGS.scopes.split(",")[0]!;
          const before = (await cafe24Entry(db, victimRow)).refresh_token;
          const revokedBefore = revokes();
          const { fragment } = await web.callback(
            await web.authorizeAtCafe24(await jwt(mallory), mall, { scope: narrow }),
          );
          const refused = await web.complete(await jwt(victim), fragment.get("handle"));
          assert.equal(refused.status, 403);
          assert.equal(revokes(), revokedBefore + 1, "the narrower pair was revoked");
          assert.equal((await cafe24Entry(db, victimRow)).refresh_token, before, "not given");
          assert.equal(await malloryRows(), 0);
        },
      );
    }
  } finally {
    await stack.stop();
    await auth.close();
  }
}

export async function finding07(t: Deno.TestContext): Promise<void> {
  const db = await startTestDatabase();
  try {
    const [owner, other] = [crypto.randomUUID(), crypto.randomUUID()];
    const secrets = {
      pwd: "s-pwd",
      passphrase: "s-passphrase",
      jwt: "s-jwt",
      bearer: "s-bearer",
      dsn: "postgres://app:s-dsn@db.example/app",
      pat: "s-pat",
      otp_seed: "s-otp",
      code: "s-code",
    };
    const providers = {
      cafe24: {
        mall_id: "allowshop",
        shop_no: 1,
        board_no: 7,
        scope: "mall.read_store",
        connected_at: "2026-12-01T00:00:00Z",
        expires_at: "2026-12-07T02:00:00Z",
        refresh_token_expires_at: "2026-12-21T00:00:00Z",
        access_token: "s-access",
        refresh_token: "s-refresh",
        scopes: ["mall.read_store"],
        shops: [{ shop_no: 1, name: "Main", default: true }],
        ...secrets,
      },
      acme: {
        region: "kr",
        webhook_url: "https://hook:s-hook@hooks.example/in",
        nested: { region: "kr", token: "s-nested" },
        ...secrets,
      },
      slack_token: "s-bare",
    };
    await db.sql`
      insert into public.auth_settings (user_id, providers)
      values (${owner}, ${db.sql.json(providers)}::jsonb)`;
    const asOwner = () =>
      asUser(db, owner, (sql) => sql`select * from public.auth_settings_without_tokens`);
    const shownFor = (rows: readonly Record<string, unknown>[]) =>
      rows.find((row) => row.user_id === owner)?.providers as Record<string, unknown>;
    const cafe24Shown = {
      mall_id: "allowshop",
      shop_no: 1,
      board_no: 7,
      scope: "mall.read_store",
      connected_at: "2026-12-01T00:00:00Z",
      // The expiries, from the connection's private row where they live.
      expires_at: "2026-12-07T02:00:00.000Z",
      refresh_token_expires_at: "2026-12-21T00:00:00.000Z",
    };

    await t.step(
      "by default: Cafe24's documented settings, nothing of another provider",
      async () => {
        const rows = await asOwner();
        assert.equal(rows.length, 1);
        assert.deepEqual(rows[0]!.providers, { cafe24: cafe24Shown, acme: {} });
        for (const secret of [...Object.values(secrets), "s-access", "s-refresh", "s-bare"]) {
          assert.ok(!JSON.stringify(rows).includes(secret), secret);
        }
      },
    );

    await t.step("service_role reads the view: every row, the same providers", async () => {
      await db.sql`insert into public.auth_settings (user_id, providers) values (${other}, '{}')`;
      const rows = await asRole(
        db,
        "service_role",
        (sql) => sql`select * from public.auth_settings_without_tokens`,
      );
      assert.deepEqual(shownFor(rows), { cafe24: cafe24Shown, acme: {} });
      assert.ok(rows.some((row) => row.user_id === other));
      const mine = await asUser(
        db,
        other,
        (sql) => sql`select user_id from public.auth_settings_without_tokens`,
      );
      assert.deepEqual(mine.map((row) => row.user_id), [other], "authenticated: own rows only");
    });

    await t.step("the operator's allow-list adds other providers' scalar settings", async () => {
      await asRole(db, "service_role", (sql) =>
        sql`
          insert into cafe24_private.view_allowed_keys (provider, key)
          values ('acme', 'region'), ('acme', 'webhook_url'), ('acme', 'nested')`);
      // A URL with a password and a nested object stay hidden even under an allowed key.
      assert.deepEqual(shownFor(await asOwner()), { cafe24: cafe24Shown, acme: { region: "kr" } });
      // Cafe24's tokens can never be listed.
      await assert.rejects(
        asRole(db, "service_role", (sql) =>
          sql`
            insert into cafe24_private.view_allowed_keys (provider, key)
            values ('cafe24', 'refresh_token')`),
        /check constraint/,
      );
    });

    await t.step("nobody but service_role writes the allow-list; anon reads nothing", async () => {
      await assert.rejects(
        asUser(
          db,
          owner,
          (sql) =>
            sql`insert into cafe24_private.view_allowed_keys (provider, key) values ('acme', 'pwd')`,
        ),
        /permission denied/,
      );
      await assert.rejects(
        asRole(db, "anon", (sql) => sql`select * from public.auth_settings_without_tokens`),
        /permission denied/,
      );
    });
  } finally {
    await db.stop();
  }
}
