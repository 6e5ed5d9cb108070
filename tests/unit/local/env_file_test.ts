import assert from "node:assert/strict";
import { EnvFileError, parseEnvFile, readEnvFile } from "../../../local/stack/env_file.ts";

Deno.test("parseEnvFile() reads KEY=value lines, skipping blanks and comments", () => {
  assert.deepEqual(
    parseEnvFile("# comment\n\nA=1\n  B = two words  \nexport C=3\r\nD=\n"),
    { A: "1", B: "two words", C: "3", D: "" },
  );
});

Deno.test("parseEnvFile() strips a ' #' comment after an unquoted value, not a '#' inside it", () => {
  assert.deepEqual(parseEnvFile("A=x # note\nB=a#b\nC=https://h/p#frag"), {
    A: "x",
    B: "a#b",
    C: "https://h/p#frag",
  });
});

Deno.test("parseEnvFile() keeps single-quoted values literal and unescapes double-quoted ones", () => {
  const text = [
    String.raw`A='x # not a comment \n'`,
    String.raw`B="line\nnext \"q\"" # comment`,
    `C='{"a":1}'`,
  ].join("\n");
  assert.deepEqual(parseEnvFile(text), {
    A: String.raw`x # not a comment \n`,
    B: 'line\nnext "q"',
    C: '{"a":1}',
  });
});

Deno.test("parseEnvFile() lets a quoted value span lines", () => {
  assert.deepEqual(parseEnvFile('KEY="-----BEGIN\nabc\n-----END"\nNEXT=1'), {
    KEY: "-----BEGIN\nabc\n-----END",
    NEXT: "1",
  });
});

Deno.test("parseEnvFile() throws EnvFileError with the line number for broken lines", () => {
  assert.throws(
    () => parseEnvFile("A=1\nnot a pair"),
    (e: unknown) => e instanceof EnvFileError && e.line === 2,
  );
  assert.throws(() => parseEnvFile("1A=x"), EnvFileError);
  assert.throws(() => parseEnvFile('A="open'), /unterminated/);
  assert.throws(() => parseEnvFile("A='x' y"), /after the closing quote/);
});

Deno.test("readEnvFile() treats a missing optional file as empty and a missing required one as an error", async () => {
  const missing = `${await Deno.makeTempDir()}/nope.env`;
  assert.deepEqual(await readEnvFile(missing), {});
  await assert.rejects(() => readEnvFile(missing, { required: true }), Deno.errors.NotFound);
});
