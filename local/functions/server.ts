/**
 * The functions over real HTTP for tests and the benchmark: local/functions/serve.ts in a child
 * process (the same one `npm start` runs), with its own environment, killable like a real worker.
 * Everything it prints is kept in `output` so tests can assert what the logs do and do not contain.
 */
import { spawnFunctions } from "./process.ts";
import { newTokenRing, type TokenRingEnv } from "../stack/token_ring.ts";

export interface FunctionsServer {
  /** e.g. http://127.0.0.1:40123/functions/v1 */
  url: string;
  pid: number;
  output: string[];
  /** Ends the process (SIGTERM, then SIGKILL after 5 s); idempotent. */
  stop(): Promise<void>;
  /** SIGKILL at once, as a crash would. */
  kill(): Promise<void>;
}

export async function startFunctionsServer(env: Record<string, string>): Promise<FunctionsServer> {
  const output: string[] = [];
  // The parent's environment carries the registry certificate settings deno needs.
  const child = await spawnFunctions(
    { ...Deno.env.toObject(), ...env },
    (line) => output.push(line),
  );
  return {
    url: `${child.origin}/functions/v1`,
    pid: child.pid,
    output,
    stop: () => child.stop(5_000),
    kill: () => child.kill(),
  };
}

/** The app's credentials at the Cafe24 sandbox, and the scheduler's secret. */
export interface SandboxApp {
  clientId: string;
  clientSecret: string;
  cronSecret: string;
  /**
   * The token key ring. A ring belongs to a database (its values decrypt only with it): give the
   * same one to every functions process on the same database. Without it, a fresh one.
   */
  tokenRing?: TokenRingEnv;
}

/**
 * The settings every function needs to run against a local database and the Cafe24 sandbox,
 * including a token key ring (a fresh one unless `app` brings its own).
 */
export function sandboxFunctionEnv(
  dbUrl: string,
  sandbox: { baseUrlTemplate: string },
  app: SandboxApp,
): Record<string, string> {
  return {
    SUPABASE_DB_URL: dbUrl,
    CRON_SECRET: app.cronSecret,
    CAFE24_CLIENT_ID: app.clientId,
    CAFE24_CLIENT_SECRET_KEY: app.clientSecret,
    CAFE24_API_BASE_URL: sandbox.baseUrlTemplate,
    ...(app.tokenRing ?? newTokenRing()),
  };
}
