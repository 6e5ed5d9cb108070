/**
 * Tokens at rest: the functions store every connection's pair sealed with their key ring, so the
 * database (a dump, the statement log, any SQL role) holds no token the sandbox ever issued; a
 * sealed value moved to another row or field does not open; a key that is missing or wrong
 * sends nothing to Cafe24 and costs no mall its grant; rotation and legacy plaintext are resealed
 * by the scheduled run. Real PostgreSQL, the functions over HTTP, the Cafe24 sandbox, a local
 * JWKS for the connect flow.
 */
import assert from "node:assert/strict";
import { startTestAuth } from "../support/auth.ts";
import { browser } from "../support/connect.ts";
import {
  API_KEYS_ENV,
  cafe24Entry,
  connectionState,
  connectMall,
  connectStackOptions,
  providersEntry,
  SECRET_KEY,
  startRefreshStack,
} from "../support/stack.ts";
import { recordTokensSeen } from "../support/tokens_seen.ts";
import { waitFor } from "../support/wait.ts";
import { postgresBinary } from "../../local/postgres/cluster.ts";
import { newTokenRing } from "../../local/stack/token_ring.ts";
import type { FunctionsServer } from "../../local/functions/server.ts";

/** Every value issued by the sandbox that appears in `text`. */
const leaked = (text: string, issued: string[]) =>
  issued.filter((token) => token.length >= 8 && text.includes(token));

