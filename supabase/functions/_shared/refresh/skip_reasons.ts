/**
 * Why a connection in a run's scope was not refreshed: the keys of the summary's
 * `skipped_reasons`, in the order the summary lists them.
 *
 * Most are decided in SQL, by the rules of cafe24_private.refresh_verdict() (in
 * supabase/schemas/30_refresh_rules_and_claim.sql): a connection is skipped for the first rule it
 * fails (CENSUS_SKIP_REASONS). The others are decided while a run works (RUN_SKIP_REASONS);
 * `key_unavailable` is both.
 * tests/integration/refresh_rules_test.ts fails when the rules name a reason this list does not,
 * or the other way round.
 */
export const SKIP_REASONS = [
  "no_cafe24",
  "missing_keys",
  "malformed",
  "not_due",
  "leased",
  "backing_off",
  "reconnect_required",
  "out_of_time",
  "run_limit",
  "already_rotated",
  "superseded",
  "key_unavailable",
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/**
 * Decided while a run works: it stopped before reaching a due connection (`out_of_time`: its wall
 * clock or CPU budget was spent, or the runtime announced it would stop the worker; `run_limit`:
 * its cap), or the connection's token changed under it (`already_rotated`, `superseded`), or its
 * stored refresh token did not open with the functions' key ring, or no key is there to store the
 * answer with (`key_unavailable`: nothing was sent, the grant is untouched; see the run's
 * warnings).
 */
export const RUN_SKIP_REASONS = [
  "out_of_time",
  "run_limit",
  "already_rotated",
  "superseded",
  "key_unavailable",
] as const satisfies readonly SkipReason[];
export type RunSkipReason = (typeof RUN_SKIP_REASONS)[number];

/**
 * The reasons the census counts, i.e. the rules' reasons. `key_unavailable` is also a run's: the
 * rules skip a row sealed under a key id the run's ring lacks, and a run sets aside a row whose
 * value does not open after all (moved, forged) or that it has no key to store an answer for.
 */
export const CENSUS_SKIP_REASONS = [
  "no_cafe24",
  "missing_keys",
  "malformed",
  "not_due",
  "leased",
  "backing_off",
  "reconnect_required",
  "key_unavailable",
] as const satisfies readonly SkipReason[];
export type CensusSkipReason = (typeof CENSUS_SKIP_REASONS)[number];

/** The census reasons that mean the row has no mall_id and refresh_token to refresh with. */
export const NOT_ELIGIBLE_REASONS = [
  "no_cafe24",
  "missing_keys",
  "malformed",
] as const satisfies readonly CensusSkipReason[];

/** A census verdict: a skip reason, or `due` (the connection is to be refreshed now). */
export type CensusVerdict = CensusSkipReason | "due";
export const CENSUS_VERDICTS: readonly CensusVerdict[] = [...CENSUS_SKIP_REASONS, "due"];
