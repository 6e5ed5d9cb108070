/**
 * `npm start` itself, as a developer runs it: scripts/start.ts as a child process on a temp data
 * dir and free ports. The real pg_cron job (every minute locally) must drive a run through Vault,
 * the pg_net stand-in and the functions to the Cafe24 sandbox; the demo malls must end as
 * designed; a reconnect must show at once; `npm run refresh` and `npm run deploy:check -- --local`
 * must work against the stack; SIGINT and SIGHUP must leave nothing running; a second start on
 * the same data dir must come up again; and a checkout under a private folder must start too.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  SANDBOX_CLIENT_ID,
  SANDBOX_CLIENT_SECRET,
  type StackInfo,
} from "../../local/stack/stack_info.ts";
import { processAlive as alive } from "../../local/processes.ts";
import { JWKS_PATH } from "../../local/supabase/auth_stand_in.ts";
import { demoCookieName } from "../../local/settings_page/server.ts";
import { waitFor as waitForEvent } from "../support/wait.ts";
import { rawRequest } from "../support/raw_http.ts";
import { loadTokenRing } from "../../local/stack/token_ring.ts";
import {
  configuredTokenSeal,
  connectionPlace,
} from "../../supabase/functions/_shared/platform/token_seal.ts";

const ROOT = new URL("../../", import.meta.url);
const FIRST_CRON_RUN_TIMEOUT_MS = 80_000; // pg_cron fires on minute boundaries
const START_TIMEOUT_MS = 90_000;
/** The bound on npm start's time to ready (a new database, the migrations, every server), with
 * room for a loaded 2-core machine: the README quotes it. */
const READY_BOUND_S = 60;

function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** The parent's environment without anything that would point the stack at a real Cafe24. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (/^(CAFE24_|CRON_SECRET$|SUPABASE_)/.test(name)) delete env[name];
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

/** Every process whose parent chain leads to one of `roots`, plus those whose command line
 * mentions `marker` (postgres runs detached from the stack's process tree). */
function processesOf(roots: number[], marker: string): number[] {
  const parents = new Map<number, number>();
  const found = new Set<number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      parents.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(marker)) found.add(pid);
    } catch {
      // gone while scanning
    }
  }
  const queue = [...roots, ...found];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    if (!alive(pid)) continue;
    found.add(pid);
    for (const [child, parent] of parents) {
      if (parent === pid && !found.has(child)) queue.push(child);
    }
  }
  return [...found].filter(alive).sort((a, b) => a - b);
}

/** The shared wait, with npm start's output in the error when the deadline passes. */
function waitFor<T>(
  what: string,
  probe: () => Promise<T | null> | T | null,
  timeoutMs: number,
  output: string[] = [],
): Promise<T> {
  return waitForEvent(what, probe, {
    timeoutMs,
    detail: () => `--- output ---\n${output.join("\n")}`,
  });
}

interface StartedStack {
  child: Deno.ChildProcess;
  output: string[];
  info: StackInfo;
  done: Promise<void>;
}

async function startStack(
  args: string[],
  dataDir: string,
  root: URL | string = ROOT,
): Promise<StartedStack> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "scripts/start.ts", ...args],
    cwd: root,
    env: cleanEnv(),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      output.push(...lines);
    }
    if (buffered !== "") output.push(buffered);
  };
  const done = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => {});
  let exited = false;
  child.status.then(() => (exited = true));
  await waitFor(
    "the stack to be ready",
    () => {
      if (exited) throw new Error(`npm start exited early:\n${output.join("\n")}`);
      return output.some((line) => line.includes("Runs appear below")) ? true : null;
    },
    START_TIMEOUT_MS,
    output,
  );
  const info = JSON.parse(await Deno.readTextFile(`${dataDir}/stack.json`)) as StackInfo;
  return { child, output, info, done };
}

