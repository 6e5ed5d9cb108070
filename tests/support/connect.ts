/**
 * Plays the browser through the two-step connect flow: cafe24-authorize (mode=json) → the
 * sandbox's authorize endpoint → cafe24-callback (GET) → the app's return URL with the pending
 * handle in its fragment → cafe24-callback (POST) with a session. Redirects are followed by hand
 * so every hop can be checked. The callback is registered under a public HTTPS address
 * (CONNECT_SETTINGS.publicFunctionsUrl) that this browser maps to the local functions server.
 */
import assert from "node:assert/strict";
import { CONNECT_SETTINGS, type RefreshStack } from "./stack.ts";

export interface Hop {
  url: string;
  status: number;
  location: string | null;
  body: string;
  headers: Headers;
}

export interface Browser {
  /** Every hop seen so far: tests check that no token ever appears in one. */
  hops: Hop[];
  /** Where this browser sends a request for `url`: the public functions address made local. */
  local(url: string | URL): string;
  get(url: string | URL, init?: RequestInit): Promise<Hop>;
  /** authorize → Cafe24 → the callback URL Cafe24 redirects to (not yet visited). */
  authorizeAtCafe24(jwt: string, mallId: string, query?: Record<string, string>): Promise<URL>;
  /** Visits the callback and reads the app's return URL it redirects to. */
  callback(
    callbackUrl: URL,
  ): Promise<{ hop: Hop; fragment: URLSearchParams; query: URLSearchParams }>;
  /** The whole first step: authorize, approve at Cafe24, callback; returns the pending handle. */
  startConnection(jwt: string, mallId: string): Promise<string>;
  /** The app's completion call with `jwt` (null: without Authorization). */
  complete(
    jwt: string | null,
    handle: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Both steps with one session: startConnection, then complete with the handle it returned. */
  connect(
    jwt: string,
    mallId: string,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
}

export function browser(
  stack: Pick<RefreshStack, "functions">,
  functionsUrl?: () => string,
): Browser {
  const hops: Hop[] = [];
  const base = () => functionsUrl?.() ?? stack.functions.url;
  const local = (url: string | URL) =>
    String(url).startsWith(CONNECT_SETTINGS.publicFunctionsUrl)
      ? base() + String(url).slice(CONNECT_SETTINGS.publicFunctionsUrl.length)
      : String(url);

  const get = async (url: string | URL, init: RequestInit = {}) => {
    const response = await fetch(local(url), { redirect: "manual", ...init });
    const hop: Hop = {
      url: String(url),
      status: response.status,
      location: response.headers.get("location"),
      body: await response.text(),
      headers: response.headers,
    };
    hops.push(hop);
    return hop;
  };

  const authorizeAtCafe24 = async (
    jwt: string,
    mallId: string,
    query: Record<string, string> = {},
  ) => {
    const url = new URL(`${base()}/cafe24-authorize`);
    url.searchParams.set("mall_id", mallId);
    url.searchParams.set("mode", "json");
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const started = await get(url, { headers: { authorization: `Bearer ${jwt}` } });
    assert.equal(started.status, 200, started.body);
    const atCafe24 = await get(JSON.parse(started.body).url);
    assert.equal(atCafe24.status, 302, atCafe24.body);
    return new URL(atCafe24.location!);
  };

  const callback = async (callbackUrl: URL) => {
    const hop = await get(callbackUrl);
    assert.equal(hop.status, 302, hop.body);
    const back = new URL(hop.location!);
    const expected = new URL(CONNECT_SETTINGS.returnUrl);
    assert.equal(`${back.origin}${back.pathname}`, `${expected.origin}${expected.pathname}`);
    return {
      hop,
      fragment: new URLSearchParams(back.hash.slice(1)),
      query: back.searchParams,
    };
  };

  const startConnection = async (jwt: string, mallId: string) => {
    const { fragment } = await callback(await authorizeAtCafe24(jwt, mallId));
    assert.equal(fragment.get("cafe24"), "pending");
    assert.equal(fragment.get("mall_id"), mallId);
    return fragment.get("handle")!;
  };

  const complete = async (jwt: string | null, handle: unknown) => {
    const response = await fetch(`${base()}/cafe24-callback`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(jwt === null ? {} : { authorization: `Bearer ${jwt}` }),
      },
      body: JSON.stringify({ handle }),
    });
    const text = await response.text();
    hops.push({
      url: `${base()}/cafe24-callback`,
      status: response.status,
      location: null,
      body: text,
      headers: response.headers,
    });
    return { status: response.status, body: JSON.parse(text) };
  };

  return {
    hops,
    local,
    get,
    authorizeAtCafe24,
    callback,
    startConnection,
    complete,
    async connect(jwt, mallId) {
      return await complete(jwt, await startConnection(jwt, mallId));
    },
  };
}
