import assert from "node:assert/strict";
import { scopesNotRequested } from "../../../supabase/functions/_shared/cafe24/scopes.ts";

Deno.test("scopesNotRequested() accepts the read scope of a requested write scope, nothing else", () => {
  const requested = ["mall.read_store", "mall.write_product"];
  assert.deepEqual(scopesNotRequested(["mall.read_store", "mall.write_product"], requested), []);
  assert.deepEqual(
    scopesNotRequested(["mall.read_store", "mall.write_product", "mall.read_product"], requested),
    [],
    "Cafe24 may list mall.read_X with a requested mall.write_X: less than the owner approved",
  );
  assert.deepEqual(
    scopesNotRequested(["mall.read_store", "mall.read_order"], requested),
    ["mall.read_order"],
  );
  assert.deepEqual(
    scopesNotRequested(["mall.write_store"], requested),
    ["mall.write_store"],
    "a write scope for a requested read scope widens the grant",
  );
});
