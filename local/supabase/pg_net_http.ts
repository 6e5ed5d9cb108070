/**
 * One pg_net request, sent the way pg_net 0.20 sends it through libcurl, for the pg_net stand-in
 * (local/supabase/pg_net_deliverer.ts). A plain HTTP/1.1 client over Deno.connect(Tls) rather
 * than fetch, because fetch lower-cases header names, decompresses bodies, merges duplicate
 * headers and redirects by other rules. What it reproduces (checked against the real pg_net 0.20.4
 * with libcurl 7.88 by tests/integration/supabase_extensions_test.ts, which runs the same
 * assertions on whichever one the database has):
 *
 * - request headers: `Host`, `Accept: *\/*`, the request's header lines in order (pg_net makes
 *   one `name: value` line per jsonb key; a line with a blank value is not sent, a line naming
 *   Host or Accept replaces curl's own), `User-Agent: pg_net/<version>`, then `Content-Length`
 *   and, for a body without a Content-Type, curl's `application/x-www-form-urlencoded`;
 * - the body: its bytes up to the first NUL (pg_net hands libcurl a C string);
 * - redirects are followed (a 3xx other than 304 with a Location): 301/302/303 drop the body and
 *   turn POST into GET (DELETE stays DELETE); 307/308 keep method and body; every header line is
 *   sent again — the cron signature too — except Authorization and Cookie (and a custom Host) once the
 *   scheme, host or port differs from the first request's;
 * - the timeout covers the whole exchange, redirects included, with pg_net's message;
 * - the result: the final status and Content-Type, the FIRST response's headers (names as the
 *   server wrote them, the last of duplicates winning), the final body up to its first NUL and
 *   NULL when empty; no Content-Encoding is asked for or decoded;
 * - failures carry libcurl's messages (curl_easy_strerror).
 *
 * Not reproduced: connection reuse, `Expect: 100-continue` for very large bodies, bodies that are
 * not UTF-8 (decoded with replacement characters here; pg_net stores the raw bytes).
 */

export const PG_NET_USER_AGENT = "pg_net/0.20.4 (stand-in)";

export interface PgNetRequest {
  /** GET, POST or DELETE (any case), as queued. */
  method: string;
  url: string;
  /** `name: value` lines, as pg_net builds them from the queued jsonb headers. */
  headerLines: string[];
  body: Uint8Array | null;
  timeoutMs: number;
}

export type PgNetOutcome =
  | {
    kind: "response";
    status: number;
    /** The first response's headers (a redirect's, when one was followed). */
    headers: Record<string, string>;
    /** The final response's Content-Type. */
    contentType: string | null;
    /** The final body up to its first NUL; null when empty. */
    content: string | null;
  }
  | { kind: "error"; timedOut: boolean; message: string };

// libcurl's messages for the errors that can happen here (curl_easy_strerror).
const CURL = {
  unsupportedProtocol: "Unsupported protocol",
  malformedUrl: "URL using bad/illegal format or missing URL",
  resolve: "Couldn't resolve host name",
  connect: "Couldn't connect to server",
  tlsConnect: "SSL connect error",
  tlsPeer: "SSL peer certificate or SSH remote key was not OK",
  weirdReply: "Weird server reply",
  gotNothing: "Server returned nothing (no headers, no data)",
  partialFile: "Transferred a partial file",
  send: "Failed sending data to the peer",
  receive: "Failure when receiving data from the peer",
  tooManyRedirects: "Number of redirects hit maximum amount",
} as const;

const MAX_REDIRECTS = 50;
const REDIRECT_TO_GET = new Set([301, 302, 303]);

class CurlFailure extends Error {}
class Timeout extends Error {}

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();

function headerName(line: string): string {
  const colon = line.indexOf(":");
  return (colon < 0 ? line : line.slice(0, colon)).trim().toLowerCase();
}

function headerValueBlank(line: string): boolean {
  const colon = line.indexOf(":");
  return colon >= 0 && line.slice(colon + 1).trim() === "";
}

function originOf(url: URL): string {
  return `${url.protocol}//${url.hostname.toLowerCase()}:${url.port || defaultPort(url)}`;
}

function defaultPort(url: URL): string {
  return url.protocol === "https:" ? "443" : "80";
}

