/**
 * Every local server answers only requests addressed to it as 127.0.0.1:<its port> or
 * localhost:<its port>: a request naming another host — what a browser sends for a web page whose
 * own hostname was rebound to 127.0.0.1 — gets 421 before anything else runs. fetch always sends
 * the URL's own Host, so these requests are written by hand (tests/support/raw_http.ts).
 */
import assert from "node:assert/strict";
import { rawRequest } from "../../support/raw_http.ts";
import { startCafe24Sandbox } from "../../../local/cafe24_sandbox.ts";
import { startGateway } from "../../../local/functions/gateway.ts";
import { startFunctionsServer } from "../../../local/functions/server.ts";
import { startSettingsPage } from "../../../local/settings_page/server.ts";
import { JWKS_PATH, startAuthStandIn } from "../../../local/supabase/auth_stand_in.ts";
import { allowedHosts, misdirected, newControlToken } from "../../../local/local_access.ts";

/** Hosts a rebinding page's browser (or a confused client) would name; none is this server. */
function foreignHosts(port: number): string[] {
  return [
    `rebind.example:${port}`,
    "rebind.example",
    `127.0.0.1.rebind.example:${port}`,
    `localhost.rebind.example:${port}`,
    `127.0.0.1:${port + 1}`,
    `localhost:${port + 1}`,
    `0.0.0.0:${port}`,
    "",
  ];
}

async function assertRefusesForeignHosts(name: string, url: string): Promise<void> {
  const port = Number(new URL(url).port);
  for (const host of foreignHosts(port)) {
    const answer = await rawRequest(url, { host });
    assert.equal(answer.status, 421, `${name} answered Host ${JSON.stringify(host)}`);
    assert.equal(JSON.parse(answer.body).error, "MISDIRECTED_REQUEST", name);
    assert.match(JSON.parse(answer.body).detail, new RegExp(`http://127\\.0\\.0\\.1:${port}`));
    if (host !== "") assert.ok(!answer.body.includes("rebind"), "the refused name is not echoed");
  }
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `Localhost:${port}`]) {
    const answer = await rawRequest(url, { host });
    assert.notEqual(answer.status, 421, `${name} refused Host ${host}: ${answer.body}`);
  }
}

Deno.test("allowedHosts()/misdirected(): loopback names with the server's own port, nothing else", () => {
  const hosts = allowedHosts(54330, ["tunnel.example"]);
  const request = (host: string) => new Request("http://127.0.0.1:54330/", { headers: { host } });
  for (const host of ["127.0.0.1:54330", "localhost:54330", "[::1]:54330", "tunnel.example"]) {
    assert.equal(misdirected(request(host), hosts), null, host);
  }
  for (const host of ["127.0.0.1:54331", "localhost", "tunnel.example:54330", "evil:54330"]) {
    assert.equal(misdirected(request(host), hosts)?.status, 421, host);
  }
});

Deno.test("the settings page refuses a forged Host", async () => {
  const page = startSettingsPage({
    port: 0,
    supabaseUrl: "http://127.0.0.1:9",
    anonKey: "anon",
    demoUsers: [],
    mintAccessToken: () => Promise.reject(new Error("not in this test")),
    controlToken: newControlToken(),
  });
  try {
    await assertRefusesForeignHosts("the settings page", page.url);
    await assertRefusesForeignHosts("the settings page", `${page.origin}/demo-users`);
  } finally {
    await page.close();
  }
});

Deno.test("the gateway refuses a forged Host, before it forwards anything", async () => {
  const forwarded: string[] = [];
  const upstream = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (r) => {
    forwarded.push(new URL(r.url).pathname);
    return Response.json({ ok: true });
  });
  const gateway = await startGateway({
    hostname: "127.0.0.1",
    port: 0,
    functionsOrigin: () => `http://127.0.0.1:${(upstream.addr as Deno.NetAddr).port}`,
    jwks: () => ({ keys: [] }),
    extraHosts: ["tunnel.example"],
  });
  try {
    const port = new URL(gateway.url).port;
    for (const host of foreignHosts(gateway.port)) {
      const answer = await rawRequest(`${gateway.url}/functions/v1/cafe24-refresh`, { host });
      assert.equal(answer.status, 421, host);
    }
    await assertRefusesForeignHosts("the gateway", `${gateway.url}${JWKS_PATH}`);
    assert.deepEqual(forwarded, [], "nothing reached the functions");
    // The loopback names and a configured tunnel reach the functions.
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "tunnel.example"]) {
      const answer = await rawRequest(`${gateway.url}/functions/v1/cafe24-refresh`, { host });
      assert.equal(answer.status, 200, host);
    }
    assert.equal(forwarded.length, 3);
  } finally {
    await gateway.close();
    await upstream.shutdown();
  }
});

Deno.test("the Auth stand-in refuses a forged Host", async () => {
  const auth = await startAuthStandIn();
  try {
    await assertRefusesForeignHosts("the Auth stand-in", `${auth.url}${JWKS_PATH}`);
    const answer = await rawRequest(`${auth.url}${JWKS_PATH}`);
    assert.deepEqual(JSON.parse(answer.body), auth.jwks);
  } finally {
    await auth.close();
  }
});

Deno.test("the Cafe24 sandbox refuses a forged Host", async () => {
  const sandbox = await startCafe24Sandbox({
    clientId: "client",
    clientSecret: "secret",
    quiet: true,
  });
  try {
    sandbox.addMall("hostmall");
    await assertRefusesForeignHosts("the sandbox", `${sandbox.url}/hostmall/api/v2/admin/shops`);
    await assertRefusesForeignHosts("the sandbox", `${sandbox.url}/__sandbox/counters`);
  } finally {
    await sandbox.close();
  }
});

Deno.test({
  name: "the functions process refuses a forged Host",
  // The child's stdout/stderr pumps end with the process.
  sanitizeResources: false,
  fn: async () => {
    const functions = await startFunctionsServer({});
    try {
      await assertRefusesForeignHosts("the functions", `${functions.url}/no-such-function`);
      // A function's own answer comes only through a loopback name.
      const answer = await rawRequest(`${functions.url}/cafe24-refresh`, {
        host: `rebind.example:${new URL(functions.url).port}`,
        method: "POST",
      });
      assert.equal(answer.status, 421);
    } finally {
      await functions.stop();
    }
  },
});
