/**
 * Every function's front door, defined once: open the request (CORS, method, body size), know
 * the caller, then load the function's own configuration. The order is the point:
 *   - the caller is known before any configuration error is answered, so nobody but a caller
 *     with a credential learns how a function is configured (only what authentication itself
 *     needs is checked first: CRON_SECRET for the scheduler, SUPABASE_URL and a public key for
 *     users);
 *   - only the variables the function uses (FUNCTION_SETTINGS) can make it refuse, so a setting
 *     of one function never stops another.
 * Returns what the handler goes on with, or the response that already ends the request.
 */
import { type Caller, type CallerKind, identifyCaller } from "./caller.ts";
import {
  type Config,
  configRules,
  type EnvName,
  FUNCTION_SETTINGS,
  type FunctionName,
  loadConfig,
} from "./config.ts";
import { RequestError } from "./errors.ts";
import { configErrorResponse, openRequest, requestErrorResponse } from "./http.ts";
import { logEvent } from "./log.ts";

type Required<F extends FunctionName> = (typeof FUNCTION_SETTINGS)[F]["required"][number];

/** A caller without a credential, where a method is open to all. */
export type Anyone = { kind: "anyone" };

export interface FrontDoor<K extends CallerKind | "anyone"> {
  /**
   * The methods answered, each with the callers it accepts. `anyone` opens a method to all (its
   * own gate comes later, e.g. the callback's signed state).
   */
  callers: Readonly<Record<string, readonly K[]>>;
  /** The largest request body accepted; MAX_REQUEST_BODY_BYTES (16 KiB) where not given. */
  maxBodyBytes?: number;
  /** The handler's own headers (e.g. Cache-Control), sent with every answer. */
  headers?: Record<string, string>;
  /**
   * How a configuration error is answered; by default 500 with the names and their rules. The
   * callback's GET sends the browser back to the app instead.
   */
  configError?: (
    code: "CONFIG_MISSING" | "CONFIG_INVALID",
    names: string[],
    headers: Record<string, string>,
  ) => Response | null;
}

export interface Entered<F extends FunctionName, K extends CallerKind | "anyone"> {
  env: Record<string, string | undefined>;
  config: Config<Required<F>>;
  caller: Extract<Caller | Anyone, { kind: K }>;
  /** Tolerated variables whose invalid value gave way to the default (logged; a run warns). */
  ignored: string[];
  /** CORS headers plus the handler's own: sent with every answer. */
  headers: Record<string, string>;
}

export async function enter<F extends FunctionName, K extends CallerKind | "anyone">(
  request: Request,
  functionName: F,
  door: FrontDoor<K>,
): Promise<Entered<F, K> | Response> {
  const env = Deno.env.toObject();
  const { cors, early } = openRequest(request, env, Object.keys(door.callers), door.maxBodyBytes);
  if (early !== null) return early;
  const headers = { ...cors, ...door.headers };

  const accepts = door.callers[request.method] ?? [];
  let caller: Caller | Anyone = { kind: "anyone" };
  if (!accepts.includes("anyone" as K)) {
    try {
      caller = await identifyCaller(
        request,
        env,
        functionName,
        accepts.filter((kind): kind is K & CallerKind => kind !== "anyone"),
      );
    } catch (error) {
      if (error instanceof RequestError) return requestErrorResponse(error, headers);
      throw error;
    }
  }

  const settings: {
    required: readonly Required<F>[];
    uses: readonly EnvName[];
    tolerates?: readonly EnvName[];
  } = FUNCTION_SETTINGS[functionName];
  const loaded = loadConfig<Required<F>>(env, settings.required, settings.uses, settings.tolerates);
  if (!loaded.ok) {
    return door.configError?.(loaded.code, loaded.names, headers) ??
      configErrorResponse(functionName, loaded.code, loaded.names, headers);
  }
  if (loaded.ignored.length > 0) {
    logEvent("warn", "config_value_ignored", {
      function: functionName,
      names: loaded.ignored,
      rules: configRules("CONFIG_INVALID", loaded.ignored),
    });
  }
  return {
    env,
    config: loaded.config,
    // identifyCaller returns only the kinds it was given.
    caller: caller as Extract<Caller | Anyone, { kind: K }>,
    headers,
    ignored: loaded.ignored,
  };
}