/** A stop signal, then: exit code 0, and not one process of the stack left. */
async function interruptAndCheck(
  stack: StartedStack,
  dataDir: string,
  signal: Deno.Signal = "SIGINT",
): Promise<void> {
  const before = processesOf([stack.child.pid], stack.info.postgres_dir);
  assert.ok(stack.info.pids.postgres !== null && before.includes(stack.info.pids.postgres));
  assert.ok(stack.info.pids.functions !== null && before.includes(stack.info.pids.functions));
  stack.child.kill(signal);
  const status = await Promise.race([
    stack.child.status,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("npm start did not stop within 30 s")), 30_000)
    ),
  ]);
  await stack.done;
  assert.equal(status.code, 0, stack.output.join("\n"));
  const left = before.filter(alive);
  assert.deepEqual(left, [], `still running after ${signal}: ${left.join(", ")}`);
  assert.deepEqual(processesOf([], stack.info.postgres_dir), []);
  await assert.rejects(() => Deno.stat(`${dataDir}/stack.json`), Deno.errors.NotFound);
}

async function refreshCli(args: string[], env: Record<string, string> = {}) {
  return await runScript("scripts/refresh.ts", args, env);
}

async function runScript(script: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script, ...args],
    cwd: ROOT,
    env: cleanEnv(env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  let summary: Record<string, unknown> | null = null;
  try {
    summary = JSON.parse(stdout);
  } catch {
    // not a summary (usage errors)
  }
  return { code: out.code, stdout, stderr, summary };
}

