/**
 * The local stack's token key ring (local/stack/token_ring.ts): made once per data dir with mode
 * 0600, reused by later starts, never replaced when unusable, removed by --reset; a ring from
 * .env or the shell wins. Test stacks get a fresh ring each (sandboxFunctionEnv).
 */
import assert from "node:assert/strict";
import { LocalEnv } from "../../../local/stack/local_env.ts";
import {
  applyTokenRing,
  loadOrCreateTokenRing,
  newTokenRing,
  removeTokenRing,
  tokenRingPath,
} from "../../../local/stack/token_ring.ts";
import { sandboxFunctionEnv } from "../../../local/functions/server.ts";
import { parseKeyRing } from "../../../supabase/functions/_shared/platform/token_crypto.ts";

const APP = { clientId: "id", clientSecret: "secret", cronSecret: "c".repeat(32) };
const SANDBOX = { baseUrlTemplate: "http://127.0.0.1:1/{mall_id}" };

async function withDataDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "token-ring-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the first start makes a valid ring with mode 0600; later starts reuse it", async () => {
  await withDataDir(async (dir) => {
    const first = new LocalEnv({}, {});
    assert.equal(await applyTokenRing(first, dir), "created");
    const info = await Deno.stat(tokenRingPath(dir));
    assert.equal((info.mode ?? 0) & 0o777, 0o600);
    const ring = await parseKeyRing(
      first.get("CAFE24_TOKEN_KEYS"),
      first.get("CAFE24_TOKEN_KEY_ID"),
    );
    assert.deepEqual(ring.problems, []);
    assert.match(ring.active!, /^local\d{8}$/);
    assert.equal(first.generated.length, 0, "not a per-session value");

    await Deno.chmod(tokenRingPath(dir), 0o644);
    const second = new LocalEnv({}, {});
    assert.equal(await applyTokenRing(second, dir), "kept");
    assert.equal(second.get("CAFE24_TOKEN_KEYS"), first.get("CAFE24_TOKEN_KEYS"));
    assert.equal(second.get("CAFE24_TOKEN_KEY_ID"), first.get("CAFE24_TOKEN_KEY_ID"));
    const again = await Deno.stat(tokenRingPath(dir));
    assert.equal((again.mode ?? 0) & 0o777, 0o600, "a loosened mode is tightened again");
  });
});

Deno.test("a ring in .env or the shell wins, and no file is made", async () => {
  await withDataDir(async (dir) => {
    const mine = newTokenRing("mine");
    const fromFile = new LocalEnv({ ...mine }, {});
    assert.equal(await applyTokenRing(fromFile, dir), "env");
    assert.equal(fromFile.get("CAFE24_TOKEN_KEYS"), mine.CAFE24_TOKEN_KEYS);
    assert.equal(fromFile.get("CAFE24_TOKEN_KEY_ID"), "mine");
    await assert.rejects(Deno.stat(tokenRingPath(dir)), Deno.errors.NotFound);

    // Even once the data dir has a ring of its own.
    await loadOrCreateTokenRing(dir);
    const fromShell = new LocalEnv({}, { CAFE24_TOKEN_KEY_ID: "mine" });
    assert.equal(await applyTokenRing(fromShell, dir), "env");
    assert.equal(fromShell.get("CAFE24_TOKEN_KEYS"), undefined, "the pair is the user's");
  });
});

Deno.test("--reset removes the ring; the next start makes a new one", async () => {
  await withDataDir(async (dir) => {
    const { ring: before } = await loadOrCreateTokenRing(dir);
    await removeTokenRing(dir);
    await assert.rejects(Deno.stat(tokenRingPath(dir)), Deno.errors.NotFound);
    await removeTokenRing(dir); // nothing left to remove: fine
    const { ring: after, created } = await loadOrCreateTokenRing(dir);
    assert.ok(created);
    assert.notEqual(after.CAFE24_TOKEN_KEYS, before.CAFE24_TOKEN_KEYS);
  });
});

Deno.test("an unusable ring file is an error naming the way out, never replaced", async () => {
  await withDataDir(async (dir) => {
    const path = tokenRingPath(dir);
    for (const text of ["{not json", JSON.stringify({ CAFE24_TOKEN_KEYS: "{}" })]) {
      await Deno.writeTextFile(path, text);
      await assert.rejects(
        loadOrCreateTokenRing(dir),
        /restore it from a copy, or start with --reset/,
      );
      assert.equal(await Deno.readTextFile(path), text);
    }
  });
});

Deno.test("test and benchmark stacks get a fresh ring each, or the one they are given", async () => {
  const a = sandboxFunctionEnv("postgresql://a", SANDBOX, APP);
  const b = sandboxFunctionEnv("postgresql://a", SANDBOX, APP);
  assert.notEqual(a.CAFE24_TOKEN_KEYS, b.CAFE24_TOKEN_KEYS);
  const ring = await parseKeyRing(a.CAFE24_TOKEN_KEYS, a.CAFE24_TOKEN_KEY_ID);
  assert.deepEqual(ring.problems, []);
  const given = newTokenRing("bench1");
  const c = sandboxFunctionEnv("postgresql://a", SANDBOX, { ...APP, tokenRing: given });
  assert.equal(c.CAFE24_TOKEN_KEYS, given.CAFE24_TOKEN_KEYS);
  assert.equal(c.CAFE24_TOKEN_KEY_ID, "bench1");
});
