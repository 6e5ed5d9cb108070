/**
 * Every token value a test stack's Cafe24 sandbox ever handed out (code exchanges, rotations,
 * issueTokens, a fault's fake body), so a test can assert that none of them reached a place it
 * must not (a webhook body, a log line, an answer). The list comes from the sandbox, not from the
 * database: once the functions store tokens only as ciphertext, the database holds no plaintext
 * to compare with, and a list read from it would make every such assertion pass whatever leaked.
 *
 * Values a test writes into the database itself (insertConnection with a made-up token) are not
 * in it: they were never issued, and the functions cannot tell them from garbage at Cafe24.
 */
import type { Cafe24Sandbox } from "../../local/cafe24_sandbox.ts";

export function recordTokensSeen(
  stack: { sandbox: Pick<Cafe24Sandbox, "issuedTokens"> },
): () => string[] {
  return () => stack.sandbox.issuedTokens();
}
