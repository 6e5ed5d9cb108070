/**
 * Deno reads package.json and so also resolves the npm toolchain listed there (npm:deno,
 * npm:supabase) into its own cache, where it cannot run lifecycle scripts and warns on the first
 * run about each package that has one. Those scripts only serve npm's node_modules (npm:deno's
 * postinstall links its binary for `npm ci`); Deno never needs them, so deno.json denies them,
 * which also silences the warning. Every such package must be listed.
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);
const LIFECYCLE = ["preinstall", "install", "postinstall"];

Deno.test("deno.json denies the lifecycle scripts of every npm dev dependency that has one", async () => {
  const pkg = JSON.parse(await Deno.readTextFile(new URL("package.json", root)));
  const deno = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const denied: string[] = deno.allowScripts?.deny ?? [];
  const withScripts: string[] = [];
  for (const name of Object.keys(pkg.devDependencies ?? {})) {
    const manifest = JSON.parse(
      await Deno.readTextFile(new URL(`node_modules/${name}/package.json`, root)),
    );
    if (LIFECYCLE.some((script) => script in (manifest.scripts ?? {}))) withScripts.push(name);
  }
  assert.ok(withScripts.includes("deno"), "npm:deno has a postinstall script");
  assert.deepEqual(withScripts.filter((name) => !denied.includes(`npm:${name}`)), []);
  assert.equal(deno.nodeModulesDir, "none", "npm's node_modules is npm's, not Deno's");
  // npm, for its part, runs them (npm:deno links its binary) and says so in package.json,
  // which keeps newer npm versions from warning about scripts nobody reviewed.
  assert.deepEqual(Object.keys(pkg.allowScripts ?? {}).sort(), withScripts.sort());
});
