import assert from "node:assert/strict";
import { parseConnectionTarget } from "../../../supabase/functions/_shared/connect/target.ts";
import { RequestError } from "../../../supabase/functions/_shared/platform/errors.ts";

const ID = "0b6a3c5e-8a7d-4c1e-9f2b-3d4e5f6a7b8c";

Deno.test("parseConnectionTarget() takes an auth_settings id or a mall id", () => {
  assert.deepEqual(parseConnectionTarget({ auth_settings_id: ID }), {
    authSettingsId: ID,
    mallId: null,
  });
  assert.deepEqual(parseConnectionTarget({ auth_settings_id: ID.toUpperCase() }), {
    authSettingsId: ID,
    mallId: null,
  });
  assert.deepEqual(parseConnectionTarget({ mall_id: "myshop" }), {
    authSettingsId: null,
    mallId: "myshop",
  });
});

Deno.test("parseConnectionTarget() wants exactly one, well-formed", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{}, "INVALID_REQUEST"],
    [{ auth_settings_id: ID, mall_id: "myshop" }, "INVALID_REQUEST"],
    [{ auth_settings_id: "not-a-uuid" }, "INVALID_REQUEST"],
    [{ auth_settings_id: `${ID} ` }, "INVALID_REQUEST"],
    [{ auth_settings_id: null }, "INVALID_REQUEST"],
    [{ auth_settings_id: 7 }, "INVALID_REQUEST"],
    [{ mall_id: "My Shop" }, "INVALID_MALL_ID"],
    [{ mall_id: "evil.example/x#" }, "INVALID_MALL_ID"],
    [{ mall_id: ["myshop"] }, "INVALID_MALL_ID"],
  ];
  for (const [parameters, code] of cases) {
    assert.throws(
      () => parseConnectionTarget(parameters),
      (error: unknown) => error instanceof RequestError && error.code === code,
      JSON.stringify(parameters),
    );
  }
});
