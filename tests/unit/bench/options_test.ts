import assert from "node:assert/strict";
import { benchCommand } from "../../../bench/options.ts";

Deno.test("the bench's command line is printed as it can be run again", () => {
  const saved = Deno.env.get("npm_lifecycle_event");
  try {
    Deno.env.delete("npm_lifecycle_event");
    assert.equal(
      benchCommand(["--scale", "--push-malls", "", "--out", "bench/SCALE SHARED.md"]),
      "deno run --allow-all bench/refresh_bench.ts --scale --push-malls '' --out " +
        "'bench/SCALE SHARED.md'",
    );
    assert.equal(
      benchCommand(["--sizes", "it's"]),
      `deno run --allow-all bench/refresh_bench.ts --sizes 'it'\\''s'`,
    );
    Deno.env.set("npm_lifecycle_event", "bench");
    assert.equal(benchCommand([]), "npm run bench");
    assert.equal(benchCommand(["--sizes", "1000"]), "npm run bench -- --sizes 1000");
  } finally {
    if (saved === undefined) Deno.env.delete("npm_lifecycle_event");
    else Deno.env.set("npm_lifecycle_event", saved);
  }
});
