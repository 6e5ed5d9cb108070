/**
 * TLS in front of the sandbox's plain-HTTP server, offering HTTP/1.1 only, for
 * `closeConnections`: each mall has its own host at Cafe24 (`{mall_id}.cafe24api.com`), so a
 * real client opens a new connection, with its own TLS handshake, for every refresh. Served by
 * Deno.serve with a certificate, the sandbox would offer HTTP/2, and a client that takes it
 * multiplexes every request over one connection whatever `Connection: close` says (HTTP/2 has
 * no such header), so a benchmark would never pay a handshake. Deno.serve takes no ALPN list;
 * a TLS listener does. Each accepted connection is relayed byte for byte to the plain server,
 * whose `Connection: close` then ends it (the client closes it on reading that header; the
 * relay then closes the other side).
 */
import { isLoopback } from "./util.ts";

export interface TlsFront {
  addr: Deno.NetAddr;
  /** Stops accepting and cuts every relayed connection. */
  close(): Promise<void>;
}

export function startTlsFront(options: {
  hostname: string;
  port: number;
  cert: string;
  key: string;
  backend: Deno.NetAddr;
  onConnection: () => void;
}): TlsFront {
  // The relay hides the peer's address from the sandbox, which answers its control API to
  // loopback peers only: listening on loopback alone keeps that rule true.
  if (!isLoopback(options.hostname)) {
    throw new Error("closeConnections over TLS serves loopback clients only");
  }
  const listener = Deno.listenTls({
    hostname: options.hostname,
    port: options.port,
    cert: options.cert,
    key: options.key,
    alpnProtocols: ["http/1.1"],
  });
  const open = new Set<Deno.Conn>();
  const closeQuietly = (conn: Deno.Conn) => {
    open.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  };

  const relay = async (client: Deno.TlsConn) => {
    open.add(client);
    let upstream: Deno.TcpConn | undefined;
    try {
      upstream = await Deno.connect({
        hostname: options.backend.hostname,
        port: options.backend.port,
      });
      open.add(upstream);
      // The client closes after reading Connection: close; its end reaches the server, which
      // then closes too, and that end closes the client's writable side (flushing the answer
      // and sending TLS's close_notify).
      const requests = client.readable.pipeTo(upstream.writable).catch(() => {});
      await upstream.readable.pipeTo(client.writable).catch(() => {});
      closeQuietly(client);
      await requests;
    } catch {
      // A client that went away mid-handshake, or a server that is shutting down.
    } finally {
      closeQuietly(client);
      if (upstream !== undefined) closeQuietly(upstream);
    }
  };

  const accepting = (async () => {
    for (;;) {
      let client: Deno.TlsConn;
      try {
        client = await listener.accept();
      } catch {
        return; // the listener was closed
      }
      options.onConnection();
      relay(client);
    }
  })();

  return {
    addr: listener.addr,
    async close() {
      try {
        listener.close();
      } catch {
        // already closed
      }
      for (const conn of [...open]) closeQuietly(conn);
      await accepting;
    },
  };
}