function beforeNul(bytes: Uint8Array): Uint8Array {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

/** Buffered reads from one connection; every read is bounded by the exchange's deadline. */
class Reader {
  #buf = new Uint8Array(0);
  #eof = false;
  constructor(
    private readonly conn: Deno.Conn,
    private readonly bounded: <T>(p: Promise<T>) => Promise<T>,
  ) {}

  get bufferedNothing(): boolean {
    return this.#buf.length === 0;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(16 * 1024);
    let n: number | null;
    try {
      n = await this.bounded(this.conn.read(chunk));
    } catch (e) {
      if (e instanceof Timeout) throw e;
      throw new CurlFailure(CURL.receive);
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }

  /** A line without its CRLF (or LF); null at end of stream. */
  async line(): Promise<string | null> {
    for (;;) {
      const lf = this.#buf.indexOf(10);
      if (lf >= 0) {
        const end = lf > 0 && this.#buf[lf - 1] === 13 ? lf - 1 : lf;
        const text = latin1.decode(this.#buf.subarray(0, end));
        this.#buf = this.#buf.subarray(lf + 1);
        return text;
      }
      if (!(await this.#fill())) return null;
    }
  }

  async exactly(n: number): Promise<Uint8Array | null> {
    while (this.#buf.length < n) {
      if (!(await this.#fill())) return null;
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  async rest(): Promise<Uint8Array> {
    while (await this.#fill()) { /* read to the end */ }
    const out = this.#buf;
    this.#buf = new Uint8Array(0);
    return out;
  }
}

interface RawResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
}

async function readHead(reader: Reader): Promise<{ status: number; headers: [string, string][] }> {
  for (;;) {
    const statusLine = await reader.line();
    if (statusLine === null) {
      throw new CurlFailure(reader.bufferedNothing ? CURL.gotNothing : CURL.weirdReply);
    }
    const match = /^HTTP\/\d(?:\.\d)?\s+(\d{3})(?:\s|$)/.exec(statusLine);
    if (match === null) throw new CurlFailure(CURL.weirdReply);
    const status = Number(match[1]);
    const headers: [string, string][] = [];
    for (;;) {
      const line = await reader.line();
      if (line === null) throw new CurlFailure(CURL.receive);
      if (line === "") break;
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
    }
    // Interim answers (100 Continue, 103 Early Hints) are not the response.
    if (status >= 100 && status < 200 && status !== 101) continue;
    return { status, headers };
  }
}

function lastHeader(headers: [string, string][], name: string): string | undefined {
  let value: string | undefined;
  for (const [n, v] of headers) if (n.toLowerCase() === name) value = v;
  return value;
}

function firstHeader(headers: [string, string][], name: string): string | undefined {
  return headers.find(([n]) => n.toLowerCase() === name)?.[1];
}

async function readBody(
  reader: Reader,
  method: string,
  status: number,
  headers: [string, string][],
): Promise<Uint8Array> {
  if (method === "HEAD" || status === 204 || status === 304) return new Uint8Array(0);
  const transferEncoding = (lastHeader(headers, "transfer-encoding") ?? "").toLowerCase();
  if (transferEncoding.split(",").map((s) => s.trim()).includes("chunked")) {
    const parts: Uint8Array[] = [];
    for (;;) {
      const sizeLine = await reader.line();
      if (sizeLine === null) throw new CurlFailure(CURL.partialFile);
      const size = parseInt(sizeLine.split(";")[0]!.trim(), 16);
      if (!Number.isFinite(size) || size < 0) throw new CurlFailure(CURL.receive);
      if (size === 0) {
        // Trailers until the empty line.
        for (;;) {
          const trailer = await reader.line();
          if (trailer === null || trailer === "") break;
        }
        break;
      }
      const chunk = await reader.exactly(size);
      if (chunk === null) throw new CurlFailure(CURL.partialFile);
      parts.push(chunk);
      await reader.line(); // the CRLF after the chunk
    }
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
  const length = firstHeader(headers, "content-length");
  if (length !== undefined) {
    const n = Number(length);
    if (!Number.isInteger(n) || n < 0) throw new CurlFailure(CURL.weirdReply);
    const body = await reader.exactly(n);
    if (body === null) throw new CurlFailure(CURL.partialFile);
    return body;
  }
  return await reader.rest();
}

/** The deadline of one exchange: bounds every wait, and closes the open connection when it
 * passes (which also wakes a pending read or write). */
class Deadline {
  expired = false;
  #conn: Deno.Conn | null = null;
  #timer: ReturnType<typeof setTimeout>;
  readonly #passed: Promise<never>;

  constructor(ms: number) {
    let fire: (e: Timeout) => void = () => {};
    this.#passed = new Promise<never>((_, reject) => (fire = reject));
    this.#passed.catch(() => {});
    this.#timer = setTimeout(() => {
      this.expired = true;
      fire(new Timeout());
      this.#close();
    }, Math.max(0, ms));
  }

  bounded = <T>(p: Promise<T>): Promise<T> => Promise.race([p, this.#passed]);

  /** The connection the deadline closes; a connection that arrives too late is closed at once. */
  hold(conn: Deno.Conn): void {
    this.#close();
    this.#conn = conn;
    if (this.expired) this.#close();
  }

  #close(): void {
    try {
      this.#conn?.close();
    } catch { /* already closed */ }
    this.#conn = null;
  }

  end(): void {
    clearTimeout(this.#timer);
    this.#close();
  }
}

/** Sends `req` as pg_net would and says what pg_net would record. Never throws. */
export async function sendLikePgNet(req: PgNetRequest): Promise<PgNetOutcome> {
  const started = performance.now();
  let connectedAt: number | null = null;
  const deadline = new Deadline(req.timeoutMs);
  try {
    return await exchange(req, deadline, () => (connectedAt = performance.now()));
  } catch (e) {
    if (e instanceof Timeout || deadline.expired) {
      const total = performance.now() - started;
      const handshake = connectedAt === null ? total : connectedAt - started;
      const http = total - handshake;
      return {
        kind: "error",
        timedOut: true,
        message: `Timeout of ${req.timeoutMs} ms reached. Total time: ${total.toFixed(6)} ms ` +
          `(DNS time: ${(0).toFixed(6)} ms, TCP/SSL handshake time: ${handshake.toFixed(6)} ms, ` +
          `HTTP Request/Response time: ${http.toFixed(6)} ms)`,
      };
    }
    if (e instanceof CurlFailure) return { kind: "error", timedOut: false, message: e.message };
    return { kind: "error", timedOut: false, message: CURL.receive };
  } finally {
    deadline.end();
  }
}

async function connect(url: URL, deadline: Deadline): Promise<Deno.Conn> {
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(url.port || defaultPort(url));
  const attempt: Promise<Deno.Conn> = url.protocol === "https:"
    ? Deno.connectTls({ hostname, port }).then(async (tls) => {
      deadline.hold(tls);
      try {
        await tls.handshake();
        return tls;
      } catch (e) {
        if (deadline.expired) throw new Timeout();
        const invalidCert = e instanceof Deno.errors.InvalidData ||
          /certificate|UnknownIssuer/i.test(String(e));
        throw new CurlFailure(invalidCert ? CURL.tlsPeer : CURL.tlsConnect);
      }
    })
    : Deno.connect({ hostname, port }).then((conn) => {
      deadline.hold(conn);
      return conn;
    });
  try {
    return await deadline.bounded(attempt);
  } catch (e) {
    if (e instanceof Timeout || e instanceof CurlFailure) throw e;
    if (e instanceof Deno.errors.ConnectionRefused) throw new CurlFailure(CURL.connect);
    if (e instanceof Deno.errors.NotFound || /lookup|resolve|name/i.test(String(e))) {
      throw new CurlFailure(CURL.resolve);
    }
    throw new CurlFailure(CURL.connect);
  }
}

async function exchange(
  req: PgNetRequest,
  deadline: Deadline,
  onConnected: () => void,
): Promise<PgNetOutcome> {
  const bounded = deadline.bounded;
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(req.url) ? req.url : `http://${req.url}`);
  } catch {
    throw new CurlFailure(CURL.malformedUrl);
  }
  const firstOrigin = originOf(url);
  let method = req.method.toUpperCase();
  let body = req.body === null ? null : beforeNul(req.body);
  let firstHeaders: Record<string, string> | null = null;

  for (let hop = 0;; hop++) {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new CurlFailure(CURL.unsupportedProtocol);
    }
    const sameOrigin = originOf(url) === firstOrigin;
    const custom = req.headerLines.filter((line) => {
      const name = headerName(line);
      if (!sameOrigin && (name === "authorization" || name === "cookie" || name === "host")) {
        return false;
      }
      return !headerValueBlank(line);
    });
    const customNames = new Set(req.headerLines.map(headerName));
    const lines = [`${method} ${url.pathname}${url.search} HTTP/1.1`];
    if (!(sameOrigin && customNames.has("host"))) lines.push(`Host: ${url.host}`);
    if (!customNames.has("accept")) lines.push("Accept: */*");
    lines.push(...custom, `User-Agent: ${PG_NET_USER_AGENT}`);
    const sendsBody = body !== null || method === "POST";
    if (sendsBody) {
      lines.push(`Content-Length: ${body?.length ?? 0}`);
      if (!customNames.has("content-type")) {
        lines.push("Content-Type: application/x-www-form-urlencoded");
      }
    }
    const head = encoder.encode(lines.join("\r\n") + "\r\n\r\n");

    const conn = await connect(url, deadline);
    onConnected();
    try {
      try {
        await bounded(writeAll(conn, head));
        if (body !== null && body.length > 0) await bounded(writeAll(conn, body));
      } catch (e) {
        if (e instanceof Timeout) throw e;
        throw new CurlFailure(CURL.send);
      }
      const reader = new Reader(conn, bounded);
      const { status, headers } = await readHead(reader);
      const raw: RawResponse = {
        status,
        headers,
        body: await readBody(reader, method, status, headers),
      };
      firstHeaders ??= Object.fromEntries(raw.headers);

      const location = firstHeader(raw.headers, "location");
      if (raw.status >= 300 && raw.status < 400 && raw.status !== 304 && location !== undefined) {
        if (hop + 1 > MAX_REDIRECTS) throw new CurlFailure(CURL.tooManyRedirects);
        try {
          url = new URL(location, url);
        } catch {
          throw new CurlFailure(CURL.malformedUrl);
        }
        if (REDIRECT_TO_GET.has(raw.status) && sendsBody) {
          body = null;
          if (method === "POST") method = "GET";
        }
        continue;
      }

      const text = utf8.decode(beforeNul(raw.body));
      return {
        kind: "response",
        status: raw.status,
        headers: firstHeaders,
        contentType: firstHeader(raw.headers, "content-type") ?? null,
        content: text === "" ? null : text,
      };
    } finally {
      try {
        conn.close();
      } catch { /* already closed by the deadline */ }
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}
