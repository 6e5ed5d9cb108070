/**
 * What a run refreshes, as the SQL decides it (cafe24_private.refresh_rules()), against real
 * PostgreSQL with the migrations: the rules' reasons are the TypeScript list's, every connection
 * state gets the verdict it should under each policy, and the census, the count and the claim
 * agree on it. Also the planner's use of the indexes, token requests and released leases.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { startTestDatabase, type TestDatabase } from "../../local/postgres/database.ts";
import {
  CENSUS_SKIP_REASONS,
  CENSUS_VERDICTS,
} from "../../supabase/functions/_shared/refresh/skip_reasons.ts";

const HOUR_MS = 60 * 60_000;
const DAY_MS = 24 * HOUR_MS;

type Policy = "eager" | "keep_alive";

interface Case {
  name: string;
  /** providers.cafe24 (undefined: no cafe24 entry at all). */
  cafe24?: Record<string, unknown>;
  /** Columns of cafe24_private.connections set after the row is written. */
  state?: Record<string, unknown>;
  expect: { eager: string; keep_alive: string; forced?: string };
}

const iso = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();
const pair = (accessInMs: number | null, refreshInMs: number | null) => ({
  mall_id: "shoprule",
  refresh_token: `rt-${crypto.randomUUID()}`,
  access_token: "at",
  ...(accessInMs === null ? {} : { expires_at: iso(accessInMs) }),
  ...(refreshInMs === null ? {} : { refresh_token_expires_at: iso(refreshInMs) }),
});
/** A pair issued an hour ago: 1 h of access left, 14 days less an hour of refresh. */
const settled = () => pair(HOUR_MS, 14 * DAY_MS - HOUR_MS);
/** The access token expires in 10 minutes (inside the 30-minute margin), refresh in 13 days. */
const accessDue = () => pair(10 * 60_000, 13 * DAY_MS);

const CASES: Case[] = [
  { name: "no cafe24 entry", expect: { eager: "no_cafe24", keep_alive: "no_cafe24" } },
  {
    name: "no refresh_token",
    cafe24: { mall_id: "shoprule" },
    expect: { eager: "missing_keys", keep_alive: "missing_keys" },
  },
  {
    name: "a refresh_token that is not a string",
    cafe24: { mall_id: "shoprule", refresh_token: 7 },
    expect: { eager: "malformed", keep_alive: "malformed", forced: "malformed" },
  },
  {
    name: "reconnect_required",
    cafe24: accessDue(),
    state: { status: "reconnect_required" },
    expect: { eager: "reconnect_required", keep_alive: "reconnect_required" },
  },
  {
    name: "disconnected (waits for the owner like reconnect_required)",
    cafe24: accessDue(),
    state: { status: "disconnected" },
    expect: { eager: "reconnect_required", keep_alive: "reconnect_required" },
  },
  {
    name: "leased by another run",
    cafe24: accessDue(),
    state: { lease_id: crypto.randomUUID(), lease_expires_at: iso(60_000) },
    expect: { eager: "leased", keep_alive: "leased", forced: "leased" },
  },
  {
    name: "claimed by another run since this one started",
    cafe24: accessDue(),
    state: { last_claimed_at: iso(DAY_MS) },
    expect: { eager: "leased", keep_alive: "leased" },
  },
  {
    name: "backing off",
    cafe24: accessDue(),
    state: { next_attempt_at: iso(60_000), consecutive_failures: 1 },
    expect: { eager: "backing_off", keep_alive: "backing_off", forced: "backing_off" },
  },
  {
    name: "access token good for an hour",
    cafe24: settled(),
    expect: { eager: "not_due", keep_alive: "not_due", forced: "due" },
  },
  {
    name: "access token expiring, refresh token far from expiry",
    cafe24: accessDue(),
    expect: { eager: "due", keep_alive: "not_due", forced: "due" },
  },
  {
    name: "access token expiring, token asked for an hour ago",
    cafe24: accessDue(),
    state: { token_requested_at: iso(-HOUR_MS) },
    expect: { eager: "due", keep_alive: "due" },
  },
  {
    name: "access token expiring, token asked for 25 hours ago",
    cafe24: accessDue(),
    state: { token_requested_at: iso(-25 * HOUR_MS) },
    expect: { eager: "due", keep_alive: "not_due" },
  },
  {
    name: "token asked for recently, access token still good",
    cafe24: settled(),
    state: { token_requested_at: iso(-60_000) },
    expect: { eager: "not_due", keep_alive: "not_due" },
  },
  {
    name: "access expired long ago, refresh token expires in 6 days",
    cafe24: pair(-5 * DAY_MS, 6 * DAY_MS),
    expect: { eager: "due", keep_alive: "due" },
  },
  {
    name: "access expired long ago, refresh token expires in 8 days",
    cafe24: pair(-4 * DAY_MS, 8 * DAY_MS),
    expect: { eager: "due", keep_alive: "not_due" },
  },
  {
    name: "expiry unknown",
    cafe24: pair(null, null),
    expect: { eager: "due", keep_alive: "due" },
  },
  {
    name: "refresh token expiry unknown, access expiring",
    cafe24: pair(10 * 60_000, null),
    expect: { eager: "due", keep_alive: "due" },
  },
];

