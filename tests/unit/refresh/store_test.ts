import assert from "node:assert/strict";
import { censusFromRows } from "../../../supabase/functions/_shared/refresh/store.ts";
import { CENSUS_VERDICTS } from "../../../supabase/functions/_shared/refresh/skip_reasons.ts";

Deno.test("censusFromRows(): every verdict present, absent ones zero, scanned their sum", () => {
  const census = censusFromRows([
    { verdict: "due", connections: "7" },
    { verdict: "not_due", connections: 5 },
    { verdict: "malformed", connections: "1" },
  ]);
  assert.deepEqual(Object.keys(census).sort(), ["scanned", ...CENSUS_VERDICTS].sort());
  assert.equal(census.due, 7);
  assert.equal(census.not_due, 5);
  assert.equal(census.malformed, 1);
  assert.equal(census.leased, 0);
  assert.equal(census.scanned, 13);
});

Deno.test("censusFromRows(): a verdict the code does not know is an error, not a lost count", () => {
  assert.throws(
    () => censusFromRows([{ verdict: "quarantined", connections: "1" }]),
    /unknown verdict "quarantined"/,
  );
});
