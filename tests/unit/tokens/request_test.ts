/** cafe24-token's parameters: which connection, and for how long its token must stay valid. */
import assert from "node:assert/strict";
import {
  MIN_VALID_S_DEFAULT,
  MIN_VALID_S_MAX,
  parseTokenRequest,
} from "../../../supabase/functions/_shared/tokens/request.ts";
import { RequestError } from "../../../supabase/functions/_shared/platform/errors.ts";

const ID = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";

Deno.test("parseTokenRequest names one connection; min_valid_s defaults to 300", () => {
  assert.deepEqual(parseTokenRequest({ mall_id: "myshop" }), {
    authSettingsId: null,
    mallId: "myshop",
    minValidS: MIN_VALID_S_DEFAULT,
  });
  assert.deepEqual(parseTokenRequest({ auth_settings_id: ID.toUpperCase(), min_valid_s: "0" }), {
    authSettingsId: ID,
    mallId: null,
    minValidS: 0,
  });
  assert.equal(parseTokenRequest({ mall_id: "myshop", min_valid_s: 5400 }).minValidS, 5400);
  assert.equal(MIN_VALID_S_MAX, 5400);
});

Deno.test("parseTokenRequest refuses what it cannot honour", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{}, "INVALID_REQUEST"],
    [{ mall_id: "myshop", auth_settings_id: ID }, "INVALID_REQUEST"],
    [{ auth_settings_id: "not-a-uuid" }, "INVALID_REQUEST"],
    [{ mall_id: "My-Shop" }, "INVALID_MALL_ID"],
    [{ mall_id: "myshop", min_valid_s: "5401" }, "INVALID_REQUEST"],
    [{ mall_id: "myshop", min_valid_s: -1 }, "INVALID_REQUEST"],
    [{ mall_id: "myshop", min_valid_s: 1.5 }, "INVALID_REQUEST"],
    [{ mall_id: "myshop", min_valid_s: "1e3" }, "INVALID_REQUEST"],
    [{ mall_id: "myshop", min_valid_s: " 30" }, "INVALID_REQUEST"],
    [{ mall_id: "myshop", min_valid_s: "" }, "INVALID_REQUEST"],
    [{ mall_id: "myshop", min_valid_s: true }, "INVALID_REQUEST"],
  ];
  for (const [parameters, code] of cases) {
    assert.throws(
      () => parseTokenRequest(parameters),
      (error: unknown) => error instanceof RequestError && error.code === code,
      JSON.stringify(parameters),
    );
  }
});