/** A plain-SQL dump of the whole database (data and schema), as a backup would hold it. */
async function dumpDatabase(dbUrl: string): Promise<string> {
  const url = new URL(dbUrl);
  const out = await new Deno.Command(await postgresBinary("pg_dump"), {
    args: [
      "--host",
      url.hostname,
      "--port",
      url.port,
      "--username",
      decodeURIComponent(url.username),
      "--dbname",
      decodeURIComponent(url.pathname.slice(1)),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { PGPASSWORD: decodeURIComponent(url.password) },
  }).output();
  const text = new TextDecoder();
  if (out.code !== 0) throw new Error(`pg_dump failed: ${text.decode(out.stderr)}`);
  return text.decode(out.stdout);
}

Deno.test("tokens sealed at rest", async (t) => {
  const auth = await startTestAuth();
  const options = connectStackOptions(auth);
  const stack = await startRefreshStack({
    ...options,
    env: { ...options.env, ...API_KEYS_ENV },
  });
  try {
    const { db, sandbox } = stack;
    const issued = recordTokensSeen(stack);
    const web = browser(stack);
    const jwt = (sub: string) => auth.mint({ sub });
    const ringA = { keys: stack.env.CAFE24_TOKEN_KEYS!, kid: stack.env.CAFE24_TOKEN_KEY_ID! };
    const refreshes = () => sandbox.counters().requests.token_refresh;
    const stored = async (id: string) => {
      const [row] = await db.sql<{ access_token: string | null; refresh_token: string | null }[]>`
        select access_token, refresh_token from cafe24_private.connections
        where auth_settings_id = ${id}`;
      return row!;
    };
    const token = async (server: FunctionsServer, body: Record<string, unknown>) => {
      const response = await fetch(`${server.url}/cafe24-token`, {
        method: "POST",
        headers: { "content-type": "application/json", apikey: SECRET_KEY },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    };
    const refreshAt = async (server: FunctionsServer, query: Record<string, string>) => {
      const url = new URL(`${server.url}/cafe24-refresh`);
      for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
      const response = await fetch(url, {
        method: "POST",
        headers: { "x-cron-secret": stack.env.CRON_SECRET! },
      });
      return { status: response.status, body: await response.json() };
    };
    const malls = new Set<string>();
    const connectAs = async (userId: string, mallId: string) => {
      // Older grants stay live at Cafe24 here, so a revocation shows which pair it hit.
      if (!malls.has(mallId)) sandbox.addMall(mallId, { newGrantRevokesOlderPairs: false });
      malls.add(mallId);
      const handle = await web.startConnection(await jwt(userId), mallId);
      assert.equal((await web.complete(await jwt(userId), handle)).status, 200);
      const [row] = await db.sql<{ id: string }[]>`
        select id from public.auth_settings
        where user_id = ${userId} and providers -> 'cafe24' ->> 'mall_id' = ${mallId}`;
      return row!.id;
    };
    const [alice, bob] = [crypto.randomUUID(), crypto.randomUUID()];

    // Every statement and its parameters in the server log, as an operator's logging might keep.
    await db.sql`alter system set log_statement = 'all'`;
    await db.sql`alter system set log_parameter_max_length = -1`;
    await db.sql`select pg_reload_conf()`;

    let aliceRow = "";
    await t.step(
      "connect, refresh, take over, disconnect: no issued token in a dump or the statement log",
      async () => {
        aliceRow = await connectAs(alice, "sealshop");
        const sealed = await stored(aliceRow);
        assert.match(sealed.refresh_token!, new RegExp(`^v1\\.${ringA.kid}\\.`));
        assert.match(sealed.access_token!, new RegExp(`^v1\\.${ringA.kid}\\.`));
        // The functions open it: the token API serves the live access token.
        const served = await token(stack.functions, { auth_settings_id: aliceRow });
        assert.equal(served.status, 200, JSON.stringify(served.body));
        assert.equal(served.body.access_token, sandbox.livePairs("sealshop").at(-1)!.accessToken);

        const before = refreshes();
        const run = await refreshAt(stack.functions, { mall_id: "sealshop", force: "true" });
        assert.equal(run.body.refreshed, 1, JSON.stringify(run.body));
        assert.equal(refreshes(), before + 1);
        assert.equal(
          (await cafe24Entry(db, aliceRow)).refresh_token,
          sandbox.liveRefreshToken("sealshop"),
          "the stored pair opens to Cafe24's live one",
        );

        // Bob takes the mall over (his own consent at Cafe24); Alice's pair is revoked, opened
        // from its sealed form first.
        const revocations = sandbox.revocationLog().length;
        const bobRow = await connectAs(bob, "sealshop");
        assert.ok(
          sandbox.revocationLog().slice(revocations).some((entry) =>
            entry.mallId === "sealshop" && entry.matched !== null
          ),
          "Alice's pair reached Cafe24's revoke endpoint as a token Cafe24 knows",
        );
        assert.equal((await stored(aliceRow)).refresh_token, null);
        // Bob disconnects: the pair is opened and revoked at Cafe24.
        const gone = await fetch(`${stack.functions.url}/cafe24-disconnect`, {
          method: "POST",
          headers: { "content-type": "application/json", apikey: SECRET_KEY },
          body: JSON.stringify({ auth_settings_id: bobRow }),
        });
        assert.equal(gone.status, 200, await gone.text());
        assert.deepEqual(sandbox.livePairs("sealshop"), [], "both pairs revoked at Cafe24");

        const tokens = issued();
        assert.ok(tokens.length >= 6, "the sandbox issued pairs to look for");
        assert.deepEqual(leaked(await dumpDatabase(db.dbUrl), tokens), [], "in the dump");
        assert.deepEqual(
          leaked(await Deno.readTextFile(db.logFile), tokens),
          [],
          "in the statement log",
        );
      },
    );

    await db.sql`alter system reset log_statement`;
    await db.sql`alter system reset log_parameter_max_length`;
    await db.sql`select pg_reload_conf()`;

    await t.step(
      "a sealed value moved to another connection does not open: nothing served, nothing sent",
      async () => {
        // One settings row per user: two users, two rows.
        const [one, two] = [
          await connectAs(crypto.randomUUID(), "moveone"),
          await connectAs(crypto.randomUUID(), "movetwo"),
        ];
        await db.sql`
          update cafe24_private.connections c
          set refresh_token = o.refresh_token, access_token = o.access_token
          from cafe24_private.connections o
          where c.auth_settings_id = ${two} and o.auth_settings_id = ${one}`;
        const served = await token(stack.functions, { auth_settings_id: two });
        assert.equal(served.status, 503);
        assert.equal(served.body.error, "TOKEN_KEY_UNAVAILABLE");
        assert.equal(JSON.stringify(served.body).includes("v1."), false, "no ciphertext back");

        const before = refreshes();
        const run = await refreshAt(stack.functions, { mall_id: "movetwo", force: "true" });
        assert.equal(run.status, 200, JSON.stringify(run.body));
        assert.equal(run.body.skipped_reasons.key_unavailable, 1);
        assert.equal(run.body.failed, 0);
        assert.equal(refreshes(), before, "nothing was sent to Cafe24");
        const state = await connectionState(db, two);
        assert.equal(state.status, "active");
        assert.equal(state.consecutive_failures, 0);
        assert.equal(state.lease_id, null, "let go at once");
        // Held back, so rows nobody can open never stay ahead of the malls that can be refreshed.
        assert.ok(state.next_attempt_at!.getTime() > Date.now() + 9 * 60_000);
        // A field swapped within its own row does not open either.
        await db.sql`
          update cafe24_private.connections set refresh_token = access_token
          where auth_settings_id = ${one}`;
        const swapped = await refreshAt(stack.functions, { mall_id: "moveone", force: "true" });
        assert.equal(swapped.body.skipped_reasons.key_unavailable, 1);
        assert.equal(refreshes(), before);

        // A sealed value whose prefix was altered is not taken for a legacy plaintext token:
        // never sent to Cafe24, never served, never resealed as genuine.
        const [three, four] = [
          await connectAs(crypto.randomUUID(), "alterone"),
          await connectAs(crypto.randomUUID(), "altertwo"),
        ];
        await db.sql`
          update cafe24_private.connections
          set refresh_token = 'V1' || substr(refresh_token, 3),
            access_token = 'V1' || substr(access_token, 3)
          where auth_settings_id in (${three}, ${four})`;
        const altered = await token(stack.functions, { auth_settings_id: four });
        assert.equal(altered.status, 503, JSON.stringify(altered.body));
        const alteredRun = await refreshAt(stack.functions, { mall_id: "alterone", force: "true" });
        assert.equal(alteredRun.body.skipped_reasons.key_unavailable, 1);
        assert.equal(refreshes(), before, "nothing was sent to Cafe24");
        assert.equal((await connectionState(db, three)).status, "active");
        const sweep = await refreshAt(stack.functions, { trigger: "cron" });
        assert.equal(sweep.status, 200);
        assert.match((await stored(three)).refresh_token!, /^V1\./, "not resealed as genuine");
        const [unreadable] = await db.sql<{ connections: string }[]>`
          select connections from cafe24_private.token_keys_in_use where kid = 'unreadable'`;
        assert.equal(Number(unreadable?.connections), 2);
        // The broken rows go: the rotation below counts every other row.
        await db
          .sql`delete from public.auth_settings where id in (${one}, ${two}, ${three}, ${four})`;
      },
    );

    await t.step("a key missing from the ring skips its rows with a warning", async () => {
      const row = await connectAs(crypto.randomUUID(), "lostkeyshop");
      const otherRing = newTokenRing("elsewhere");
      const withoutA = await stack.startFunctions({
        CAFE24_TOKEN_KEYS: otherRing.CAFE24_TOKEN_KEYS,
        CAFE24_TOKEN_KEY_ID: otherRing.CAFE24_TOKEN_KEY_ID,
      });
      const before = refreshes();
      const run = await refreshAt(withoutA, { mall_id: "lostkeyshop", force: "true" });
      assert.equal(run.body.skipped_reasons.key_unavailable, 1, JSON.stringify(run.body));
      assert.equal(run.body.scanned, run.body.refreshed + run.body.failed + run.body.skipped);
      assert.equal(run.body.eligible, 1, "a row under a missing key is still eligible");
      assert.equal(refreshes(), before, "nothing was sent to Cafe24");
      // The rules skipped it: it was never claimed, so nothing about it changed.
      const [after] = await db.sql<{ claimed: boolean; held: boolean; failures: number }[]>`
        select last_claimed_at is not null as claimed, next_attempt_at is not null as held,
          consecutive_failures as failures
        from cafe24_private.connections where auth_settings_id = ${row}`;
      assert.deepEqual(after, { claimed: false, held: false, failures: 0 });
      assert.ok(run.body.warnings.includes("TOKEN_KEY_NOT_IN_RING"), JSON.stringify(run.body));
      const named = withoutA.output.find((line) => line.includes("cafe24_refresh_keys_missing"));
      assert.ok(named, "the run's log names the missing key");
      assert.deepEqual(JSON.parse(named!).key_ids, { [ringA.kid]: 1 });
      const served = await token(withoutA, { auth_settings_id: row });
      assert.equal(served.status, 503);
      assert.deepEqual(
        { error: served.body.error, kid: served.body.kid },
        { error: "TOKEN_KEY_UNAVAILABLE", kid: ringA.kid },
      );
      // The key comes back: the mall was never lost, and is refreshed at once.
      const back = await refreshAt(stack.functions, { mall_id: "lostkeyshop", force: "true" });
      assert.equal(back.body.refreshed, 1, JSON.stringify(back.body));
      assert.ok(!back.body.warnings.includes("TOKEN_KEY_NOT_IN_RING"));
    });

    await t.step("an active key id the ring lacks sends nothing to Cafe24", async () => {
      await connectAs(crypto.randomUUID(), "nokidshop");
      const unknownKid = await stack.startFunctions({ CAFE24_TOKEN_KEY_ID: "notinring" });
      const before = refreshes();
      const run = await refreshAt(unknownKid, { mall_id: "nokidshop", force: "true" });
      assert.equal(run.status, 200, JSON.stringify(run.body));
      assert.ok(run.body.warnings.includes("TOKEN_KEY_ID_UNKNOWN"), JSON.stringify(run.body));
      assert.equal(run.body.refreshed, 0);
      assert.equal(run.body.skipped_reasons.key_unavailable, 1);
      assert.equal(refreshes(), before, "nothing was sent to Cafe24");
    });

    await t.step(
      "legacy plaintext (written from outside) and a rotation to a new key are resealed by the " +
        "scheduled run",
      async () => {
        // An outside writer puts a pair into providers.cafe24: moved to the private row as it is.
        const legacy = await connectMall(stack, "legacyshop", {
          expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
        });
        assert.equal((await stored(legacy.id)).refresh_token, legacy.refreshToken);
        assert.equal((await providersEntry(db, legacy.id)).refresh_token, undefined);

        // Rotate: a new key B beside A, active B.
        const ringB = newTokenRing("rotated");
        const keysAB = JSON.stringify({
          ...JSON.parse(ringA.keys),
          ...JSON.parse(ringB.CAFE24_TOKEN_KEYS),
        });
        const rotated = await stack.startFunctions({
          CAFE24_TOKEN_KEYS: keysAB,
          CAFE24_TOKEN_KEY_ID: ringB.CAFE24_TOKEN_KEY_ID,
        });
        const before = refreshes();
        const runIds: string[] = [];
        for (let pass = 0; pass < 5; pass++) {
          const kids = await db.sql<{ kid: string }[]>`
            select kid from cafe24_private.token_keys_in_use`;
          if (kids.every(({ kid }) => kid === ringB.CAFE24_TOKEN_KEY_ID)) break;
          const run = await refreshAt(rotated, { trigger: "cron" });
          assert.equal(run.status, 200, JSON.stringify(run.body));
          runIds.push(run.body.run_id);
        }
        // Each scheduled run's stored summary counts its background pass.
        const passes = await db.sql<{ background: { resealed: { resealed: number } | null } }[]>`
          select summary -> 'background' as background from cafe24_private.refresh_runs
          where id = any (${runIds}::uuid[])`;
        assert.equal(passes.length, runIds.length);
        assert.ok(passes.every((p) => p.background?.resealed !== null), JSON.stringify(passes));
        assert.ok(
          passes.reduce((sum, p) => sum + p.background.resealed!.resealed, 0) >= 1,
          "the rows resealed are counted",
        );
        const kids = await db.sql<{ kid: string; connections: string }[]>`
          select kid, connections from cafe24_private.token_keys_in_use`;
        assert.deepEqual(
          kids.map(({ kid }) => kid),
          [ringB.CAFE24_TOKEN_KEY_ID],
          "every row under the new key, none under A or in plaintext",
        );
        assert.ok(refreshes() - before <= 4, "resealing sends nothing to Cafe24 by itself");
        const served = await token(rotated, { auth_settings_id: legacy.id });
        assert.equal(served.status, 200, JSON.stringify(served.body));
        assert.equal(
          (await stored(legacy.id)).refresh_token!.startsWith(
            `v1.${ringB.CAFE24_TOKEN_KEY_ID}.`,
          ),
          true,
        );
      },
    );

    await t.step(
      "a refresh in flight keeps its new pair while its legacy row is being sealed",
      async () => {
        const legacy = await connectMall(stack, "inflightshop");
        const [before] = await db.sql<{ token_version: string }[]>`
          select token_version from cafe24_private.connections
          where auth_settings_id = ${legacy.id}`;
        sandbox.setFaults("inflightshop", { latencyMs: 1_500 });
        const running = refreshAt(stack.functions, { mall_id: "inflightshop", force: "true" });
        await waitFor("the refresh to hold the row", async () => {
          const [row] = await db.sql<{ leased: boolean }[]>`
            select lease_id is not null as leased from cafe24_private.connections
            where auth_settings_id = ${legacy.id}`;
          return row?.leased === true;
        });
        // The background pass leaves a leased row alone, and a reseal of the pair it read
        // before the claim is refused: the refresh's answer is the only pair that counts.
        const [listed] = await db.sql<{ n: number }[]>`
          select count(*)::int as n from cafe24_private.tokens_to_reseal(
            ${`v1.${ringA.kid}.`}, '00000000-0000-0000-0000-000000000000', 500, 500)
          where auth_settings_id = ${legacy.id}`;
        assert.equal(listed!.n, 0, "a leased row is not listed for resealing");
        const [resealed] = await db.sql<{ written: boolean }[]>`
          select cafe24_private.reseal_tokens(
            ${legacy.id}::uuid, ${before!.token_version}::bigint, 'v1.x.stale', 'v1.x.stale')
            as written`;
        assert.equal(resealed!.written, false);
        const run = await running;
        assert.equal(run.body.refreshed, 1, JSON.stringify(run.body));
        sandbox.clearFaults();
        const after = await stored(legacy.id);
        assert.match(after.refresh_token!, new RegExp(`^v1\\.${ringA.kid}\\.`));
        assert.equal(
          (await cafe24Entry(db, legacy.id)).refresh_token,
          sandbox.liveRefreshToken("inflightshop"),
        );
        // Now it holds a sealed pair, a reseal with the version it had is refused too.
        const [late] = await db.sql<{ written: boolean }[]>`
          select cafe24_private.reseal_tokens(
            ${legacy.id}::uuid, ${before!.token_version}::bigint, 'v1.x.stale', 'v1.x.stale')
            as written`;
        assert.equal(late!.written, false, "the pair changed: compare-and-swap on token_version");
      },
    );

    await t.step(
      "without a key ring: connecting is refused, existing malls keep refreshing in plaintext",
      async () => {
        const legacy = await connectMall(stack, "noringshop");
        const noRing = await stack.startFunctions({
          CAFE24_TOKEN_KEYS: "",
          CAFE24_TOKEN_KEY_ID: "",
        });
        const url = new URL(`${noRing.url}/cafe24-authorize`);
        url.searchParams.set("mall_id", "noringnew");
        url.searchParams.set("mode", "json");
        const refused = await fetch(url, {
          headers: { authorization: `Bearer ${await jwt(crypto.randomUUID())}` },
        });
        assert.equal(refused.status, 500);
        assert.deepEqual(
          { ...(await refused.json()), rules: undefined },
          { error: "CONFIG_MISSING", missing: ["CAFE24_TOKEN_KEYS"], rules: undefined },
        );

        const before = refreshes();
        const run = await refreshAt(noRing, { mall_id: "noringshop", force: "true" });
        assert.equal(run.body.refreshed, 1, JSON.stringify(run.body));
        assert.ok(run.body.warnings.includes("TOKEN_KEYS_MISSING"), JSON.stringify(run.body));
        assert.equal(refreshes(), before + 1);
        const kept = await stored(legacy.id);
        assert.equal(kept.refresh_token, sandbox.liveRefreshToken("noringshop"), "plaintext");
        // A sealed row does not open without the ring: set aside, never sent.
        const sealedRow = await connectAs(crypto.randomUUID(), "noringsealed");
        const skipped = await refreshAt(noRing, { mall_id: "noringsealed", force: "true" });
        assert.equal(skipped.body.skipped_reasons.key_unavailable, 1);
        assert.equal(refreshes(), before + 1, "nothing sent for the sealed row");
        assert.match((await stored(sealedRow)).refresh_token!, /^v1\./);
      },
    );

    await t.step(
      "CAFE24_PLAINTEXT_TOKEN_COPY copies the access token only, the private row stays sealed",
      async () => {
        const row = await connectAs(crypto.randomUUID(), "copyshop");
        const copying = await stack.startFunctions({ CAFE24_PLAINTEXT_TOKEN_COPY: "true" });
        const run = await refreshAt(copying, { mall_id: "copyshop", force: "true" });
        assert.equal(run.body.refreshed, 1, JSON.stringify(run.body));
        const live = sandbox.livePairs("copyshop").at(-1)!;
        const entry = await providersEntry(db, row);
        assert.equal(entry.access_token, live.accessToken);
        assert.equal(entry.refresh_token, undefined, "never the refresh token");
        assert.match((await stored(row)).refresh_token!, /^v1\./);
        assert.match((await stored(row)).access_token!, /^v1\./);
      },
    );

    await t.step(
      "a pair whose reseal failed at completion is resealed by the next scheduled run and " +
        "keeps refreshing",
      async () => {
        const marked = async () =>
          (await db.sql<{ id: string }[]>`
            select auth_settings_id as id from cafe24_private.connections
            where sealed_for is not null`).map(({ id }) => id);
        assert.deepEqual(await marked(), [], "every completed connect was resealed for its row");
        // The database refuses the reseal that follows the completion, on every retry.
        await db.sql`
          alter function cafe24_private.reseal_tokens(uuid, bigint, text, text)
          rename to reseal_tokens_unavailable`;
        let row: string;
        try {
          row = await connectAs(crypto.randomUUID(), "resealshop");
        } finally {
          await db.sql`
            alter function cafe24_private.reseal_tokens_unavailable(uuid, bigint, text, text)
            rename to reseal_tokens`;
        }
        // Still sealed for the pending connection it came from: it does not open for its row.
        const unopened = await token(stack.functions, { auth_settings_id: row });
        assert.equal(unopened.status, 503, JSON.stringify(unopened.body));
        assert.equal(unopened.body.error, "TOKEN_KEY_UNAVAILABLE");
        assert.deepEqual(await marked(), [row], "the row remembers the pending connection");

        const before = refreshes();
        const run = await refreshAt(stack.functions, { trigger: "cron" });
        assert.equal(run.status, 200, JSON.stringify(run.body));
        const [pass] = await db.sql<{ resealed: { resealed: number } | null }[]>`
          select summary -> 'background' -> 'resealed' as resealed
          from cafe24_private.refresh_runs where id = ${run.body.run_id}::uuid`;
        assert.ok((pass?.resealed?.resealed ?? 0) >= 1, JSON.stringify(pass));
        assert.equal(refreshes(), before, "resealing sends nothing to Cafe24");
        assert.deepEqual(await marked(), [], "resealed for its row: nothing left to remember");

        const served = await token(stack.functions, { auth_settings_id: row });
        assert.equal(served.status, 200, JSON.stringify(served.body));
        assert.equal(served.body.access_token, sandbox.livePairs("resealshop").at(-1)!.accessToken);
        const refreshed = await refreshAt(stack.functions, {
          mall_id: "resealshop",
          force: "true",
        });
        assert.equal(refreshed.body.refreshed, 1, JSON.stringify(refreshed.body));
        assert.equal(
          (await cafe24Entry(db, row)).refresh_token,
          sandbox.liveRefreshToken("resealshop"),
        );
      },
    );
  } finally {
    await stack.stop();
    await auth.close();
  }
});
