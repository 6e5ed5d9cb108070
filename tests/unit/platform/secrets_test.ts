import assert from "node:assert/strict";
import { bearerToken, secretsMatch } from "../../../supabase/functions/_shared/platform/secrets.ts";

function withAuthorization(value?: string): Request {
  const headers = new Headers();
  if (value !== undefined) headers.set("Authorization", value);
  return new Request("https://functions.example/cafe24-refresh", { headers });
}

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

Deno.test("bearerToken() returns the token of a Bearer header", () => {
  assert.equal(bearerToken(withAuthorization("Bearer abc.def-ghi_jkl")), "abc.def-ghi_jkl");
});

Deno.test("bearerToken() reads the scheme case-insensitively", () => {
  for (const scheme of ["bearer", "BEARER", "BeArEr"]) {
    assert.equal(bearerToken(withAuthorization(`${scheme} tok3n`)), "tok3n", scheme);
  }
});

Deno.test("bearerToken() allows extra whitespace around the token", () => {
  assert.equal(bearerToken(withAuthorization("Bearer    tok3n")), "tok3n");
  assert.equal(bearerToken(withAuthorization("Bearer\ttok3n")), "tok3n");
  assert.equal(bearerToken(withAuthorization("  Bearer tok3n  ")), "tok3n");
});

Deno.test("bearerToken() returns null without an Authorization header", () => {
  assert.equal(bearerToken(withAuthorization()), null);
});

Deno.test("bearerToken() returns null for malformed or foreign headers", () => {
  const malformed = [
    "",
    "Bearer",
    "Bearer ",
    "Bearertok3n",
    "Bearer tok3n extra",
    "Basic bXlfY2xpZW50X2lkOm15X3NlY3JldF9rZXk=",
    "Token tok3n",
    "tok3n",
    "Bearer: tok3n",
  ];
  for (const value of malformed) {
    assert.equal(bearerToken(withAuthorization(value)), null, JSON.stringify(value));
  }
});
