/**
 * The Auth stand-in (local/supabase/auth_stand_in.ts) on its own server, for tests, plus the
 * tokens it must refuse: signed by another key (with the published kid or an unknown one), HS256
 * as projects on the legacy JWT secret issue them, and `alg: none`.
 *
 *   const auth = await startTestAuth();
 *   try { const jwt = await auth.mint({ sub: crypto.randomUUID() }); … } finally { await auth.close(); }
 */
import {
  type AuthStandIn,
  es256Signer,
  signedToken,
  startAuthStandIn,
  type TokenOptions,
} from "../../local/supabase/auth_stand_in.ts";

export { base64url } from "../../supabase/functions/_shared/platform/base64url.ts";
export type { TokenOptions };

export interface TestAuth extends AuthStandIn {
  /** A stand-in for SUPABASE_ANON_KEY (sent as apikey; never checked here). */
  anonKey: string;
  /** Signed with a key that is not in the JWKS (same kid unless options say otherwise). */
  mintWithWrongKey(options: TokenOptions): Promise<string>;
  /** HS256 with a shared secret; no kid unless options give one. */
  mintHs256(options: TokenOptions): Promise<string>;
  /** `alg: none`, no signature; no kid unless options give one. */
  mintUnsigned(options: TokenOptions): string;
}

export async function startTestAuth(): Promise<TestAuth> {
  const auth = await startAuthStandIn();
  try {
    const otherKey = await es256Signer();
    const hsKey = await crypto.subtle.importKey(
      "raw",
      crypto.getRandomValues(new Uint8Array(32)),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    return {
      ...auth,
      anonKey: "test-anon-key",
      mintWithWrongKey: (options) =>
        signedToken(auth.unsignedToken("ES256", options), otherKey.sign),
      mintHs256: (options) =>
        signedToken(
          auth.unsignedToken("HS256", { kid: null, ...options }),
          (data) => crypto.subtle.sign("HMAC", hsKey, data),
        ),
      mintUnsigned: (options) => `${auth.unsignedToken("none", { kid: null, ...options })}.`,
    };
  } catch (error) {
    await auth.close();
    throw error;
  }
}
