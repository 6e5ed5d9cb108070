/**
 * Proves the test harness itself: a local cluster with pg_cron, the Supabase stand-ins (auth, and
 * vault and net — or the real supabase_vault and pg_net where the PostgreSQL installation ships
 * them), the migrations pushed by the pinned CLI, pg_net's worker (the stand-in's or the real
 * one), and clean shutdown. The vault and net steps hold for the stand-ins and the real
 * extensions alike.
 *
 *   node_modules/.bin/deno test --allow-all tests/integration/harness_test.ts
 *   PG_BINDIR=<an installation with pg_net and supabase_vault>/bin  (the same, with the real ones)
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { applyStandIns, startTestDatabase } from "../../local/postgres/database.ts";
import { startNetDeliverer } from "../../local/supabase/pg_net_deliverer.ts";
import {
  PG_BINDIR_VARIABLE,
  pgBindirOverride,
  startPostgresCluster,
} from "../../local/postgres/cluster.ts";
import { childrenOf, processAlive } from "../../local/processes.ts";
import { waitFor } from "../support/wait.ts";
import { pathExists } from "../../local/files.ts";

const MIGRATIONS_DIR = new URL("../../supabase/migrations/", import.meta.url);

interface Received {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

async function one<T>(query: Promise<readonly T[]>): Promise<T> {
  const rows = await query;
  const row = rows[0];
  if (row === undefined) throw new Error("the query returned no row");
  return row;
}

function errorCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String(e.code) : undefined;
}

async function migrationFiles(): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(MIGRATIONS_DIR)) {
      if (e.isFile && e.name.endsWith(".sql")) names.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return names.sort();
}

Deno.test("startPostgresCluster says how to install missing server binaries", async () => {
  const before = Deno.env.get(PG_BINDIR_VARIABLE);
  Deno.env.set(PG_BINDIR_VARIABLE, "/nonexistent/postgresql/bin");
  try {
    await assert.rejects(startPostgresCluster(), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /apt-get install -y postgresql-15 postgresql-15-cron/);
      assert.match(e.message, /\/nonexistent\/postgresql\/bin/);
      return true;
    });
  } finally {
    if (before === undefined) Deno.env.delete(PG_BINDIR_VARIABLE);
    else Deno.env.set(PG_BINDIR_VARIABLE, before);
  }
});

Deno.test("a kept data dir survives stop and is reused", async () => {
  const base = await Deno.makeTempDir({ prefix: "harness-keep-" });
  try {
    if (Deno.uid() === 0) {
      // the cluster runs as the postgres OS user, which must be able to create its socket dir
      await Deno.chmod(base, 0o755);
    }
    const dataDir = `${base}/data`;
    const first = await startPostgresCluster({ dataDir, keep: true });
    try {
      await run(first.dbUrl, "create table kept (v text); insert into kept values ('still here')");
    } finally {
      await first.stop();
    }
    assert.ok(await pathExists(`${dataDir}/PG_VERSION`), "keep: the data dir stays after stop");

    await assert.rejects(startPostgresCluster({ dataDir }), /keep: true/);

    const second = await startPostgresCluster({ dataDir, keep: true });
    try {
      assert.equal(await run(second.dbUrl, "select v from kept"), "still here");
    } finally {
      await second.stop();
    }
    assert.ok(await pathExists(`${dataDir}/PG_VERSION`));
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

/** One-off psql-free query through postgres.js, for the tests that have no TestDatabase. */
async function run(dbUrl: string, query: string): Promise<string | null> {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {} });
  try {
    const rows = await sql.unsafe(query).simple();
    const last = Array.isArray(rows.at(-1)) ? rows.at(-1) : rows;
    const first = (last as Record<string, unknown>[])[0];
    return first === undefined ? null : String(Object.values(first)[0]);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

Deno.test("test database: stand-ins, pg_cron, vault, pg_net worker, restart, stop", async (t) => {
  const started = performance.now();
  const db = await startTestDatabase();
  console.log(`  test database ready in ${Math.round(performance.now() - started)} ms`);
  const sql = db.sql;
  try {
    await t.step("migrations as they exist were pushed and recorded", async () => {
      const files = await migrationFiles();
      if (files.length === 0) return; // an empty migrations folder: nothing to record
      const rows = await sql<{ version: string }[]>`
        select version from supabase_migrations.schema_migrations order by version
      `;
      assert.deepEqual(
        rows.map((r) => r.version),
        files.map((f) => f.split("_")[0]),
      );
    });

    await t.step("stand-ins: idempotent, Supabase's roles, signatures, grants", async () => {
      await applyStandIns(sql); // a second run must not fail

      const roles = await sql<
        { rolname: string; rolcanlogin: boolean; rolinherit: boolean; rolbypassrls: boolean }[]
      >`
        select rolname, rolcanlogin, rolinherit, rolbypassrls from pg_roles
        where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')
        order by rolname
      `;
      assert.deepEqual(roles.map((r) => ({ ...r })), [
        { rolname: "anon", rolcanlogin: false, rolinherit: true, rolbypassrls: false },
        { rolname: "authenticated", rolcanlogin: false, rolinherit: true, rolbypassrls: false },
        { rolname: "authenticator", rolcanlogin: true, rolinherit: false, rolbypassrls: false },
        { rolname: "service_role", rolcanlogin: false, rolinherit: true, rolbypassrls: true },
      ]);
      const members = await sql<{ role: string }[]>`
        select r.rolname as role from pg_auth_members m
        join pg_roles r on r.oid = m.roleid join pg_roles u on u.oid = m.member
        where u.rolname = 'authenticator' order by 1
      `;
      assert.deepEqual(members.map((m) => m.role), ["anon", "authenticated", "service_role"]);

      const fns = await sql<{ fn: string; args: string; result: string }[]>`
        select n.nspname || '.' || p.proname as fn, pg_get_function_arguments(p.oid) as args,
          pg_get_function_result(p.oid) as result
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where (n.nspname, p.proname) in (('net', 'http_post'), ('net', 'http_get'),
          ('vault', 'create_secret'), ('vault', 'update_secret'), ('auth', 'uid'),
          ('auth', 'role'), ('auth', 'jwt'))
      `;
      const sig = Object.fromEntries(fns.map((f) => [f.fn, `(${f.args}) -> ${f.result}`]));
      assert.deepEqual(sig, {
        "net.http_post": `(url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT ` +
          `'{}'::jsonb, headers jsonb DEFAULT '{"Content-Type": "application/json"}'::jsonb, ` +
          `timeout_milliseconds integer DEFAULT 5000) -> bigint`,
        "net.http_get": `(url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT ` +
          `'{}'::jsonb, timeout_milliseconds integer DEFAULT 5000) -> bigint`,
        "vault.create_secret": `(new_secret text, new_name text DEFAULT NULL::text, ` +
          `new_description text DEFAULT ''::text, new_key_id uuid DEFAULT NULL::uuid) -> uuid`,
        "vault.update_secret": `(secret_id uuid, new_secret text DEFAULT NULL::text, ` +
          `new_name text DEFAULT NULL::text, new_description text DEFAULT NULL::text, ` +
          `new_key_id uuid DEFAULT NULL::uuid) -> void`,
        "auth.uid": "() -> uuid",
        "auth.role": "() -> text",
        "auth.jwt": "() -> jsonb",
      });

      // Grants that matter, as on Supabase: vault is closed to the API roles but service_role
      // (reading decrypted_secrets takes EXECUTE on the decrypt function too); net is open to
      // everyone (pg_net grants it to PUBLIC; Supabase adds the API roles).
      const decrypt = "vault._crypto_aead_det_decrypt(bytea, bytea, bigint, bytea, bytea)";
      const [grants] = await sql<Record<string, boolean>[]>`
        select
          has_schema_privilege('anon', 'vault', 'usage') as anon_vault,
          has_schema_privilege('authenticated', 'vault', 'usage') as authenticated_vault,
          has_schema_privilege('service_role', 'vault', 'usage') as service_role_vault,
          has_schema_privilege('anon', 'net', 'usage') as anon_net,
          has_function_privilege('anon', 'vault.create_secret(text, text, text, uuid)', 'execute')
            as anon_create_secret,
          has_function_privilege('authenticated', ${decrypt}, 'execute') as authenticated_decrypt,
          has_function_privilege('service_role', ${decrypt}, 'execute') as service_role_decrypt,
          has_schema_privilege('anon', 'auth', 'usage') as anon_auth,
          has_table_privilege('anon', 'auth.users', 'select') as anon_users
      `;
      assert.deepEqual({ ...grants }, {
        anon_vault: false,
        authenticated_vault: false,
        service_role_vault: true,
        anon_net: true,
        anon_create_secret: false,
        authenticated_decrypt: false,
        service_role_decrypt: true,
        anon_auth: true,
        anon_users: false,
      });
    });

    await t.step("auth.uid/role/jwt read request.jwt.claims like Supabase", async () => {
      const [none] = await sql`select auth.uid() as uid, auth.role() as role, auth.jwt() as jwt`;
      assert.deepEqual({ ...none }, { uid: null, role: null, jwt: null });

      const uid = crypto.randomUUID();
      const claims = { sub: uid, role: "authenticated", email: "a@example.com" };
      const [got] = await sql.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
        return await tx`select auth.uid() as uid, auth.role() as role, auth.jwt() as jwt`;
      });
      assert.deepEqual({ ...got }, { uid, role: "authenticated", jwt: claims });

      // The legacy per-claim setting wins, as in Supabase's functions.
      const legacy = crypto.randomUUID();
      const [both] = await sql.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
        await tx`select set_config('request.jwt.claim.sub', ${legacy}, true)`;
        return await tx`select auth.uid() as uid`;
      });
      assert.equal(both?.uid, legacy);

      const [user] = await sql`
        insert into auth.users (email) values ('harness@example.com') returning id, created_at
      `;
      assert.ok(user?.id && user.created_at instanceof Date);
    });

    await t.step("pg_cron: extension, scheduler, schedule and unschedule a job", async () => {
      await sql`create extension if not exists pg_cron`;
      await waitFor("the pg_cron launcher", async () => {
        const rows = await sql`
          select 1 from pg_stat_activity where backend_type = 'pg_cron launcher'
        `;
        return rows.length === 1;
      });

      const { jobid } = await one(sql<{ jobid: string }[]>`
        select cron.schedule('harness-test-job', '* * * * *', 'select 1') as jobid
      `);
      const [job] = await sql`
        select jobid::text, schedule, command, database, username, active
        from cron.job where jobname = 'harness-test-job'
      `;
      assert.deepEqual({ ...job }, {
        jobid,
        schedule: "* * * * *",
        command: "select 1",
        database: "postgres",
        username: "postgres",
        active: true,
      });

      // Scheduling the same name again updates the job in place.
      const [again] = await sql`
        select cron.schedule('harness-test-job', '*/2 * * * *', 'select 2')::text as jobid
      `;
      assert.equal(again?.jobid, jobid);
      const [updated] = await sql`
        select schedule, command from cron.job where jobname = 'harness-test-job'
      `;
      assert.deepEqual({ ...updated }, { schedule: "*/2 * * * *", command: "select 2" });

      const [un] = await sql`select cron.unschedule('harness-test-job') as ok`;
      assert.equal(un?.ok, true);
      const left = await sql`select 1 from cron.job where jobname = 'harness-test-job'`;
      assert.equal(left.length, 0);
      await assert.rejects(
        sql`select cron.unschedule('harness-test-job')`,
        /could not find valid entry for job/,
      );
    });

    await t.step("vault: create, read, duplicate name, update, grants", async () => {
      const [created] = await sql`
        select vault.create_secret('first value', 'harness_secret', 'for the harness test') as id
      `;
      const id = String(created?.id);
      assert.match(id, /^[0-9a-f-]{36}$/);

      const [read] = await sql`
        select name, description, decrypted_secret from vault.decrypted_secrets where id = ${id}
      `;
      assert.deepEqual({ ...read }, {
        name: "harness_secret",
        description: "for the harness test",
        decrypted_secret: "first value",
      });

      await assert.rejects(
        sql`select vault.create_secret('other value', 'harness_secret')`,
        (e: unknown) => {
          assert.equal(errorCode(e), "23505");
          assert.match(String(e), /secrets_name_idx/);
          return true;
        },
      );

      await sql`select vault.update_secret(${id}::uuid, 'second value')`;
      const [after] = await sql`
        select name, description, decrypted_secret, updated_at >= created_at as touched
        from vault.decrypted_secrets where id = ${id}
      `;
      assert.deepEqual({ ...after }, {
        name: "harness_secret",
        description: "for the harness test",
        decrypted_secret: "second value",
        touched: true,
      });
      await sql`select vault.update_secret(${id}::uuid, new_name => 'harness_secret_renamed')`;
      // The stored form is never the value itself (ciphertext, or base64 in the stand-in): only
      // decrypted_secrets gives it back.
      const [renamed] = await sql`
        select s.name, s.secret <> 'second value' as stored_otherwise, d.decrypted_secret
        from vault.secrets s join vault.decrypted_secrets d using (id) where s.id = ${id}
      `;
      assert.deepEqual({ ...renamed }, {
        name: "harness_secret_renamed",
        stored_otherwise: true,
        decrypted_secret: "second value",
      });

      // Unnamed secrets do not collide.
      await sql`select vault.create_secret('a'), vault.create_secret('b')`;

      // service_role may read and create; anon may not even see the schema.
      const [asService] = await sql.begin(async (tx) => {
        await tx`set local role service_role`;
        await tx`select vault.create_secret('by service role', 'harness_service_secret')`;
        return await tx`
          select decrypted_secret from vault.decrypted_secrets where name = 'harness_secret_renamed'
        `;
      });
      assert.equal(asService?.decrypted_secret, "second value");
      await assert.rejects(
        sql.begin(async (tx) => {
          await tx`set local role anon`;
          await tx`select decrypted_secret from vault.decrypted_secrets`;
        }),
        (e: unknown) => errorCode(e) === "42501",
      );
    });

    await t.step("net: requests reach a local server only after commit, once", async (t) => {
      const received: Received[] = [];
      let releaseHung: () => void = () => {};
      const hung = new Promise<void>((resolve) => (releaseHung = resolve));
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        async (req) => {
          const url = new URL(req.url);
          if (url.pathname === "/hang") {
            await hung; // never answers on its own; released when this step ends
            return new Response("too late", { status: 504 });
          }
          received.push({
            method: req.method,
            path: url.pathname + url.search,
            headers: Object.fromEntries(req.headers.entries()),
            body: await req.text(),
          });
          return Response.json({ ok: true, n: received.length }, {
            status: 201,
            headers: { "x-test": "yes" },
          });
        },
      );
      const base = `http://127.0.0.1:${server.addr.port}`;
      const deliverer = startNetDeliverer(db.dbUrl, { pollIntervalMs: 50 });
      const responseCount = async () =>
        (await one(sql<{ n: number }[]>`select count(*)::int as n from net._http_response`)).n;
      // A request committed now, delivered by the background loop (or the real pg_net worker):
      // once it has arrived, every request committed before it has been taken too (they are taken
      // in id order), so what has not arrived by then was never committed.
      const deliverMarker = async (path: string) => {
        await sql`select net.http_get(${base + path})`;
        await waitFor(`${path} to be delivered`, () => received.some((r) => r.path === path));
      };
      try {
        await t.step("http_post: method, headers, body, params; response row", async () => {
          const { id } = await one(sql<{ id: string }[]>`
            select net.http_post(
              url := ${base + "/hook"},
              body := '{"hello": "world", "n": 1}'::jsonb,
              params := '{"a": "1 2", "b": "x&y"}'::jsonb,
              headers := jsonb_build_object(
                'Content-Type', 'application/json',
                'Authorization', 'Bearer harness-token',
                'x-cron-secret', 'harness-secret'
              ),
              timeout_milliseconds := 2000
            ) as id
          `);
          await deliverer.drain();
          assert.equal(received.length, 1);
          const got = received[0]!;
          assert.equal(got.method, "POST");
          assert.equal(got.path, "/hook?a=1%202&b=x%26y");
          assert.equal(got.headers["content-type"], "application/json");
          assert.equal(got.headers["authorization"], "Bearer harness-token");
          assert.equal(got.headers["x-cron-secret"], "harness-secret");
          assert.match(got.headers["user-agent"] ?? "", /^pg_net\//);
          assert.deepEqual(JSON.parse(got.body), { hello: "world", n: 1 });

          const [row] = await sql`
            select status_code, content_type, headers ->> 'x-test' as x_test, content, timed_out,
              error_msg
            from net._http_response where id = ${id}
          `;
          assert.deepEqual({ ...row }, {
            status_code: 201,
            content_type: "application/json",
            x_test: "yes",
            content: JSON.stringify({ ok: true, n: 1 }),
            timed_out: false,
            error_msg: null,
          });
          const [queued] = await sql`select count(*)::int as n from net.http_request_queue`;
          assert.equal(queued?.n, 0);
        });

        await t.step("http_post: default headers; non-JSON content type is refused", async () => {
          await sql`select net.http_post(${base + "/defaults"})`;
          await deliverer.drain();
          const got = received.at(-1)!;
          assert.equal(got.path, "/defaults");
          assert.equal(got.headers["content-type"], "application/json");
          assert.equal(got.body, "{}");
          await assert.rejects(
            sql`select net.http_post(${base}, '{}'::jsonb, '{}'::jsonb,
              '{"Content-Type": "text/plain"}'::jsonb)`,
            /Content-Type header must be "application\/json"/,
          );
        });

        await t.step("http_get with params", async () => {
          const before = received.length;
          await sql`select net.http_get(${base + "/get?x=1"}, '{"y": "2"}'::jsonb)`;
          await deliverer.drain();
          assert.equal(received.length, before + 1);
          const got = received.at(-1)!;
          assert.equal(got.method, "GET");
          assert.equal(got.path, "/get?x=1&y=2");
          assert.equal(got.body, "");
        });

        await t.step("a rolled-back transaction sends nothing", async () => {
          const before = received.length;
          const responsesBefore = await responseCount();
          await assert.rejects(
            sql.begin(async (tx) => {
              await tx`select net.http_post(${base + "/rolled-back"})`;
              throw new Error("roll back");
            }),
            /roll back/,
          );
          await deliverer.drain();
          await deliverMarker("/after-rollback");
          assert.deepEqual(received.slice(before).map((r) => r.path), ["/after-rollback"]);
          // The deliverer commits a batch's responses once it is answered: wait for the marker's.
          const responses = await waitFor(
            "the marker's response row",
            async () => {
              const n = await responseCount();
              return n > responsesBefore ? n : null;
            },
          );
          assert.equal(responses, responsesBefore + 1, "only the marker's response");
        });

        await t.step("an open transaction's request is sent only once it commits", async () => {
          const before = received.length;
          await sql.begin(async (tx) => {
            await tx`select net.http_post(${base + "/after-commit"})`;
            await deliverer.drain();
            // Committed on another connection while this transaction stays open.
            await deliverMarker("/while-open");
            assert.deepEqual(received.slice(before).map((r) => r.path), ["/while-open"]);
          });
          await waitFor("/after-commit to be delivered", () => received.length === before + 2);
          assert.equal(received.at(-1)?.path, "/after-commit");
        });

        await t.step("the worker delivers without drain()", async () => {
          const { id } = await one(
            sql<{ id: string }[]>`select net.http_get(${base + "/polled"}) as id`,
          );
          await waitFor("the background loop's response row", async () => {
            const rows = await sql`select 1 from net._http_response where id = ${id}`;
            return rows.length === 1;
          });
          assert.equal(received.at(-1)?.path, "/polled");
        });

        await t.step("a server that never answers: timed_out", async () => {
          const t0 = performance.now();
          const { id } = await one(sql<{ id: string }[]>`
            select net.http_post(${base + "/hang"}, timeout_milliseconds := 300) as id
          `);
          await deliverer.drain();
          const elapsed = performance.now() - t0;
          assert.ok(elapsed >= 250 && elapsed < 5_000, `took ${elapsed} ms`);
          const [row] = await sql`
            select status_code, timed_out, error_msg from net._http_response where id = ${id}
          `;
          assert.equal(row?.status_code, null);
          assert.equal(row?.timed_out, true);
          assert.match(String(row?.error_msg), /^Timeout of 300 ms reached/);
        });

        await t.step("a refused connection is an error, not a timeout", async () => {
          const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
          const port = (closed.addr as Deno.NetAddr).port;
          closed.close();
          const url = `http://127.0.0.1:${port}/nobody`;
          const { id } = await one(sql<{ id: string }[]>`select net.http_get(${url}) as id`);
          await deliverer.drain();
          const [row] = await sql`
            select status_code, timed_out, error_msg from net._http_response where id = ${id}
          `;
          assert.deepEqual({ ...row }, {
            status_code: null,
            timed_out: false,
            error_msg: "Couldn't connect to server",
          });
        });
      } finally {
        releaseHung();
        await deliverer.stop();
        await server.shutdown();
      }
    });

    await t.step("restart (fast, immediate) and kill keep committed data", async () => {
      await sql`create table harness_kept (v text)`;
      await sql`insert into harness_kept values ('kept')`;
      // pg_net's tables are unlogged: a clean restart keeps their rows, crash recovery empties
      // them.
      const deliverer = startNetDeliverer(db.dbUrl);
      try {
        await sql`select net.http_get('http://127.0.0.1:9/never')`;
        await deliverer.drain();
      } finally {
        await deliverer.stop();
      }
      const responses = async () =>
        (await one(sql<{ n: number }[]>`select count(*)::int as n from net._http_response`)).n;
      const answered = await responses();
      assert.ok(answered > 0);

      await db.restart();
      const [fast] = await sql`select v from harness_kept`;
      assert.equal(fast?.v, "kept");
      assert.equal(await responses(), answered, "a clean restart keeps unlogged tables");

      await db.restart({ mode: "immediate" });
      const [immediate] = await sql`select v from harness_kept`;
      assert.equal(immediate?.v, "kept");
      assert.equal(await responses(), 0, "crash recovery empties unlogged tables");

      await sql`insert into harness_kept values ('before kill')`;
      await db.kill();
      await db.restart();
      const rows = await sql`select v from harness_kept order by v`;
      assert.deepEqual(rows.map((r) => r.v), ["before kill", "kept"]);
    });

    await t.step("stop removes the temp dir and leaves no postgres process", async () => {
      const pidText = await Deno.readTextFile(`${db.dataDir}/postmaster.pid`);
      const pid = Number(pidText.split("\n")[0]);
      assert.ok(processAlive(pid));
      const processes = [pid, ...childrenOf(pid)];
      assert.ok(processes.length > 3, "postmaster with its background processes");
      const tempDir = db.dataDir.replace(/\/data$/, "");

      await db.stop();

      assert.equal(await pathExists(db.dataDir), false);
      assert.equal(await pathExists(tempDir), false);
      assert.deepEqual(processes.filter(processAlive), []);
      // pg_ctl refuses root, like initdb: ask as the cluster's OS user. 3 = not running, 4 = no
      // data directory.
      const pgCtl = `${pgBindirOverride() ?? "/usr/lib/postgresql/15/bin"}/pg_ctl`;
      const [cmd, args] = Deno.uid() === 0
        ? ["runuser", ["-u", "postgres", "--", pgCtl, "status", "-D", db.dataDir]]
        : [pgCtl, ["status", "-D", db.dataDir]];
      const status = await new Deno.Command(cmd as string, {
        args: args as string[],
        cwd: "/",
        stdout: "null",
        stderr: "null",
      }).output();
      assert.ok([3, 4].includes(status.code), `pg_ctl status exit ${status.code}`);
      await assert.rejects(
        Deno.connect({ hostname: "127.0.0.1", port: db.port }),
        "nothing listens on the port",
      );
      await db.stop(); // idempotent
    });
  } finally {
    await db.stop();
  }
});