Deno.test("npm start: the real cron job refreshes the demo malls; Ctrl-C leaves nothing running", async (t) => {
  const dataDir = await Deno.makeTempDir({ prefix: "local-stack-" });
  // The cluster runs as the `postgres` OS user when the tests run as root: it must reach the dir.
  await Deno.chmod(dataDir, 0o755);
  const envFile = `${dataDir}/empty.env`;
  await Deno.writeTextFile(envFile, "# no Cafe24 credentials: the sandbox\n");
  const [dbPort, functionsPort, sandboxPort, settingsPort] = freePorts(4);
  const args = [
    "--data-dir",
    dataDir,
    "--env-file",
    envFile,
    "--db-port",
    String(dbPort),
    "--functions-port",
    String(functionsPort),
    "--sandbox-port",
    String(sandboxPort),
    "--settings-port",
    String(settingsPort),
  ];
  let stack: StartedStack | undefined;
  let sql: postgres.Sql | undefined;
  try {
    stack = await startStack(args, dataDir);
    const { info } = stack;
    assert.equal(info.mode, "sandbox");
    assert.equal(info.supabase_url, `http://127.0.0.1:${functionsPort}`);
    assert.match(
      info.db_url,
      new RegExp(`^postgresql://postgres:[0-9a-f]{32}@127\\.0\\.0\\.1:${dbPort}/postgres$`),
    );
    assert.equal(info.sandbox_url, `http://127.0.0.1:${sandboxPort}`);
    assert.equal(new URL(info.settings_page_url).port, String(settingsPort), "--settings-port");
    // The time to ready, as the banner says it: the README quotes this bound.
    const ready = Number(/ready in (\d+(?:\.\d+)?) s/.exec(stack.output.join("\n"))?.[1]);
    assert.ok(
      ready > 0 && ready <= READY_BOUND_S,
      `ready in ${ready} s (bound ${READY_BOUND_S} s)`,
    );
    assert.equal(info.postgres_dir, `${dataDir}/postgres`);
    assert.equal((await Deno.stat(`${dataDir}/stack.json`)).mode! & 0o777, 0o600);
    assert.ok(info.try.some((line) => line.startsWith("npm run refresh --")), info.try.join("\n"));
    const db = postgres(info.db_url, { prepare: false, max: 2, onnotice: () => {} });
    sql = db;
    const output = stack.output;

    // The stack keeps its key ring beside the database; stored tokens open with it.
    const ring = await loadTokenRing(dataDir);
    assert.ok(ring, "npm start keeps a token key ring in its data dir");
    const seal = configuredTokenSeal(ring);
    const cafe24 = async (mallId: string) => {
      const [row] = await db<
        {
          id: string;
          refresh_token: string;
          status: string;
          last_error_code: string | null;
          refreshed: boolean;
        }[]
      >`
        select s.id, c.refresh_token, c.status,
          c.last_error_code, c.last_refreshed_at is not null as refreshed
        from public.auth_settings s join cafe24_private.connections c on c.auth_settings_id = s.id
        where s.providers -> 'cafe24' ->> 'mall_id' = ${mallId}`;
      assert.ok(row, `no demo row for ${mallId}`);
      const opened = await seal.open(connectionPlace(row.id), "refresh_token", row.refresh_token);
      assert.ok(opened.ok, `${mallId}: the stored refresh token opens with the stack's ring`);
      return { ...row, refresh_token: opened.value };
    };
    // The sandbox's control API wants this start's token, which only stack.json holds.
    const control = { authorization: `Bearer ${info.control_token}` };
    const live = async (mallId: string) => {
      const response = await fetch(`${info.sandbox_url}/__sandbox/malls/${mallId}/live`, {
        headers: control,
      });
      assert.equal(response.status, 200);
      return ((await response.json()) as { refresh_token: string | null }).refresh_token;
    };

    await t.step(
      "the job is rescheduled every minute and Vault points at the local functions",
      async () => {
        const [job] = await db<{ schedule: string; command: string; active: boolean }[]>`
        select schedule, command, active from cron.job where jobname = 'cafe24-refresh'`;
        assert.deepEqual(job, {
          schedule: "* * * * *",
          command: "select cafe24_private.invoke_cafe24_refresh()",
          active: true,
        });
        const secrets = await db<{ name: string; value: string }[]>`
        select name, decrypted_secret as value from vault.decrypted_secrets
        where name in ('cafe24_project_url', 'cafe24_cron_secret') order by name`;
        assert.equal(secrets.length, 2);
        assert.equal(secrets[1]!.value, info.supabase_url);
        assert.ok(secrets[0]!.value.length >= 32, "a generated cron secret");
        assert.equal(secrets[0]!.value, info.cron_secret, "the stack file has the cron secret");
      },
    );

    await t.step(
      "each server answers only its loopback names; sessions and live tokens want the stack's token",
      async () => {
        const page = new URL(info.settings_page_url);
        assert.equal(new URLSearchParams(page.hash.slice(1)).get("key"), info.control_token);
        assert.ok(
          stack!.output.some((line) => line.includes(info.settings_page_url)),
          "the banner prints the settings page's link with its key",
        );
        // The functions process's own origin, from its announcement in the log.
        const log = await Deno.readTextFile(`${dataDir}/functions.log`);
        const listening = log.split("\n").filter((line) => line.includes('"functions_listening"'))
          .at(-1);
        assert.ok(listening, "the functions announced their URL");
        const functionsOrigin = new URL(JSON.parse(listening).url).origin;
        for (
          const [name, url] of [
            ["the settings page", `${page.origin}/`],
            ["the gateway", `${info.supabase_url}${JWKS_PATH}`],
            ["the gateway's functions", `${info.supabase_url}/functions/v1/cafe24-refresh`],
            ["the functions", `${functionsOrigin}/functions/v1/cafe24-refresh`],
            ["the sandbox", `${info.sandbox_url}/demonow/api/v2/admin/shops`],
            ["the sandbox's control API", `${info.sandbox_url}/__sandbox/malls/demonow/live`],
          ]
        ) {
          const port = new URL(url!).port;
          const headers = { authorization: `Bearer ${info.control_token}` };
          const rebound = await rawRequest(url!, { host: `rebind.example:${port}`, headers });
          assert.equal(rebound.status, 421, `${name}: ${rebound.body}`);
          const local = await rawRequest(url!, { host: `localhost:${port}`, headers });
          assert.notEqual(local.status, 421, `${name} refused localhost:${port}`);
        }

        // The sandbox's control API without the token: no live token.
        const noToken = await fetch(`${info.sandbox_url}/__sandbox/malls/demonow/live`);
        assert.equal(noToken.status, 401);
        assert.doesNotMatch(await noToken.text(), /refresh_token/);

        // The settings page's sign-in: the page's Origin, forged by a local process, is not enough.
        const signIn = (headers: Record<string, string>) =>
          fetch(`${page.origin}/demo-session`, {
            method: "POST",
            headers: { "content-type": "application/json", origin: page.origin, ...headers },
            body: JSON.stringify({ user: "demodead" }),
          });
        const forged = await signIn({});
        assert.equal(forged.status, 403);
        assert.deepEqual(await forged.json(), { error: "DEMO_KEY_REQUIRED" });
        // With the cookie that the link's key buys: a session for the demo mall's owner.
        const exchanged = await fetch(`${page.origin}/demo-key`, {
          method: "POST",
          headers: { "content-type": "application/json", origin: page.origin },
          body: JSON.stringify({ key: info.control_token }),
        });
        assert.equal(exchanged.status, 204);
        const cookie = (exchanged.headers.get("set-cookie") ?? "").split(";")[0]!;
        assert.ok(cookie.startsWith(`${demoCookieName(Number(page.port))}=`), cookie);
        const session = await signIn({ cookie });
        assert.equal(session.status, 200);
        assert.equal(typeof (await session.json()).access_token, "string");
      },
    );

    const run = await waitFor(
      "the first cron-driven run",
      async () => {
        const [row] = await db<{ id: string; mode: string; summary: Record<string, unknown> }[]>`
        select id, mode, summary from cafe24_private.refresh_runs
        where trigger = 'cron' and status = 'finished' order by started_at limit 1`;
        return row ?? null;
      },
      FIRST_CRON_RUN_TIMEOUT_MS,
      output,
    );

    await t.step(
      "the first cron-driven run refreshed the due malls and failed the dead one",
      () => {
        assert.equal(run.mode, "async");
        const summary = run.summary as {
          scanned: number;
          eligible: number;
          due: number;
          refreshed: number;
          failed: number;
          failures: { id: string; reason: string }[];
          skipped_reasons: Record<string, number>;
        };
        assert.equal(summary.scanned, 8);
        assert.equal(summary.eligible, 7, "all but the malformed row have both keys");
        assert.equal(summary.due, 4);
        assert.equal(summary.refreshed, 3);
        assert.equal(summary.failed, 1);
        assert.match(summary.failures[0]!.reason, /^CAFE24_INVALID_GRANT/);
        assert.equal(summary.skipped_reasons.malformed, 1);
        assert.equal(summary.skipped_reasons.not_due, 3);
      },
    );

    await t.step("due malls hold the sandbox's live tokens; the others are untouched", async () => {
      for (const mallId of ["demoexpired", "demonow", "demolegacy"]) {
        const row = await cafe24(mallId);
        assert.equal(row.refresh_token, await live(mallId), mallId);
        assert.equal(row.refreshed, true, mallId);
        assert.equal(row.status, "active", mallId);
      }
      for (const mallId of ["demo10min", "demo20min", "demo40min"]) {
        const row = await cafe24(mallId);
        assert.equal(row.refresh_token, await live(mallId), mallId);
        assert.equal(row.refreshed, false, `${mallId} was not due`);
      }
      const dead = await cafe24("demodead");
      assert.equal(dead.status, "reconnect_required");
      assert.equal(dead.last_error_code, "CAFE24_INVALID_GRANT");
      const [malformed] = await db<{ n: number }[]>`
        select count(*)::int as n from cafe24_private.connection_status where row_state = 'malformed'`;
      assert.equal(malformed!.n, 1);
    });

    await t.step("the terminal shows the run and the status table", async () => {
      await waitFor(
        "the run line",
        () =>
          output.some((line) => /cron\s+run \w{8}\s+due 4 · refreshed 3 · failed 1/.test(line))
            ? true
            : null,
        5_000,
        output,
      );
      // The failure, its advice and the status table follow the run line as it prints them.
      for (
        const [what, pattern] of [
          ["the failed mall", /✗ demodead\s+CAFE24_INVALID_GRANT$/],
          ["what to do about it", /→ the mall's owner must connect it again/],
          ["the status table", /demodead\s+reconnect_required/],
        ] as const
      ) {
        await waitFor(
          what,
          () => output.some((line) => pattern.test(line)) ? true : null,
          10_000,
          output,
        );
      }
      assert.ok(output.some((line) => line.includes(`curl -sS -X POST`)));
      // The banner and the live screen, all of it (the functions' own error lines aside).
      const wide = output.filter((line) =>
        [...line].length > 80 && !line.startsWith("functions │")
      );
      assert.deepEqual(wide, [], "every banner and run line fits 80 columns");
      assert.ok(
        output.some((line) => line.startsWith("  settings    ")) &&
          output.some((line) => line.trim() === info.settings_page_url),
        "the settings page's link on a line of its own",
      );
    });

    await t.step(
      "a reconnect shows at once, and its old error is gone from the table",
      async () => {
        const user = info.local_user!;
        const authorize = await fetch(
          `${info.supabase_url}/functions/v1/cafe24-authorize?mall_id=demodead&mode=json`,
          { headers: { authorization: `Bearer ${user.jwt}` } },
        );
        assert.equal(authorize.status, 200);
        const { url } = await authorize.json() as { url: string };
        // The sandbox approves at once and sends the browser on to cafe24-callback, which parks
        // the pair and sends it back to the app's page with a handle; the page completes with the
        // owner's session.
        const location = async (from: string) => {
          const response = await fetch(from, { redirect: "manual" });
          await response.body?.cancel();
          assert.equal(response.status, 302, from);
          return response.headers.get("location")!;
        };
        // The sandbox shows its consent page, as Cafe24 does; the operator approves.
        const consent = await fetch(url);
        const page = await consent.text();
        const consentId = /name="consent" value="([^"]+)"/.exec(page)?.[1];
        assert.ok(consentId, "the consent page carries its request");
        const approved = await fetch(url, {
          method: "POST",
          redirect: "manual",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ consent: consentId, decision: "approve" }),
        });
        await approved.body?.cancel();
        assert.equal(approved.status, 302);
        const back = new URL(await location(approved.headers.get("location")!));
        const handle = new URLSearchParams(back.hash.slice(1)).get("handle");
        assert.ok(handle, back.href);
        const completed = await fetch(`${info.supabase_url}/functions/v1/cafe24-callback`, {
          method: "POST",
          headers: { authorization: `Bearer ${user.jwt}`, "content-type": "application/json" },
          body: JSON.stringify({ handle }),
        });
        assert.equal(completed.status, 200, await completed.text());
        assert.equal((await cafe24("demodead")).status, "active");
        const from = output.length;
        await waitFor(
          "the reconnect on the screen",
          () => output.some((line) => /✓ demodead connected again/.test(line)) ? true : null,
          10_000,
          output,
        );
        const row = await waitFor(
          "the table after the reconnect",
          () => output.slice(from).find((line) => /^ {2}demodead\s+active/.test(line)) ?? null,
          10_000,
          output,
        );
        assert.doesNotMatch(row, /CAFE24_INVALID_GRANT/);
      },
    );

    await t.step(
      "npm run refresh against the running stack: one mall, forced, exit 0",
      async () => {
        const result = await refreshCli([
          "--data-dir",
          dataDir,
          "--env-file",
          envFile,
          "--mall",
          "demo10min",
          "--force",
        ]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.summary?.refreshed, 1, result.stdout);
        assert.equal(result.summary?.failed, 0);
        assert.equal((await cafe24("demo10min")).refresh_token, await live("demo10min"));
        assert.match(result.stderr, /due 1 · refreshed 1 · failed 0/);
      },
    );

    await t.step(
      "npm run refresh with SUPABASE_DB_URL and a failing mall: exit 1, the reason, what to do",
      async () => {
        const revoked = await fetch(`${info.sandbox_url}/__sandbox/malls/demo20min/revoke`, {
          method: "POST",
          headers: control,
        });
        assert.equal(revoked.status, 200);
        await revoked.body?.cancel();
        const result = await refreshCli(
          [
            "--data-dir",
            `${dataDir}/none`,
            "--env-file",
            envFile,
            "--mall",
            "demo20min",
            "--force",
          ],
          {
            SUPABASE_DB_URL: info.db_url,
            CAFE24_CLIENT_ID: SANDBOX_CLIENT_ID,
            CAFE24_CLIENT_SECRET_KEY: SANDBOX_CLIENT_SECRET,
            CAFE24_API_BASE_URL: info.cafe24_api_base_url,
            // The database's ring, as an operator's env file would hold it.
            ...ring,
          },
        );
        assert.equal(result.code, 1, result.stderr);
        assert.equal(result.summary?.failed, 1);
        const failures = result.summary?.failures as { reason: string }[];
        assert.match(failures[0]!.reason, /^CAFE24_INVALID_GRANT/);
        assert.match(result.stderr, /✗ demo20min/);
        assert.match(result.stderr, /→ the mall's owner must connect it again/);
        assert.match(result.stderr, /SUPABASE_DB_URL from the environment/);
        assert.doesNotMatch(result.stderr, /"level"/, "no JSON log lines among the recap");
        assert.ok(!result.stderr.includes(new URL(info.db_url).password), "password not shown");
        const runs = await db<{ n: number }[]>`
        select count(*)::int as n from cafe24_private.refresh_runs where trigger = 'cli'`;
        assert.equal(runs[0]!.n, 2);
      },
    );

    await t.step("npm run refresh rejects a bad mall id with exit 2, before any run", async () => {
      const result = await refreshCli(["--data-dir", dataDir, "--mall", "Not/A-Mall"]);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /not a Cafe24 mall id/);
    });

    await t.step("npm run refresh for a mall that is not there warns and exits 1", async () => {
      const result = await refreshCli(["--data-dir", dataDir, "--mall", "nosuchmall"]);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.summary?.scanned, 0);
      assert.match(result.stderr, /no connection matches --mall nosuchmall/);
    });

    await t.step("npm run refresh without a stack or a URL says how to get one", async () => {
      const result = await refreshCli(["--data-dir", `${dataDir}/none`, "--env-file", envFile]);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /Start the local stack with `npm start`.*SUPABASE_DB_URL/s);
    });

    await t.step("npm run deploy:check -- --local passes every check on the stack", async () => {
      const result = await runScript("scripts/deploy_check.ts", ["--local", "--data-dir", dataDir]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      for (
        const name of [
          "database",
          "extensions",
          "migrations",
          "vault cron secret",
          "job cafe24-refresh",
          "job cafe24-events",
          "job cafe24-trim-histories",
          "job cafe24-trim-events",
          "job cafe24-oauth-states-cleanup",
          "jwt signing keys",
          "cafe24-refresh",
          "cafe24-authorize",
          "cafe24-callback",
          "cafe24-connections",
          "cafe24-token",
          "cafe24-disconnect",
          "cafe24-events",
          "cafe24-webhook",
          "refresh with secret",
          "cron path (dry run)",
        ]
      ) {
        assert.match(result.stdout, new RegExp(`✓ ${name.replace(/[()]/g, "\\$&")}\\s`), name);
      }
      assert.ok(!result.stdout.includes(info.cron_secret), "the secret is never printed");
    });

    await t.step(
      "a Vault secret that differs from CRON_SECRET: deploy:check names it, the screen explains the 401",
      async () => {
        await db`
          select vault.update_secret(id, 'not-the-cron-secret') from vault.secrets
          where name = 'cafe24_cron_secret'`;
        try {
          const from = output.length;
          const result = await runScript("scripts/deploy_check.ts", [
            "--local",
            "--data-dir",
            dataDir,
          ]);
          assert.equal(result.code, 1, result.stdout);
          assert.match(result.stdout, /✗ vault cron secret\s+Vault's cafe24_cron_secret differs/);
          assert.match(result.stdout, /✗ cron path \(dry run\)\s+cafe24-refresh refused/);
          // The dry run's pg_net request got the 401: the live screen says what it means.
          await waitFor(
            "the explained 401",
            () =>
              output.slice(from).join("\n").match(
                  /HTTP 401 UNAUTHORIZED\n\s+→ the Vault secret cafe24_cron_secret does not match/,
                )
                ? true
                : null,
            10_000,
            output,
          );
        } finally {
          await db`
            select vault.update_secret(id, ${info.cron_secret}) from vault.secrets
            where name = 'cafe24_cron_secret'`;
        }
      },
    );

    await db.end();
    sql = undefined;

    await t.step(
      "a tick with nothing due is one line, and the table does not follow it",
      async () => {
        const idle = await waitFor(
          "an idle tick's line",
          () => {
            const at = output.findIndex((line) =>
              /^\d\d:\d\d:\d\d {2}cron {3}tick\s+nothing due$/.test(line)
            );
            return at < 0 ? null : at;
          },
          // A tick may still refresh a pair early (one whose token is old enough); the one after
          // it then finds nothing: two ticks.
          2 * FIRST_CRON_RUN_TIMEOUT_MS,
          output,
        );
        assert.doesNotMatch(output[idle + 1] ?? "", /^ {2}mall\s+status/, "no table after it");
      },
    );

    await t.step("SIGINT stops the functions, the sandbox and PostgreSQL", async () => {
      const stopped = stack!;
      await interruptAndCheck(stopped, dataDir);
      stack = undefined;
      // Which pg_net worker ran, and where the database stays (and how to remove it).
      assert.ok(
        stopped.output.some((line) =>
          /^stopped: functions, Cafe24 sandbox, (pg_net stand-in, PostgreSQL|PostgreSQL with the real pg_net)$/
            .test(line)
        ),
        stopped.output.slice(-4).join("\n"),
      );
      const kept = stopped.output.findIndex((line) =>
        /^kept: the database \(\d+ (MB|kB)\), until npm start -- --reset removes it:$/.test(line)
      );
      assert.ok(kept > 0, stopped.output.slice(-4).join("\n"));
      assert.equal(stopped.output[kept + 1], `  ${info.postgres_dir}`);
      // Deno.serve's legacy-abort warning: no server of the stack reads request.signal.
      const warned = stopped.output.filter((line) => /request\.signal|legacy behavior/.test(line));
      assert.deepEqual(warned, [], "no legacy-abort warning");
    });

    await t.step(
      "a second start reuses the cluster, re-seeds the demo and stops cleanly",
      async () => {
        stack = await startStack(args, dataDir);
        assert.ok(stack.output.some((line) => line.includes("(reused; --reset wipes it)")));
        const again = postgres(stack.info.db_url, { prepare: false, max: 1, onnotice: () => {} });
        try {
          const [dead] = await again<{ status: string }[]>`
          select status from cafe24_private.connections where mall_id = 'demodead'`;
          assert.equal(dead!.status, "active", "the demo is re-seeded on every start");
          const [runs] = await again<{ n: number }[]>`
          select count(*)::int as n from cafe24_private.refresh_runs`;
          assert.ok(runs!.n >= 3, "the run history survives");
        } finally {
          await again.end();
        }
        // Closing the terminal stops the stack like Ctrl-C.
        await interruptAndCheck(stack, dataDir, "SIGHUP");
        stack = undefined;
      },
    );
  } finally {
    await sql?.end().catch(() => {});
    if (stack !== undefined) {
      try {
        stack.child.kill("SIGKILL");
      } catch { /* gone */ }
      await stack.child.status;
      await stack.done;
    }
    // Never leave a server behind, whatever failed above.
    for (const pid of processesOf([], dataDir)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("npm start -- --settings-port N: a busy settings port is refused with the whole command", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "local-stack-busy-" });
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    const result = await runScript("scripts/start.ts", [
      "--data-dir",
      dataDir,
      "--db-port",
      "0",
      "--functions-port",
      "0",
      "--sandbox-port",
      "0",
      "--settings-port",
      String(port),
    ]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, new RegExp(`port ${port} \\(settings\\) is in use`));
    assert.match(result.stderr, /^ {2}npm start -- --settings-port \d+$/m);
    const usage = await runScript("scripts/start.ts", ["--settings-port", "x"]);
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr.trim().split("\n").length, 1, "the usage error alone");
    assert.match(usage.stderr, /--settings-port must be a port number .*--help/);
  } finally {
    busy.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("npm start from a checkout under a private folder keeps its cluster where PostgreSQL can reach it", async () => {
  // A copy of the checkout inside a mode-0700 folder, as under /root or `mktemp -d`.
  const parent = await Deno.makeTempDir({ prefix: "private-parent-" });
  await Deno.chmod(parent, 0o700);
  const checkout = `${parent}/checkout`;
  const root = decodeURIComponent(ROOT.pathname).replace(/\/$/, "");
  const listed = await new Deno.Command("git", {
    args: ["ls-files", "-z"],
    cwd: ROOT,
    stdout: "piped",
  })
    .output();
  for (const file of new TextDecoder().decode(listed.stdout).split("\0").filter((f) => f !== "")) {
    const target = `${checkout}/${file}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(`${root}/${file}`, target).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error; // deleted, not yet committed
    });
  }
  await Deno.symlink(await Deno.realPath(`${root}/node_modules`), `${checkout}/node_modules`);
  const dataDir = `${checkout}/.local`;
  const [dbPort, functionsPort, sandboxPort, settingsPort] = freePorts(4);
  const envFile = `${parent}/empty.env`;
  await Deno.writeTextFile(envFile, "");
  let stack: StartedStack | undefined;
  let clusterDir: string | undefined;
  try {
    stack = await startStack(
      [
        "--env-file",
        envFile,
        "--db-port",
        String(dbPort),
        "--functions-port",
        String(functionsPort),
        "--sandbox-port",
        String(sandboxPort),
        "--settings-port",
        String(settingsPort),
      ],
      dataDir,
      checkout,
    );
    clusterDir = stack.info.postgres_dir;
    if (Deno.uid() === 0) {
      // The postgres OS user cannot enter the checkout: the cluster lives in its own folder.
      assert.match(clusterDir, /^\/var\/tmp\/cafe24-connector-[0-9a-f]{12}\/postgres$/);
      const owner = await Deno.stat(clusterDir.replace(/\/postgres$/, ""));
      assert.equal(owner.mode! & 0o777, 0o700);
      assert.ok(stack.output.some((line) => line.includes("postgres OS user cannot enter")));
    } else {
      assert.equal(clusterDir, `${dataDir}/postgres`);
    }
    const db = postgres(stack.info.db_url, { prepare: false, max: 1, onnotice: () => {} });
    try {
      const [row] = await db<{ n: number }[]>`select count(*)::int as n from public.auth_settings`;
      assert.ok(row!.n >= 8, "the demo is seeded");
    } finally {
      await db.end();
    }
    await interruptAndCheck(stack, dataDir, "SIGTERM");
    stack = undefined;
  } finally {
    if (stack !== undefined) {
      try {
        stack.child.kill("SIGKILL");
      } catch { /* gone */ }
      await stack.child.status;
      await stack.done;
    }
    for (const pid of processesOf([], clusterDir ?? dataDir)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    if (clusterDir?.startsWith("/var/tmp/")) {
      await Deno.remove(clusterDir.replace(/\/postgres$/, ""), { recursive: true }).catch(() => {});
    }
    await Deno.remove(parent, { recursive: true }).catch(() => {});
  }
});
