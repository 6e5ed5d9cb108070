import assert from "node:assert/strict";
import { secretsMatch } from "../../../supabase/functions/_shared/platform/secrets.ts";

Deno.test("secretsMatch() accepts an equal secret", () => {
  assert.equal(secretsMatch("s3cret-value", "s3cret-value"), true);
  assert.equal(secretsMatch("비밀-값", "비밀-값"), true);
});

Deno.test("secretsMatch() rejects an unequal secret of the same length", () => {
  assert.equal(secretsMatch("s3cret-valuf", "s3cret-value"), false);
  assert.equal(secretsMatch("S3cret-value", "s3cret-value"), false);
});

Deno.test("secretsMatch() rejects secrets of different lengths either way", () => {
  assert.equal(secretsMatch("s3cret", "s3cret-value"), false);
  assert.equal(secretsMatch("s3cret-value-and-more", "s3cret-value"), false);
  assert.equal(secretsMatch("s3cret-value ", "s3cret-value"), false);
});

Deno.test("secretsMatch() matches empty with empty only", () => {
  assert.equal(secretsMatch("", ""), true);
  assert.equal(secretsMatch("", "s3cret-value"), false);
  assert.equal(secretsMatch("s3cret-value", ""), false);
});
