/**
 * A stand-in for the JWKS side of Supabase Auth, for tests: an ES256 signing key made with
 * WebCrypto, user access tokens shaped like Supabase's (kid, sub, role, aud, exp, …), and a local
 * HTTP server answering `GET {url}/auth/v1/.well-known/jwks.json`. Its `url` becomes SUPABASE_URL
 * of the functions, so their real verification code (supabase-js getClaims) runs against it.
 *
 * It also mints what must be refused: expired tokens, tokens signed by another key (with this
 * key's kid or an unknown one), HS256 tokens, `alg: none`. Every request the server gets is in
 * `requests`: nothing but the JWKS should ever be asked for.
 *
 *   const auth = await startTestAuth();
 *   try { const jwt = await auth.mint({ sub: crypto.randomUUID() }); … } finally { await auth.close(); }
 */

export interface TokenOptions {
  sub: string;
  role?: string;
  aud?: string | string[];
  /** Seconds from now until `exp`; negative for an expired token. Default 3600. */
  expiresInSeconds?: number;
  /** Header `kid`; default the server's key id. null leaves it out. */
  kid?: string | null;
  extraClaims?: Record<string, unknown>;
}

export interface TestAuth {
  /** The project URL to use as SUPABASE_URL, e.g. http://127.0.0.1:40123 */
  url: string;
  /** A stand-in for SUPABASE_ANON_KEY (sent as apikey; never checked here). */
  anonKey: string;
  kid: string;
  /** `METHOD /path` of every request the server received. */
  requests: string[];
  /** An ES256 access token signed with the published key. */
  mint(options: TokenOptions): Promise<string>;
  /** Signed with a key that is not in the JWKS (same kid unless options say otherwise). */
  mintWithWrongKey(options: TokenOptions): Promise<string>;
  /** HS256 with a shared secret, as projects on the legacy JWT secret issue them. */
  mintHs256(options: TokenOptions): Promise<string>;
  /** `alg: none`, no signature. */
  mintUnsigned(options: TokenOptions): string;
  close(): Promise<void>;
}

const JWKS_PATH = "/auth/v1/.well-known/jwks.json";
const EC_PARAMS = { name: "ECDSA", namedCurve: "P-256" } as const;
const ES256 = { name: "ECDSA", hash: "SHA-256" } as const;

export async function startTestAuth(): Promise<TestAuth> {
  const kid = crypto.randomUUID();
  const keys = await crypto.subtle.generateKey(EC_PARAMS, true, ["sign", "verify"]);
  const otherKeys = await crypto.subtle.generateKey(EC_PARAMS, true, ["sign", "verify"]);
  const publicJwk = await crypto.subtle.exportKey("jwk", keys.publicKey);
  const jwks = {
    keys: [{
      kty: publicJwk.kty,
      crv: publicJwk.crv,
      x: publicJwk.x,
      y: publicJwk.y,
      kid,
      alg: "ES256",
      use: "sig",
      key_ops: ["verify"],
      ext: true,
    }],
  };
  const hsSecret = crypto.getRandomValues(new Uint8Array(32));
  const hsKey = await crypto.subtle.importKey(
    "raw",
    hsSecret,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );

  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    requests.push(`${request.method} ${path}`);
    if (request.method === "GET" && path === JWKS_PATH) return Response.json(jwks);
    return Response.json({ code: 404, msg: "not served by the test stand-in" }, { status: 404 });
  });
  const url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;

  const claims = (options: TokenOptions) => {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: `${url}/auth/v1`,
      sub: options.sub,
      aud: options.aud ?? "authenticated",
      exp: now + (options.expiresInSeconds ?? 3600),
      iat: now - 10,
      role: options.role ?? "authenticated",
      aal: "aal1",
      amr: [{ method: "password", timestamp: now - 10 }],
      session_id: crypto.randomUUID(),
      is_anonymous: false,
      email: `${options.sub.slice(0, 8)}@example.test`,
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: {},
      ...options.extraClaims,
    };
  };
  const header = (alg: string, options: TokenOptions) => {
    const keyId = options.kid === undefined ? kid : options.kid;
    return { alg, typ: "JWT", ...(keyId === null ? {} : { kid: keyId }) };
  };
  const signWith = async (
    alg: string,
    sign: (data: Uint8Array<ArrayBuffer>) => Promise<ArrayBuffer>,
    options: TokenOptions,
  ) => {
    const input = `${encodeJson(header(alg, options))}.${encodeJson(claims(options))}`;
    const signature = await sign(new TextEncoder().encode(input));
    return `${input}.${base64url(new Uint8Array(signature))}`;
  };

  return {
    url,
    anonKey: "test-anon-key",
    kid,
    requests,
    mint: (options) =>
      signWith("ES256", (data) => crypto.subtle.sign(ES256, keys.privateKey, data), options),
    mintWithWrongKey: (options) =>
      signWith("ES256", (data) => crypto.subtle.sign(ES256, otherKeys.privateKey, data), options),
    mintHs256: (options) =>
      signWith("HS256", (data) => crypto.subtle.sign("HMAC", hsKey, data), {
        kid: null,
        ...options,
      }),
    mintUnsigned: (options) =>
      `${encodeJson(header("none", { kid: null, ...options }))}.${encodeJson(claims(options))}.`,
    close: () => server.shutdown(),
  };
}

function encodeJson(value: unknown): string {
  return base64url(new TextEncoder().encode(JSON.stringify(value)));
}

export function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
