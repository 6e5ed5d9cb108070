/**
 * The functions' environment in the local stack: the .env file, under the shell's environment
 * (dotenv semantics: a variable already set wins), under what the stack itself must decide
 * (`force`: its database, its URL, its sandbox) and over what it only fills in when missing
 * (`fallback`: generated secrets, local redirect URI). It remembers which names it generated or
 * replaced, to say so; it never prints values.
 */

export const REAL_CAFE24_BASE_URL = "https://{mall_id}.cafe24api.com";

export class LocalEnv {
  readonly values: Record<string, string>;
  /** Names filled in with a value generated for this session. */
  readonly generated: string[] = [];
  /** Names set in .env or the shell that the stack replaced with its own value. */
  readonly replaced: string[] = [];

  constructor(fileEnv: Record<string, string>, shellEnv: Record<string, string>) {
    this.values = { ...fileEnv, ...shellEnv };
  }

  /** Set and not empty (empty counts as unset, as in loadConfig). */
  has(name: string): boolean {
    return (this.values[name] ?? "") !== "";
  }

  get(name: string): string | undefined {
    return this.has(name) ? this.values[name] : undefined;
  }

  /**
   * Real Cafe24 credentials: a client id and secret, and no base URL other than the real one.
   * Anything else runs against the local sandbox.
   */
  get usesRealCafe24(): boolean {
    return this.has("CAFE24_CLIENT_ID") && this.has("CAFE24_CLIENT_SECRET_KEY") &&
      (!this.has("CAFE24_API_BASE_URL") ||
        this.values.CAFE24_API_BASE_URL === REAL_CAFE24_BASE_URL);
  }

  force(name: string, value: string): void {
    if (this.has(name) && this.values[name] !== value && !this.replaced.includes(name)) {
      this.replaced.push(name);
    }
    this.values[name] = value;
  }

  /** Sets `name` when unset; `generated` marks a value made up for this session. */
  fallback(name: string, value: string, options: { generated?: boolean } = {}): void {
    if (this.has(name)) return;
    this.values[name] = value;
    if (options.generated) this.generated.push(name);
  }
}

/** 32 random bytes, base64url: a fresh local secret. */
export function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
