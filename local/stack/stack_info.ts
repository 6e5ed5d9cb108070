/**
 * What `npm start` leaves for other local tools while it runs: `<data dir>/stack.json` with the
 * URLs, the mode and the process ids. It holds no secret (the cron secret stays in the terminal and
 * in .env); the sandbox's client credentials below are well-known local values, like the local
 * keys of `supabase start`, and work nowhere else.
 */

export { processAlive, processCommandLine } from "../processes.ts";

export const PROJECT_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname)
  .replace(/\/$/, "");
export const DEFAULT_DATA_DIR = `${PROJECT_ROOT}/.local`;
export const DEFAULT_PORTS = { db: 54322, functions: 54321, sandbox: 54329 } as const;

export const SANDBOX_CLIENT_ID = "local-sandbox-client";
export const SANDBOX_CLIENT_SECRET = "local-sandbox-secret-works-only-on-the-sandbox";

export interface StackInfo {
  started_at: string;
  data_dir: string;
  db_url: string;
  /** The project URL (gateway): functions at `${supabase_url}/functions/v1/<name>`. */
  supabase_url: string;
  mode: "sandbox" | "real";
  /** `{mall_id}` template of the Cafe24 API the functions use. */
  cafe24_api_base_url: string;
  sandbox_url: string | null;
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

export async function writeStackInfo(dataDir: string, info: StackInfo): Promise<void> {
  await Deno.writeTextFile(stackInfoPath(dataDir), JSON.stringify(info, null, 2) + "\n");
}

export async function removeStackInfo(dataDir: string): Promise<void> {
  await Deno.remove(stackInfoPath(dataDir)).catch(() => {});
}

export function absolutePath(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`.replace(/\/\.\//g, "/");
}
