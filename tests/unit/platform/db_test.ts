import assert from "node:assert/strict";
import {
  closeDatabases,
  database,
  DEFAULT_POOL_SIZE,
} from "../../../supabase/functions/_shared/platform/db.ts";

// postgres.js connects on the first query only: no database is needed to see which pool is which.
const URL_A = "postgresql://user:password@127.0.0.1:1/a";
const URL_B = "postgresql://user:password@127.0.0.1:1/b";

Deno.test("database() gives each URL and pool size its own pool", async () => {
  try {
    const small = database(URL_A, 3);
    assert.equal(database(URL_A, 3), small, "the same URL and size share one pool");
    assert.equal(small.options.max, 3);
    const large = database(URL_A, 18);
    assert.notEqual(large, small, "a larger size is not given the smaller pool");
    assert.equal(large.options.max, 18);
    assert.equal(database(URL_A).options.max, DEFAULT_POOL_SIZE);
    assert.equal(database(URL_A), database(URL_A, DEFAULT_POOL_SIZE));
    assert.notEqual(database(URL_B, 3), small, "another URL, another pool");
  } finally {
    await closeDatabases();
  }
});

Deno.test("database() refuses a pool size that is not a positive integer", () => {
  for (const size of [0, -1, 2.5, Number.NaN]) {
    assert.throws(() => database(URL_A, size), RangeError, String(size));
  }
});

Deno.test("closeDatabases() forgets the pools it ended", async () => {
  const before = database(URL_A, 4);
  await closeDatabases();
  try {
    assert.notEqual(database(URL_A, 4), before);
  } finally {
    await closeDatabases();
  }
});
