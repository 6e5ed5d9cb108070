/**
 * STAND-IN for the part of Supabase Auth the functions use: a signing key whose public half is
 * published as a JWKS at `{SUPABASE_URL}/auth/v1/.well-known/jwks.json`, and user access tokens
 * shaped like Supabase's (ES256 with a `kid`, `sub`, `role: authenticated`, `aud`, `exp`), so that
 * the functions' real JWT verification runs. The key lives in memory: tokens die with the stack.
 */

export interface LocalAuth {
  /** `{ keys: [public JWK] }` */
  jwks: { keys: JsonWebKey[] };
  /** A user access token for `userId`, valid for `ttlSeconds`. */
  mintUserToken(user: { id: string; email: string }, ttlSeconds?: number): Promise<string>;
}

function base64url(bytes: Uint8Array | string): string {
  const raw = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  let binary = "";
  for (const byte of raw) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export async function createLocalAuth(supabaseUrl: string): Promise<LocalAuth> {
  const pair = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const kid = crypto.randomUUID();
  const publicJwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const jwk: JsonWebKey & { kid: string } = {
    kty: publicJwk.kty!,
    crv: publicJwk.crv!,
    x: publicJwk.x!,
    y: publicJwk.y!,
    alg: "ES256",
    use: "sig",
    key_ops: ["verify"],
    ext: true,
    kid,
  };
  const issuer = `${supabaseUrl.replace(/\/$/, "")}/auth/v1`;
  return {
    jwks: { keys: [jwk] },
    async mintUserToken(user, ttlSeconds = 24 * 3600) {
      const now = Math.floor(Date.now() / 1000);
      const header = { alg: "ES256", kid, typ: "JWT" };
      const payload = {
        iss: issuer,
        sub: user.id,
        aud: "authenticated",
        exp: now + ttlSeconds,
        iat: now,
        email: user.email,
        phone: "",
        app_metadata: { provider: "email", providers: ["email"] },
        user_metadata: {},
        role: "authenticated",
        aal: "aal1",
        amr: [{ method: "password", timestamp: now }],
        session_id: crypto.randomUUID(),
        is_anonymous: false,
      };
      const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
      const signature = await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        pair.privateKey,
        new TextEncoder().encode(input),
      );
      return `${input}.${base64url(new Uint8Array(signature))}`;
    },
  };
}