interface Scope {
  policy: Policy;
  force?: boolean;
  userId?: string | null;
  mallId?: string | null;
  keepAliveWindow?: string;
}

async function startRun(sql: postgres.Sql, scope: Scope): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    select cafe24_private.start_refresh_run(
      p_trigger => 'cli', p_mode => 'sync',
      p_refresh_margin => '30 minutes'::interval, p_lease_duration => '75 seconds'::interval,
      p_force => ${scope.force ?? false}, p_mall_id => ${scope.mallId ?? null}::text,
      p_user_id => ${scope.userId ?? null}::uuid, p_policy => ${scope.policy},
      p_keep_alive_window => ${scope.keepAliveWindow ?? "7 days"}::interval,
      p_token_request_window => '24 hours'::interval) as id`;
  return row!.id;
}

/** The run's census as { verdict: count }. */
async function census(sql: postgres.Sql, runId: string): Promise<Record<string, number>> {
  const rows = await sql<{ verdict: string; connections: string }[]>`
    select verdict, connections from cafe24_private.census(${runId})`;
  return Object.fromEntries(rows.map((r) => [r.verdict, Number(r.connections)]));
}

/** What a claim of up to `limit` would take, in a transaction that is rolled back. */
async function wouldClaim(sql: postgres.Sql, runId: string, limit: number): Promise<string[]> {
  let ids: string[] = [];
  await sql.begin(async (tx) => {
    const rows = await tx<{ auth_settings_id: string }[]>`
      select auth_settings_id from cafe24_private.claim_due_connections(${runId}, ${limit})`;
    ids = rows.map((r) => r.auth_settings_id);
    throw new Error("rollback");
  }).catch((error) => {
    if (!(error instanceof Error && error.message === "rollback")) throw error;
  });
  return ids;
}

async function seed(db: TestDatabase, c: Case): Promise<{ id: string; userId: string }> {
  const userId = crypto.randomUUID();
  const providers = c.cafe24 === undefined ? { google: { x: 1 } } : { cafe24: c.cafe24 };
  const [row] = await db.sql<{ id: string }[]>`
    insert into public.auth_settings (user_id, providers)
    values (${userId}, ${db.sql.json(providers as never)}) returning id`;
  for (const [column, value] of Object.entries(c.state ?? {})) {
    await db.sql`
      update cafe24_private.connections set ${db.sql({ [column]: value } as never)}
      where auth_settings_id = ${row!.id}`;
  }
  return { id: row!.id, userId };
}

Deno.test("refresh rules", async (t) => {
  const db = await startTestDatabase();
  const { sql } = db;
  try {
    await t.step("the rules' reasons are the TypeScript census reasons", async () => {
      const [verdict] = await sql<{ definition: string }[]>`
        select pg_get_functiondef('cafe24_private.refresh_verdict(
          cafe24_private.connections, cafe24_private.refresh_scope)'::regprocedure) as definition`;
      const reasons = [...verdict!.definition.matchAll(/then '([a-z0-9_]+)'/g)].map((m) => m[1]!);
      assert.equal(new Set(reasons).size, reasons.length, "each reason names one rule");
      assert.deepEqual([...reasons].sort(), [...CENSUS_SKIP_REASONS].sort());
      const otherwise = [...verdict!.definition.matchAll(/else '([a-z0-9_]+)'/g)].map((m) => m[1]);
      assert.deepEqual(otherwise, ["due"], "a connection that passes every rule is due");
      assert.deepEqual([...reasons, "due"].sort(), [...CENSUS_VERDICTS].sort(), "the verdicts");
    });

    await t.step(
      "parse_instant reads the instants this project writes, and never raises",
      async () => {
        const cases: [unknown, string | null][] = [
          ["2026-12-07T10:00:00.000Z", "2026-12-07T10:00:00.000Z"],
          ["2026-12-07T19:00:00+09:00", "2026-12-07T10:00:00.000Z"],
          ["2026-12-07T10:00Z", "2026-12-07T10:00:00.000Z"],
          ["2028-02-29T00:00:00Z", "2028-02-29T00:00:00.000Z"],
          // Cafe24's own format (Korea time, no offset) is unknown: the connection becomes due.
          ["2026-12-07T19:00:00.000", null],
          ["2026-02-30T00:00:00Z", null],
          ["2026-13-01T00:00:00Z", null],
          ["2026-12-07T24:00:00Z", null],
          ["0000-01-01T00:00:00Z", null],
          ["tomorrow", null],
          [1765101600, null],
          [null, null],
        ];
        for (const [value, expected] of cases) {
          const [row] = await sql<{ at: Date | null }[]>`
          select cafe24_private.parse_instant(${
            sql.json(value as postgres.JSONValue)
          }::jsonb) as at`;
          assert.equal(row!.at?.toISOString() ?? null, expected, JSON.stringify(value));
        }
      },
    );

    await t.step("the rules are inlined into the statements that read them", async () => {
      const rows = await sql<{ name: string; config: string[] | null; language: string }[]>`
        select p.proname as name, p.proconfig as config, l.lanname as language
        from pg_proc p join pg_language l on l.oid = p.prolang
        where p.oid in ('cafe24_private.refresh_verdict(
          cafe24_private.connections, cafe24_private.refresh_scope)'::regprocedure,
          'cafe24_private.in_scope(
          cafe24_private.connections, cafe24_private.refresh_scope)'::regprocedure,
          'cafe24_private.parse_instant(jsonb)'::regprocedure)`;
      assert.equal(rows.length, 3);
      // A SET clause or another language would stop PostgreSQL inlining them: the census would
      // then call a function for every row, and each store would plan one per instant.
      for (const row of rows) {
        assert.equal(row.config, null, `${row.name} has no SET clause`);
        assert.equal(row.language, "sql", row.name);
      }
    });

    const seeded: { c: Case; id: string; userId: string }[] = [];
    for (const c of CASES) seeded.push({ c, ...await seed(db, c) });

    for (const policy of ["eager", "keep_alive", "forced"] as const) {
      await t.step(`every state's verdict: ${policy}`, async () => {
        for (const { c, id, userId } of seeded) {
          const expected = policy === "forced" ? c.expect.forced : c.expect[policy];
          if (expected === undefined) continue;
          const runId = await startRun(sql, {
            policy: policy === "forced" ? "eager" : policy,
            force: policy === "forced",
            userId,
          });
          assert.deepEqual(await census(sql, runId), { [expected]: 1 }, `${policy}: ${c.name}`);
          const [count] = await sql<{ n: string }[]>`
            select cafe24_private.count_claimable(${runId}) as n`;
          assert.equal(Number(count!.n), expected === "due" ? 1 : 0, `${policy}: ${c.name}`);
          assert.deepEqual(
            await wouldClaim(sql, runId, 10),
            expected === "due" ? [id] : [],
            `${policy}: ${c.name}`,
          );
        }
      });
    }

    await t.step(
      "over every connection, the census's due is exactly what the claim takes",
      async () => {
        for (const policy of ["eager", "keep_alive"] as const) {
          const runId = await startRun(sql, { policy });
          const counts = await census(sql, runId);
          const total = Object.values(counts).reduce((a, b) => a + b, 0);
          const [all] = await sql<{ n: number }[]>`
          select count(*)::int as n from cafe24_private.connections`;
          assert.equal(total, all!.n, "every connection has exactly one verdict");
          const claimed = await wouldClaim(sql, runId, 1_000);
          assert.equal(claimed.length, counts.due ?? 0, policy);
          const [count] = await sql<{ n: string }[]>`
          select cafe24_private.count_claimable(${runId}) as n`;
          assert.equal(Number(count!.n), claimed.length, policy);
        }
      },
    );

    await t.step("note_token_request: recorded, and not rewritten within a minute", async () => {
      const { id } = await seed(db, { name: "asked", cafe24: settled(), expect: CASES[0]!.expect });
      await sql`select cafe24_private.note_token_request(${id})`;
      const first = await sql<{ at: Date; xmin: string }[]>`
        select token_requested_at as at, xmin::text from cafe24_private.connections
        where auth_settings_id = ${id}`;
      assert.ok(Math.abs(first[0]!.at.getTime() - Date.now()) < 60_000);
      await sql`select cafe24_private.note_token_request(${id})`;
      const second = await sql<{ at: Date; xmin: string }[]>`
        select token_requested_at as at, xmin::text from cafe24_private.connections
        where auth_settings_id = ${id}`;
      assert.deepEqual(second, first, "the row was not written again");
      await sql`select cafe24_private.note_token_request(${crypto.randomUUID()})`;
      const [grants] = await sql<{ anon: boolean; authenticated: boolean }[]>`
        select has_function_privilege('anon', 'cafe24_private.note_token_request(uuid)', 'execute') as anon,
          has_function_privilege('authenticated', 'cafe24_private.note_token_request(uuid)', 'execute') as authenticated`;
      assert.deepEqual({ ...grants }, { anon: false, authenticated: false });
    });

    await t.step(
      "release_leases frees only this run's unsent claims, claimable again at once",
      async () => {
        const mine = await seed(db, {
          name: "mine",
          cafe24: pair(null, null),
          expect: CASES[0]!.expect,
        });
        const runId = await startRun(sql, { policy: "eager", userId: mine.userId });
        const [claimed] = await sql<{ auth_settings_id: string }[]>`
        select auth_settings_id from cafe24_private.claim_due_connections(${runId}, 1)`;
        assert.equal(claimed!.auth_settings_id, mine.id);
        const other = await startRun(sql, { policy: "eager", userId: mine.userId });
        const [none] = await sql<{ n: number }[]>`
        select cafe24_private.release_leases(${other}, array[${mine.id}]::uuid[]) as n`;
        assert.equal(none!.n, 0, "another run's lease is not released");
        const [one] = await sql<{ n: number }[]>`
        select cafe24_private.release_leases(${runId}, array[${mine.id}]::uuid[]) as n`;
        assert.equal(one!.n, 1);
        const [row] = await sql`
        select lease_id, lease_expires_at, in_flight_since, last_claimed_at
        from cafe24_private.connections where auth_settings_id = ${mine.id}`;
        assert.deepEqual({ ...row }, {
          lease_id: null,
          lease_expires_at: null,
          in_flight_since: null,
          last_claimed_at: null,
        });
        assert.deepEqual(await wouldClaim(sql, runId, 10), [mine.id], "the same run may take it");
      },
    );

    await t.step("settling reads the scope from the run: the next claim stays in it", async () => {
      const a = await seed(db, { name: "a", cafe24: pair(null, null), expect: CASES[0]!.expect });
      const b = await seed(db, { name: "b", cafe24: pair(null, null), expect: CASES[0]!.expect });
      const runId = await startRun(sql, { policy: "eager", userId: a.userId });
      const [claimed] = await sql<{ auth_settings_id: string; refresh_token: string }[]>`
        select * from cafe24_private.claim_due_connections(${runId}, 1)`;
      assert.equal(claimed!.auth_settings_id, a.id);
      const [settled] = await sql<{ outcome: string; next_auth_settings_id: string | null }[]>`
        select * from cafe24_private.record_refresh_failure(
          ${runId}, ${a.id}, ${claimed!.refresh_token},
          row('CAFE24_TIMEOUT', 'no answer', false, true, now() + interval '1 minute')
            ::cafe24_private.refresh_failure,
          true)`;
      assert.equal(settled!.outcome, "retry_scheduled");
      assert.equal(settled!.next_auth_settings_id, null, `${b.id} is another user's`);
      await assert.rejects(
        sql`select * from cafe24_private.claim_due_connections(${crypto.randomUUID()}, 1)`,
        /no refresh run/,
      );
    });

    await t.step("the claim reads the index that matches its scope", async () => {
      await sql`
        insert into public.auth_settings (user_id, providers)
        select gen_random_uuid(), jsonb_build_object('cafe24', jsonb_build_object(
          'mall_id', 'plan' || lpad(i::text, 6, '0'), 'refresh_token', md5(i::text),
          'expires_at', to_char((now() + interval '2 hours') at time zone 'UTC',
            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
          'refresh_token_expires_at', to_char((now() + interval '14 days') at time zone 'UTC',
            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
        from generate_series(1, 5000) as i`;
      await sql`analyze cafe24_private.connections`;
      // The plan the claim really uses inside claim_due_pairs (made once per session, for every
      // scope of its shape), from auto_explain's nested statements sent to this client. The
      // claims are rolled back.
      const plan = async (scope: Scope) => {
        const runId = await startRun(sql, scope);
        const messages: string[] = [];
        const rolledBack = new Error("rolled back");
        const client = postgres(db.dbUrl, {
          prepare: false,
          max: 1,
          onnotice: (notice) => messages.push(String(notice.message ?? "")),
        });
        try {
          await client.begin(async (tx) => {
            await tx.unsafe(`load 'auto_explain'`);
            await tx.unsafe(`set local auto_explain.log_min_duration = 0`);
            await tx.unsafe(`set local auto_explain.log_nested_statements = on`);
            await tx.unsafe(`set local client_min_messages = log`);
            // Six claims: the last ones run the plan the session keeps.
            for (let i = 0; i < 6; i++) {
              await tx`select * from cafe24_private.claim_due_pairs(${runId}, 1)`;
            }
            await tx`select * from cafe24_private.census(${runId})`;
            throw rolledBack;
          }).catch((error) => {
            if (error !== rolledBack) throw error;
          });
        } finally {
          await client.end({ timeout: 5 });
        }
        const candidates = messages.filter((m) => m.includes("for update skip locked"));
        assert.ok(candidates.length >= 6, `the claim's statement was explained: ${messages}`);
        const census = messages.filter((m) => m.includes("select v.verdict, count(*)"));
        assert.equal(census.length, 1, `the census's statement was explained: ${messages}`);
        return { claim: candidates.at(-1)!, census: census[0]! };
      };
      for (const policy of ["eager", "keep_alive"] as const) {
        const { claim, census } = await plan({ policy });
        // Read in due order and stopped at the first row it can lock: a plan that fetches every
        // due row and sorts them costs each claim the whole backlog (found in the scale
        // benchmark: 9 ms per claim with 500 rows due).
        assert.match(claim, /Index Scan using connections_due_idx/, policy);
        assert.doesNotMatch(claim, /Bitmap|Sort/, policy);
        // Every connection is counted: no index narrows a full census.
        assert.match(census, /Seq Scan on connections/, policy);
      }
      for (
        const [scope, index] of [
          [{ policy: "eager", mallId: "plan000042" }, /connections_mall_id_idx/],
          [{ policy: "eager", userId: crypto.randomUUID() }, /connections_user_id_idx/],
        ] as const
      ) {
        const { claim, census } = await plan(scope);
        assert.match(claim, index, JSON.stringify(scope));
        assert.match(census, index, JSON.stringify(scope));
      }
    });
  } finally {
    await db.stop();
  }
});
