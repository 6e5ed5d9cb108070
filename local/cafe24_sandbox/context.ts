import type { FaultController } from "./faults.ts";
import type { SandboxState } from "./state.ts";
import type { RequestKind, SandboxClock, SandboxSettings } from "./types.ts";

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
  /** The same object as state.settings: changed in place by configure(). */
  settings: SandboxSettings;
  faults: FaultController;
  /** Fires on close(), so hung and delayed requests let the server shut down. */
  shutdown: AbortSignal;
  log(message: string): void;
}

/** A mall endpoint's answer and how the request log names it. */
export interface Handled {
  response: Response;
  kind: RequestKind;
  outcome: string;
}
