/**
 * Upgrading a deployed project: `supabase db push` runs before `supabase functions deploy`, so
 * for a while the previous release's functions call the new SQL. Here the previous release's
 * functions (the tree of the commit before the migration that moved the tokens into the private
 * row, unpacked with `git archive`) refresh against the new schema: the old claim and settle
 * signatures still work, compare the token text as that release did, and no pair is lost (the
 * new pair is in the private row, where the new release's functions then refresh it again).
 */
import assert from "node:assert/strict";
import {
  connectMall,
  CRON_SECRET,
  insertConnection,
  openStored,
  startRefreshStack,
} from "../support/stack.ts";
import { startTestDatabase } from "../../local/postgres/database.ts";
import { waitFor } from "../support/wait.ts";

const ROOT = new URL("../../", import.meta.url);
/**
 * The release deployed before the tokens moved to the private row: its functions are what runs
 * between `db push` and `functions deploy`.
 */
const PREVIOUS_RELEASE = "539337006d0fdacfc1b37b6406681b7b0e27d225";

async function git(args: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** The previous release's commit; a checkout without that history cannot run this test. */
async function previousRelease(): Promise<string> {
  return await git(["rev-parse", "--verify", `${PREVIOUS_RELEASE}^{commit}`]);
}

/** The previous release's tree in a temporary directory, sharing this checkout's node_modules. */
async function unpack(commit: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "cafe24-previous-release-" });
  const archive = new Deno.Command("git", {
    args: [
      "archive",
      "--format=tar",
      commit,
      "supabase/functions",
      "local",
      "deno.json",
      "import_map.json",
      "deno.lock",
      "package.json",
    ],
    cwd: ROOT,
    stdout: "piped",
  }).spawn();
  const tar = new Deno.Command("tar", { args: ["-x", "-C", dir], stdin: "piped" }).spawn();
  await archive.stdout.pipeTo(tar.stdin);
  assert.ok((await archive.status).success && (await tar.status).success, "git archive | tar");
  await Deno.symlink(await Deno.realPath(new URL("node_modules", ROOT)), `${dir}/node_modules`);
  return dir;
}

/** The previous release's functions over HTTP (its own local/functions/serve.ts). */
async function servePrevious(dir: string, env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "local/functions/serve.ts", "--port", "0"],
    cwd: dir,
    env: { ...Deno.env.toObject(), ...env },
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
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
    await pumps;
  };
  try {
    const url = await waitFor("the previous release's functions to listen", () => {
      for (const line of output) {
        if (!line.includes('"functions_listening"')) continue;
        return String(JSON.parse(line).url).replace(/\/$/, "");
      }
      return null;
    }, { timeoutMs: 60_000 });
    return { url, output, stop };
  } catch (error) {
    await stop();
    throw new Error(`${error}\n${output.slice(0, 50).join("\n")}`);
  }
}

Deno.test("the previous release's functions refresh against the new SQL and lose no pair", async (t) => {
  const dir = await unpack(await previousRelease());
  const stack = await startRefreshStack();
  const previous = await servePrevious(dir, stack.env);
  try {
    const { db, sandbox } = stack;
    const refreshWith = async (url: string, mall: string) => {
      const response = await fetch(`${url}/cafe24-refresh?mall_id=${mall}&force=true`, {
        method: "POST",
        headers: { "x-cron-secret": CRON_SECRET },
      });
      assert.equal(response.status, 200);
      return await response.json();
    };
    const privateRow = async (id: string) =>
      (await db.sql<{
        refresh_token: string | null;
        access_token: string | null;
        token_version: string;
        status: string;
        consecutive_failures: number;
        providers: Record<string, unknown>;
      }[]>`
        select c.refresh_token, c.access_token, c.token_version, c.status,
          c.consecutive_failures, s.providers -> 'cafe24' as providers
        from cafe24_private.connections c join public.auth_settings s on s.id = c.auth_settings_id
        where c.auth_settings_id = ${id}`)[0]!;

    const { id } = await connectMall(stack, "shopupgrade");

    await t.step(
      "a refresh by the previous release stores the new pair in the private row",
      async () => {
        const before = await privateRow(id);
        const summary = await refreshWith(previous.url, "shopupgrade");
        assert.equal(summary.refreshed, 1, JSON.stringify(summary));
        const after = await privateRow(id);
        assert.equal(after.refresh_token, sandbox.liveRefreshToken("shopupgrade"));
        assert.notEqual(after.refresh_token, before.refresh_token);
        assert.equal(Number(after.token_version), Number(before.token_version) + 1);
        assert.equal(after.providers.refresh_token, undefined, "no token in providers");
        assert.equal(after.providers.access_token, undefined, "no token in providers");
      },
    );

    await t.step("a failure recorded by the previous release keeps the pair", async () => {
      const before = await privateRow(id);
      sandbox.queueFaults("shopupgrade", ["server_error"]);
      const summary = await refreshWith(previous.url, "shopupgrade");
      assert.equal(summary.failed, 1, JSON.stringify(summary));
      const after = await privateRow(id);
      assert.equal(after.consecutive_failures, 1, "recorded, not taken for already_rotated");
      assert.equal(after.refresh_token, before.refresh_token);
      assert.equal(after.token_version, before.token_version);
      await db.sql`
        update cafe24_private.connections set next_attempt_at = null
        where auth_settings_id = ${id}`;
    });

    await t.step("the new release refreshes the pair the previous one stored", async () => {
      const summary = await refreshWith(stack.functions.url, "shopupgrade");
      assert.equal(summary.refreshed, 1, JSON.stringify(summary));
      const after = await privateRow(id);
      // The new release stores the pair sealed (from then on there is no going back: the
      // previous release cannot read it; docs/upgrading.md).
      assert.match(String(after.refresh_token), /^v1\./);
      assert.equal(
        await openStored(db, id, "refresh_token", after.refresh_token!),
        sandbox.liveRefreshToken("shopupgrade"),
      );
      assert.equal(after.consecutive_failures, 0);
      const counters = sandbox.counters();
      assert.equal(counters.deadTokenReuses, 0);
      assert.equal(counters.concurrentRefreshViolations, 0);
    });
  } finally {
    await previous.stop();
    await stack.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("applying every migration again keeps each pair in its private row", async () => {
  const db = await startTestDatabase();
  try {
    const id = await insertConnection(db, {
      mallId: "shopagain",
      refreshToken: "rt-again",
      accessToken: "at-again",
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      extra: { shop_no: 2 },
    });
    const state = async () =>
      (await db.sql`
        select c.row_state, c.status, c.mall_id, c.refresh_token, c.access_token, c.token_version,
          s.providers -> 'cafe24' as cafe24
        from cafe24_private.connections c join public.auth_settings s on s.id = c.auth_settings_id
        where c.auth_settings_id = ${id}`)[0]!;
    const before = await state();
    assert.equal(before.row_state, "ok");
    assert.deepEqual(before.cafe24, { mall_id: "shopagain", shop_no: 2 });

    // In order, as `supabase db push` applies them.
    const names: string[] = [];
    for await (const entry of Deno.readDir(new URL("supabase/migrations/", ROOT))) {
      if (entry.name.endsWith(".sql")) names.push(entry.name);
    }
    for (const name of names.sort()) {
      await db.sql.unsafe(await Deno.readTextFile(new URL(`supabase/migrations/${name}`, ROOT)))
        .simple();
    }
    const after = await state();
    assert.deepEqual(
      { ...after },
      { ...before },
      "the same pair, version, state and providers after the migrations ran again",
    );
  } finally {
    await db.stop();
  }
});
