/**
 * One HTTP/1.1 request over a TCP connection of its own, with any `Host`: fetch always sends the
 * URL's own, so a request as a DNS-rebinding page's browser sends it (the page's hostname, this
 * machine's address) has to be written by hand.
 *
 *   const answer = await rawRequest(`${server.url}/path`, { host: "rebind.example:54330" });
 *   assert.equal(answer.status, 421);
 */

export interface RawAnswer {
  status: number;
  headers: Headers;
  body: string;
}

export interface RawRequestOptions {
  /** The Host header; default the URL's host. */
  host?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Where to connect; default the URL's hostname. */
  connectTo?: string;
}

export async function rawRequest(url: string, options: RawRequestOptions = {}): Promise<RawAnswer> {
  const target = new URL(url);
  const body = new TextEncoder().encode(options.body ?? "");
  const lines = [
    `${options.method ?? "GET"} ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${options.host ?? target.host}`,
    "Connection: close",
    ...Object.entries(options.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${body.length}`,
    "",
    "",
  ];
  const conn = await Deno.connect({
    hostname: options.connectTo ?? target.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: Number(target.port),
  });
  try {
    const head = new TextEncoder().encode(lines.join("\r\n"));
    const request = new Uint8Array(head.length + body.length);
    request.set(head);
    request.set(body, head.length);
    for (let written = 0; written < request.length;) {
      written += await conn.write(request.subarray(written));
    }
    // Connection: close — the server ends the connection after its answer.
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      chunks.push(buffer.slice(0, n));
    }
    return parse(concat(chunks));
  } finally {
    try {
      conn.close();
    } catch { /* closed by the server */ }
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

function parse(raw: Uint8Array): RawAnswer {
  const end = indexOf(raw, CRLF_CRLF, 0);
  if (end < 0) {
    throw new Error(`no complete HTTP answer: ${JSON.stringify(decode(raw.slice(0, 200)))}`);
  }
  const [statusLine = "", ...headerLines] = decode(raw.subarray(0, end)).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
  if (!Number.isInteger(status)) throw new Error(`not an HTTP status line: ${statusLine}`);
  const headers = new Headers();
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  let body = raw.subarray(end + 4);
  if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") body = dechunk(body);
  return { status, headers, body: decode(body) };
}

const CRLF = new Uint8Array([13, 10]);
const CRLF_CRLF = new Uint8Array([13, 10, 13, 10]);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Chunk sizes count bytes, so the body is taken apart before it is decoded. */
function dechunk(chunked: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = indexOf(chunked, CRLF, at);
    if (lineEnd < 0) break;
    const size = parseInt(decode(chunked.subarray(at, lineEnd)), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(chunked.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return concat(parts);
}
