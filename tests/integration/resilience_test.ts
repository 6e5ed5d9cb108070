/**
 * Nothing outside Cafe24's own answer can stop the refreshes or rotate a grant: one step per
 * finding of the review that tried, as an attacker and as an unlucky operator, to stop every
 * refresh or force extra rotations. Each finding's step lives in resilience/finding_NN_*.ts and
 * starts what it needs (real PostgreSQL with the migrations, the functions over HTTP, the Cafe24
 * sandbox).
 */
import { finding01, finding04 } from "./resilience/finding_01_04_calls.ts";
import { finding02 } from "./resilience/finding_02_settings.ts";
import { finding03, finding05 } from "./resilience/finding_03_05_webhook.ts";
import { finding06, finding07 } from "./resilience/finding_06_07_custody.ts";
import { finding09, finding10 } from "./resilience/finding_09_10_age.ts";
import { finding08, finding12 } from "./resilience/finding_08_12_local_and_small.ts";
import { finding11 } from "./resilience/finding_11_scopes.ts";

Deno.test("resilience: nothing but Cafe24's answer stops a refresh or rotates a grant", async (t) => {
  await t.step("1: no row another role writes stops the schedule", finding01);
  await t.step("2: a setting for one function stops no other; tuning falls back", finding02);
  await t.step("3: a forged app notice never rotates a grant", finding03);
  await t.step(
    "4: a scheduled call's signature is single-use and bound to its function",
    finding04,
  );
  await t.step("5: notices without the webhook key cost nothing and are counted", finding05);
  await t.step("6: a stranger's refused attempt leaves the holder working", finding06);
  await t.step("7: the drop-in view passes only allowed keys", finding07);
  await t.step("8: local servers check Host; live routes want the per-start token", finding08);
  await t.step("9: refresh now never rotates a pair younger than 5 minutes", finding09);
  await t.step("10: pairs of unknown age are spread like any other", finding10);
  await t.step("11: Cafe24's read scope beside a requested write scope is accepted", finding11);
  await t.step(
    "12: deleted-app 403s only, the legacy key warned, authorize lines counted",
    finding12,
  );
});
