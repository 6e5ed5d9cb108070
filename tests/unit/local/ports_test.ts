import assert from "node:assert/strict";
import { busyPortsMessage, nextFreePort, portFree } from "../../../local/stack/ports.ts";

Deno.test("portFree() is false while something listens on the port", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  try {
    assert.equal(portFree(port), false);
  } finally {
    listener.close();
  }
  assert.equal(portFree(port), true);
  assert.equal(portFree(0), true);
});

Deno.test("portFree() is true for a port held only by a connection in TIME-WAIT", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  const client = Deno.connect({ hostname: "127.0.0.1", port });
  const server = await listener.accept();
  const peer = await client;
  // The side that closes first keeps the connection in TIME-WAIT, here on `port` itself.
  server.close();
  await peer.read(new Uint8Array(1)); // end of stream: the server's FIN arrived
  peer.close();
  listener.close();
  // /proc/net/tcp: local address 0100007F:<port in hex>, state 06 = TIME_WAIT.
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const timeWait = (await Deno.readTextFile("/proc/net/tcp")).split("\n")
    .some((line) => line.trim().split(/\s+/)[1] === local && line.trim().split(/\s+/)[3] === "06");
  assert.ok(timeWait, "the test needs a TIME-WAIT socket on the port");
  assert.equal(portFree(port), true);
});

Deno.test("busyPortsMessage() gives the whole npm start command, with -- before the flags", () => {
  const message = busyPortsMessage([
    { name: "db", port: 54322, suggestion: 54323 },
    { name: "sandbox", port: 54329, suggestion: null },
  ]);
  assert.match(message, /port 54322 \(db\) is in use/);
  assert.match(message, /port 54329 \(sandbox\) is in use/);
  assert.match(message, /^ {2}npm start -- --db-port 54323 --sandbox-port N$/m);
});

Deno.test("the settings page's port is a port like the others: flag and busy message", () => {
  const message = busyPortsMessage([{ name: "settings", port: 54330, suggestion: 54331 }]);
  assert.match(message, /port 54330 \(settings\) is in use/);
  assert.match(message, /^ {2}npm start -- --settings-port 54331$/m);
});

Deno.test("nextFreePort() skips taken and busy ports", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  try {
    const next = nextFreePort(port - 1, [port + 1]);
    assert.ok(next !== null && next !== port && next !== port + 1);
  } finally {
    listener.close();
  }
});
