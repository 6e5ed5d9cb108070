/**
 * STAND-IN for the part of Supabase Auth the functions use: an ES256 signing key (WebCrypto)
 * whose public half is published as a JWKS at `{SUPABASE_URL}/auth/v1/.well-known/jwks.json`, and
 * user access tokens shaped like Supabase's (`kid`, `sub`, `role: authenticated`, `aud`, `exp`,
 * …), so that the functions' real JWT verification (supabase-js getClaims) runs against it. The
 * key lives in memory: tokens die with the process.
 *
 * `npm start` serves the JWKS through its gateway (local/functions/gateway.ts);
 * `startAuthStandIn()` serves it on a server of its own, for tests, and records every request.
 */
import { base64url } from "../../supabase/functions/_shared/platform/base64url.ts";
import { allowedHosts, misdirected } from "../local_access.ts";

export const JWKS_PATH = "/auth/v1/.well-known/jwks.json";

export interface TokenOptions {
  sub: string;
  /** Default `<first 8 characters of sub>@example.test`. */
  email?: string;
  role?: string;
  aud?: string | string[];
  /** Seconds from now until `exp`; negative for an expired token. Default 3600. */
  expiresInSeconds?: number;
  /** Header `kid`; default the published key's id. null leaves it out. */
  kid?: string | null;
  /** Added to (or, when undefined, removing from) the claims. */
  extraClaims?: Record<string, unknown>;
}

export interface LocalAuth {
  /** `{SUPABASE_URL}/auth/v1`, the tokens' `iss`. */
  issuer: string;
  /** The published key's id. */
  kid: string;
  /** `{ keys: [public JWK] }`, what the JWKS endpoint answers. */
  jwks: { keys: JsonWebKey[] };
  /** A user access token signed with the published key. */
  mint(options: TokenOptions): Promise<string>;
  /** A user access token for `user`, valid for `ttlSeconds` (default 24 h). */
  mintUserToken(user: { id: string; email: string }, ttlSeconds?: number): Promise<string>;
  /**
   * `<header>.<claims>`, both base64url, of a token as `mint` makes it but with header `alg`:
   * what a signature is computed over. For tokens that must be refused (another key, HS256,
   * `alg: none`).
   */
  unsignedToken(alg: string, options: TokenOptions): string;
}

const EC_PARAMS = { name: "ECDSA", namedCurve: "P-256" } as const;
const ES256 = { name: "ECDSA", hash: "SHA-256" } as const;

/** `unsigned` with the signature `sign` computes over it appended. */
export async function signedToken(
  unsigned: string,
  sign: (data: Uint8Array<ArrayBuffer>) => Promise<ArrayBuffer>,
): Promise<string> {
  const signature = await sign(new TextEncoder().encode(unsigned));
  return `${unsigned}.${base64url(new Uint8Array(signature))}`;
}

/** An ES256 signer with a fresh P-256 key, and its public JWK. */
export async function es256Signer(): Promise<{
  publicJwk: JsonWebKey;
  sign: (data: Uint8Array<ArrayBuffer>) => Promise<ArrayBuffer>;
}> {
  const pair = await crypto.subtle.generateKey(EC_PARAMS, true, ["sign", "verify"]);
  return {
    publicJwk: await crypto.subtle.exportKey("jwk", pair.publicKey),
    sign: (data) => crypto.subtle.sign(ES256, pair.privateKey, data),
  };
}

export async function createLocalAuth(supabaseUrl: string): Promise<LocalAuth> {
  const kid = crypto.randomUUID();
  const signer = await es256Signer();
  const jwk: JsonWebKey & { kid: string } = {
    kty: signer.publicJwk.kty!,
    crv: signer.publicJwk.crv!,
    x: signer.publicJwk.x!,
    y: signer.publicJwk.y!,
    alg: "ES256",
    use: "sig",
    key_ops: ["verify"],
    ext: true,
    kid,
  };
  const issuer = `${supabaseUrl.replace(/\/$/, "")}/auth/v1`;

  const unsignedToken = (alg: string, options: TokenOptions) => {
    const keyId = options.kid === undefined ? kid : options.kid;
    const header = { alg, typ: "JWT", ...(keyId === null ? {} : { kid: keyId }) };
    // Issued a few seconds ago, as a token a client has just received.
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: issuer,
      sub: options.sub,
      aud: options.aud ?? "authenticated",
      exp: now + (options.expiresInSeconds ?? 3600),
      iat: now - 10,
      email: options.email ?? `${options.sub.slice(0, 8)}@example.test`,
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: {},
      role: options.role ?? "authenticated",
      aal: "aal1",
      amr: [{ method: "password", timestamp: now - 10 }],
      session_id: crypto.randomUUID(),
      is_anonymous: false,
      ...options.extraClaims,
    };
    return `${encodeJson(header)}.${encodeJson(claims)}`;
  };
  const mint = (options: TokenOptions) => signedToken(unsignedToken("ES256", options), signer.sign);

  return {
    issuer,
    kid,
    jwks: { keys: [jwk] },
    mint,
    mintUserToken: (user, ttlSeconds = 24 * 3600) =>
      mint({ sub: user.id, email: user.email, expiresInSeconds: ttlSeconds }),
    unsignedToken,
  };
}

export interface AuthStandIn extends LocalAuth {
  /** The project URL to use as SUPABASE_URL, e.g. http://127.0.0.1:40123 */
  url: string;
  /** `METHOD /path` of every request the server received: only the JWKS should be asked for. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * The JWKS on a server of its own (127.0.0.1, a free port), answering nothing else, and only to
 * requests addressed to 127.0.0.1:<port> or localhost:<port> (421 otherwise: local_access.ts).
 */
export async function startAuthStandIn(): Promise<AuthStandIn> {
  const requests: string[] = [];
  let jwks: unknown = { keys: [] };
  let hosts: ReadonlySet<string> = new Set();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    requests.push(`${request.method} ${path}`);
    const refused = misdirected(request, hosts);
    if (refused !== null) return refused;
    if (request.method === "GET" && path === JWKS_PATH) return Response.json(jwks);
    return Response.json({ code: 404, msg: "not served by the Auth stand-in" }, { status: 404 });
  });
  const port = (server.addr as Deno.NetAddr).port;
  hosts = allowedHosts(port);
  const url = `http://127.0.0.1:${port}`;
  const auth = await createLocalAuth(url);
  jwks = auth.jwks;
  return { ...auth, url, requests, close: () => server.shutdown() };
}

function encodeJson(value: unknown): string {
  return base64url(new TextEncoder().encode(JSON.stringify(value)));
}
