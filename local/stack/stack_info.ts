/**
 * What `npm start` leaves for other local tools (and for you, once the banner has scrolled away)
 * while it runs: `<data dir>/stack.json`, mode 0600, with the URLs (the database's with its
 * password), the cron secret, the stack's control token, a user token for the local Auth
 * stand-in, the commands to try and the process ids. `npm run refresh` and `npm run deploy:check -- --local` read it. The sandbox's
 * client credentials below are well-known local values, like the local keys of `supabase start`,
 * and work nowhere else.
 */

export { processAlive, processCommandLine } from "../processes.ts";

export const PROJECT_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname)
  .replace(/\/$/, "");
export const DEFAULT_DATA_DIR = `${PROJECT_ROOT}/.local`;
export const DEFAULT_PORTS = {
  db: 54322,
  functions: 54321,
  sandbox: 54329,
  settings: 54330,
} as const;

export const SANDBOX_CLIENT_ID = "local-sandbox-client";
export const SANDBOX_CLIENT_SECRET = "local-sandbox-secret-works-only-on-the-sandbox";

export interface StackInfo {
  started_at: string;
  data_dir: string;
  /** The PostgreSQL cluster's folder (see data_location.ts). */
  postgres_dir: string;
  /** With the cluster's password. */
  db_url: string;
  /** The project URL (gateway): functions at `${supabase_url}/functions/v1/<name>`. */
  supabase_url: string;
  mode: "sandbox" | "real";
  /** `{mall_id}` template of the Cafe24 API the functions use. */
  cafe24_api_base_url: string;
  sandbox_url: string | null;
  /** The functions' CRON_SECRET, also in Vault as cafe24_cron_secret. */
  cron_secret: string;
  /**
   * This start's own token, new at every start: the sandbox's /__sandbox control API wants it as
   * `Authorization: Bearer …` (it hands out live tokens), and the settings page's sign-in wants it
   * (through `settings_page_url`). Readable only through this file (0600): another local process
   * or a web page cannot use what it cannot read.
   */
  control_token: string;
  /**
   * The settings page with the control token in its fragment (`#key=…`): open it in a browser to
   * sign in there; the page trades the token for a cookie and removes it from the address bar.
   */
  settings_page_url: string;
  /** A user of the local Auth stand-in and a token for it, for the connect flow. */
  local_user: {
    email: string;
    jwt: string;
    expires_at: string;
    /** Cafe24's (the sandbox's) authorize page for the dead demo mall, valid 10 minutes. */
    authorize_url?: string | null;
  } | null;
  /** The commands the banner suggested; they work while this stack runs. */
  try: string[];
  pids: { start: number; functions: number | null; postgres: number | null };
}

export function stackInfoPath(dataDir: string): string {
  return `${dataDir}/stack.json`;
}

export async function readStackInfo(dataDir: string): Promise<StackInfo | null> {
  try {
    return JSON.parse(await Deno.readTextFile(stackInfoPath(dataDir))) as StackInfo;
  } catch {
    return null;
  }
}

/** Written anew with mode 0600: it holds secrets, and an older file may have been readable. */
export async function writeStackInfo(dataDir: string, info: StackInfo): Promise<void> {
  await removeStackInfo(dataDir);
  await Deno.writeTextFile(stackInfoPath(dataDir), JSON.stringify(info, null, 2) + "\n", {
    mode: 0o600,
    createNew: true,
  });
}

export async function removeStackInfo(dataDir: string): Promise<void> {
  await Deno.remove(stackInfoPath(dataDir)).catch(() => {});
}

export function absolutePath(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`.replace(/\/\.\//g, "/");
}
