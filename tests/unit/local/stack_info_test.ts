import assert from "node:assert/strict";
import {
  readStackInfo,
  type StackInfo,
  stackInfoPath,
  writeStackInfo,
} from "../../../local/stack/stack_info.ts";

const INFO: StackInfo = {
  started_at: "2026-12-01T00:00:00.000Z",
  data_dir: "/app/.local",
  postgres_dir: "/app/.local/postgres",
  db_url: "postgresql://postgres:0123abcd@127.0.0.1:54322/postgres",
  supabase_url: "http://127.0.0.1:54321",
  mode: "sandbox",
  cafe24_api_base_url: "http://127.0.0.1:54329/{mall_id}",
  sandbox_url: "http://127.0.0.1:54329",
  cron_secret: "secret",
  control_token: "control-token",
  settings_page_url: "http://127.0.0.1:54330/#key=control-token",
  local_user: null,
  try: ["npm run refresh -- --mall demo10min --force"],
  pids: { start: 1, functions: 2, postgres: 3 },
};

Deno.test("writeStackInfo() writes the stack file readable by its owner only, even over an old one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "stack-info-" });
  try {
    await Deno.writeTextFile(stackInfoPath(dir), "{}", { mode: 0o644 });
    await Deno.chmod(stackInfoPath(dir), 0o644);
    await writeStackInfo(dir, INFO);
    assert.equal((await Deno.stat(stackInfoPath(dir))).mode! & 0o777, 0o600);
    assert.deepEqual(await readStackInfo(dir), INFO);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the stack file, which holds the control token, stays 0600 whatever the umask", async () => {
  const dir = await Deno.makeTempDir({ prefix: "stack-info-" });
  const previous = Deno.umask(0);
  try {
    await writeStackInfo(dir, INFO);
    assert.equal((await Deno.stat(stackInfoPath(dir))).mode! & 0o777, 0o600);
    const text = await Deno.readTextFile(stackInfoPath(dir));
    assert.ok(text.includes(INFO.control_token), "the token is there for local tools to read");
  } finally {
    Deno.umask(previous);
    await Deno.remove(dir, { recursive: true });
  }
});
