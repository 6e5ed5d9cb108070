import type { FaultController } from "./faults.ts";
import type { SandboxState } from "./state.ts";
import type { SandboxClock } from "./types.ts";

export interface ResolvedOptions {
  clientId: string;
  clientSecret: string;
  redirectUri: string | undefined;
  invalidGrantStatus: number;
  rateLimitTokenEndpoint: boolean;
  bucketCapacity: number;
  bucketDrainPerSecond: number;
  commitOnClientAbort: boolean;
}

export interface SandboxContext {
  options: ResolvedOptions;
  clock: SandboxClock;
  state: SandboxState;
  faults: FaultController;
  /** Fires on close(), so hung and delayed requests let the server shut down. */
  shutdown: AbortSignal;
  log(message: string): void;
}
