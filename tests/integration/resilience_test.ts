/**
 * Nothing outside Cafe24's own answer can stop the refreshes or rotate a grant: one step per
 * finding of the review that tried, as an attacker and as an unlucky operator, to stop every
 * refresh or force extra rotations. Each finding's step lives in resilience/finding_NN_*.ts and
 * starts what it needs (real PostgreSQL with the migrations, the functions over HTTP, the Cafe24
 * sandbox).
 */
import { finding02 } from "./resilience/finding_02_settings.ts";
import { finding09, finding10 } from "./resilience/finding_09_10_age.ts";
import { finding11 } from "./resilience/finding_11_scopes.ts";

Deno.test("resilience: nothing but Cafe24's answer stops a refresh or rotates a grant", async (t) => {
  await t.step("2: a setting for one function stops no other; tuning falls back", finding02);
  await t.step("9: refresh now never rotates a pair younger than 5 minutes", finding09);
  await t.step("10: pairs of unknown age are spread like any other", finding10);
  await t.step("11: Cafe24's read scope beside a requested write scope is accepted", finding11);
});
