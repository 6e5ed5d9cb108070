/**
 * Which database an admin command (npm run refresh, npm run deploy:check --local) works on, and
 * where that came from. The URL, which carries a password, is taken from the environment
 * (SUPABASE_DB_URL), the env file, or the running local stack's own stack file (mode 0600), never
 * guessed from a port: whatever listens on 54322 may be another project's database.
 */
import type { StackInfo } from "./stack_info.ts";

export interface TargetInputs {
  /** --db-url, when given (discouraged: a password on a command line is visible to every user). */
  flag: string | undefined;
  shellEnv: Record<string, string | undefined>;
  fileEnv: Record<string, string | undefined>;
  envFile: string;
  /** The local stack's file, when one is running. */
  stack: StackInfo | null;
}

export type Target =
  | {
    ok: true;
    url: string;
    /** In words, for the output: "SUPABASE_DB_URL from the environment", … */
    source: string;
    /** The running local stack's own database: use its Cafe24 (sandbox) too. */
    localStack: boolean;
    warnings: string[];
  }
  | { ok: false; message: string };

export function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== "";
  } catch {
    return /:\/\/[^/@]*:[^/@]+@/.test(url);
  }
}

/** The URL with its password masked, for output. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@");
}

export function chooseDatabase(inputs: TargetInputs): Target {
  const nonEmpty = (value: string | undefined) => value !== undefined && value !== "";
  if (nonEmpty(inputs.flag)) {
    return {
      ok: true,
      url: inputs.flag!,
      source: "--db-url",
      localStack: inputs.stack?.db_url === inputs.flag,
      warnings: hasPassword(inputs.flag!)
        ? [
          "--db-url carries a password, which other users of this machine can read from the " +
          "process list and your shell keeps in its history: set SUPABASE_DB_URL in the " +
          "environment or the env file instead.",
        ]
        : [],
    };
  }
  for (
    const [value, source] of [
      [inputs.shellEnv.SUPABASE_DB_URL, "SUPABASE_DB_URL from the environment"],
      [inputs.fileEnv.SUPABASE_DB_URL, `SUPABASE_DB_URL from ${inputs.envFile}`],
    ] as const
  ) {
    if (nonEmpty(value)) {
      return {
        ok: true,
        url: value!,
        source,
        localStack: inputs.stack?.db_url === value,
        warnings: [],
      };
    }
  }
  if (inputs.stack !== null) {
    return {
      ok: true,
      url: inputs.stack.db_url,
      source: "the running npm start",
      localStack: true,
      warnings: [],
    };
  }
  return {
    ok: false,
    message: "No database to work on. Start the local stack with `npm start` (in another " +
      "terminal), or set SUPABASE_DB_URL (in the environment or " + inputs.envFile +
      ") to a database with this project's migrations.",
  };
}
