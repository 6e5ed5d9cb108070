// A local stand-in for Cafe24's OAuth and Admin API, for many malls at once, with seeded fault
// injection. Used by the tests, the benchmark and the local dev stack. It imitates Cafe24's
// documented behaviour; what Cafe24 leaves undocumented is an option (see types.ts).
// Mall base URL: `${sandbox.url}/${mall_id}`.
//
// Standalone:
//   deno run --allow-net local/cafe24_sandbox.ts --port 8787 --client-id X \
//     --client-secret Y [--redirect-uri U] [--seed N] [--latency-ms N] [--jitter-ms N] \
//     [--hostname H] [--invalid-grant-status N] [--tls-cert F --tls-key F] [--quiet]
//     [--consent-page] [--independent-grants] [--app-deleted-refresh invalid_grant|forbidden|issued]
//     [--allowed-host HOST:PORT ...]
// prints one line, `cafe24-sandbox listening on <url>`, and runs until SIGINT/SIGTERM.
// It answers only Host 127.0.0.1:<port> or localhost:<port>, plus each --allowed-host (e.g.
// host.docker.internal:8787 for functions in Docker). The /__sandbox control API wants
// `Authorization: Bearer $CAFE24_SANDBOX_CONTROL_TOKEN` (from the environment, never a flag, which
// any user could read in the process list; needs --allow-env=CAFE24_SANDBOX_CONTROL_TOKEN);
// without it the control API accepts no token at all.

import { parseArgs } from "node:util";
import { startCafe24Sandbox } from "./cafe24_sandbox/server.ts";
import {
  APP_DELETED_REFRESH_ANSWERS,
  type AppDeletedRefresh,
  type Cafe24SandboxOptions,
} from "./cafe24_sandbox/types.ts";

export { startCafe24Sandbox } from "./cafe24_sandbox/server.ts";
export { formatKst } from "./cafe24_sandbox/util.ts";
export {
  APP_DELETED_MESSAGE,
  APP_DELETED_REFRESH_ANSWERS,
  FAULT_KINDS,
  INSUFFICIENT_SCOPE_MESSAGE,
  MALFORMED_VARIANTS,
} from "./cafe24_sandbox/types.ts";
export type {
  AppDeletedRefresh,
  Cafe24Sandbox,
  Cafe24SandboxOptions,
  FaultKind,
  FaultPlan,
  FaultSpec,
  IssuedTokens,
  IssueOptions,
  MalformedVariant,
  MallCounters,
  MallOptions,
  PresentedToken,
  RefreshLogEntry,
  RefreshLogOutcome,
  RequestKind,
  RequestLogEntry,
  RevocationLogEntry,
  SandboxClock,
  SandboxCounters,
  SandboxSettings,
  ServerErrorStatus,
} from "./cafe24_sandbox/types.ts";

const CONTROL_TOKEN_VARIABLE = "CAFE24_SANDBOX_CONTROL_TOKEN";

/** The control token from the environment, when the process may read it and it is set. */
function controlTokenFromEnv(): string | undefined {
  const permission = Deno.permissions.querySync({ name: "env", variable: CONTROL_TOKEN_VARIABLE });
  if (permission.state !== "granted") return undefined;
  const value = Deno.env.get(CONTROL_TOKEN_VARIABLE);
  return value === undefined || value === "" ? undefined : value;
}

function numberFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "port": { type: "string" },
      "hostname": { type: "string" },
      "client-id": { type: "string" },
      "client-secret": { type: "string" },
      "redirect-uri": { type: "string" },
      "seed": { type: "string" },
      "latency-ms": { type: "string" },
      "jitter-ms": { type: "string" },
      "invalid-grant-status": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "quiet": { type: "boolean" },
      "consent-page": { type: "boolean" },
      "independent-grants": { type: "boolean" },
      "app-deleted-refresh": { type: "string" },
      "allowed-host": { type: "string", multiple: true },
    },
  });
  const clientId = values["client-id"];
  const clientSecret = values["client-secret"];
  if (!clientId || !clientSecret) {
    console.error("cafe24-sandbox: --client-id and --client-secret are required");
    Deno.exit(2);
  }
  const options: Cafe24SandboxOptions = { clientId, clientSecret };
  const numeric = {
    port: numberFlag(values.port, "port"),
    seed: numberFlag(values.seed, "seed"),
    latencyMs: numberFlag(values["latency-ms"], "latency-ms"),
    jitterMs: numberFlag(values["jitter-ms"], "jitter-ms"),
    invalidGrantStatus: numberFlag(values["invalid-grant-status"], "invalid-grant-status"),
  };
  for (const [key, value] of Object.entries(numeric)) {
    if (value !== undefined) options[key as keyof typeof numeric] = value;
  }
  if (values.hostname !== undefined) options.hostname = values.hostname;
  if (values["allowed-host"] !== undefined) options.allowedHosts = values["allowed-host"];
  const controlToken = controlTokenFromEnv();
  if (controlToken !== undefined) options.controlToken = controlToken;
  if (values["redirect-uri"] !== undefined) options.redirectUri = values["redirect-uri"];
  if (values.quiet) options.quiet = true;
  if (values["consent-page"]) options.consentPage = true;
  if (values["independent-grants"]) options.newGrantRevokesOlderPairs = false;
  const deletedRefresh = values["app-deleted-refresh"];
  if (deletedRefresh !== undefined) {
    if (!(APP_DELETED_REFRESH_ANSWERS as readonly string[]).includes(deletedRefresh)) {
      console.error(
        `cafe24-sandbox: --app-deleted-refresh must be one of ${
          APP_DELETED_REFRESH_ANSWERS.join(", ")
        }`,
      );
      Deno.exit(2);
    }
    options.appDeletedRefresh = deletedRefresh as AppDeletedRefresh;
  }
  const certFile = values["tls-cert"];
  const keyFile = values["tls-key"];
  if (certFile !== undefined || keyFile !== undefined) {
    if (certFile === undefined || keyFile === undefined) {
      console.error("cafe24-sandbox: --tls-cert and --tls-key go together");
      Deno.exit(2);
    }
    options.tls = {
      cert: await Deno.readTextFile(certFile),
      key: await Deno.readTextFile(keyFile),
    };
  }

  let sandbox;
  try {
    sandbox = await startCafe24Sandbox(options);
  } catch (error) {
    console.error(`cafe24-sandbox: ${error instanceof Error ? error.message : error}`);
    Deno.exit(2);
  }
  console.log(`cafe24-sandbox listening on ${sandbox.url}`);
  if (controlToken === undefined && !options.quiet) {
    console.error(`cafe24-sandbox: no ${CONTROL_TOKEN_VARIABLE}, so the control API is closed`);
  }
  const stop = async () => {
    await sandbox.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await main();
