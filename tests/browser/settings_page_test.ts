/**
 * The reference settings page (local/settings_page) in a real headless Chromium, against the
 * integration stack: real PostgreSQL with the migrations, the functions over HTTP behind the local
 * gateway, the Cafe24 sandbox with its consent page, and the page on an origin of its own, the
 * only one the functions allow (CORS_ALLOWED_ORIGINS). The browser really goes page → Cafe24's
 * consent page → cafe24-callback → page, and every wait is on the page (a selector, a response,
 * a URL), never on the clock. Screenshots of each final state: .test-results/screenshots/.
 * Signing in takes the page's launch link, whose key the page trades for an HttpOnly cookie, and
 * a page on a hostname rebound to 127.0.0.1 reads nothing from the local servers.
 */
import assert from "node:assert/strict";
import type { BrowserContext, Page, Request } from "playwright-core";
import { startTestAuth } from "../support/auth.ts";
import { launchChromium, REBOUND_HOSTNAME, SCREENSHOTS_DIR } from "../support/chromium.ts";
import { CONNECT_SETTINGS, connectStackOptions, startRefreshStack } from "../support/stack.ts";
import { startGateway } from "../../local/functions/gateway.ts";
import {
  demoCookieName,
  type DemoUser,
  startSettingsPage,
} from "../../local/settings_page/server.ts";
import { newControlToken } from "../../local/local_access.ts";

/** Long enough for a cold function, short enough that a broken page fails with its notice. */
const WAIT_MS = 20_000;

const user = (key: string): DemoUser => ({
  key,
  id: crypto.randomUUID(),
  email: `${key}@example.test`,
  label: `${key}@example.test`,
});

Deno.test({
  name: "the settings page in a browser",
  // playwright-core keeps its connection to Chromium open between steps.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const cleanups: (() => Promise<unknown>)[] = [];
    try {
      // First, so that a machine without Chromium fails at once, saying how to install it.
      const browser = await launchChromium();
      cleanups.push(() => browser.close());
      await Deno.mkdir(SCREENSHOTS_DIR, { recursive: true });

      const auth = await startTestAuth();
      cleanups.push(() => auth.close());
      const users = {
        alice: user("alice"),
        dana: user("dana"),
        erin: user("erin"),
      };

      // The gateway and the page come first: the callback's URL, the return URL and the allowed
      // origin are theirs, and the functions must know them when they start.
      let functionsOrigin = "http://127.0.0.1:9";
      const gateway = await startGateway({
        hostname: "127.0.0.1",
        port: 0,
        functionsOrigin: () => functionsOrigin,
        jwks: () => ({ keys: [] }),
      });
      cleanups.push(() => gateway.close());
      const controlToken = newControlToken();
      const settingsPage = startSettingsPage({
        port: 0,
        supabaseUrl: gateway.url,
        anonKey: auth.anonKey,
        demoUsers: Object.values(users),
        mintAccessToken: (u, ttlSeconds) =>
          auth.mint({ sub: u.id, expiresInSeconds: ttlSeconds, extraClaims: { email: u.email } }),
        scopes: CONNECT_SETTINGS.scopes.split(","),
        controlToken,
      });
      cleanups.push(() => settingsPage.close());

      const callbackUrl = `${gateway.url}/functions/v1/cafe24-callback`;
      const base = connectStackOptions(auth);
      const stack = await startRefreshStack({
        env: {
          ...base.env,
          CAFE24_REDIRECT_URI: callbackUrl,
          CAFE24_APP_RETURN_URL: settingsPage.url,
          CORS_ALLOWED_ORIGINS: settingsPage.origin,
        },
        sandbox: { redirectUri: callbackUrl, consentPage: true },
      });
      cleanups.push(() => stack.stop());
      functionsOrigin = new URL(stack.functions.url).origin;
      const { db, sandbox } = stack;

      // ---- helpers ------------------------------------------------------------------------------

      /** Every main-frame navigation request of a page, redirects included: method and URL. */
      const navigations = new WeakMap<Page, string[]>();
      const openPage = async (context: BrowserContext): Promise<Page> => {
        const page = await context.newPage();
        page.setDefaultTimeout(WAIT_MS);
        const hops: string[] = [];
        navigations.set(page, hops);
        page.on("request", (request: Request) => {
          if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
            hops.push(`${request.method()} ${request.url()}`);
          }
        });
        return page;
      };
      const newContext = async () => {
        const context = await browser.newContext();
        cleanups.push(() => context.close());
        return context;
      };

      const notice = (page: Page) =>
        page.locator("#notice").evaluate((n) => ({
          kind: n.getAttribute("data-kind"),
          code: n.getAttribute("data-code"),
          text: n.textContent ?? "",
        }));

      /** Waits for a notice of `kind` with `code` (null: none); fails with what the page shows. */
      const expectNotice = async (page: Page, kind: string, code: string | null) => {
        const selector = code === null
          ? `#notice[data-kind="${kind}"]:not([data-code])`
          : `#notice[data-kind="${kind}"][data-code="${code}"]`;
        try {
          await page.waitForSelector(selector);
        } catch {
          assert.fail(
            `expected a ${kind} notice${code === null ? "" : ` ${code}`}; the page shows ` +
              JSON.stringify(await notice(page).catch(() => null)) + ` at ${page.url()}`,
          );
        }
        return (await notice(page)).text;
      };

      const shot = (page: Page, name: string) =>
        page.screenshot({ path: new URL(`${name}.png`, SCREENSHOTS_DIR).pathname, fullPage: true });

      /** Opens the page from its launch link (as from npm start's banner) and signs in. */
      const signIn = async (page: Page, who: DemoUser) => {
        await page.goto(settingsPage.launchUrl);
        await page.waitForSelector("body[data-ready='true']");
        assert.equal(page.url(), settingsPage.url, "the key is gone from the address bar");
        await page.selectOption("#demo-user", who.key);
        await page.click("#sign-in-button");
        await page.waitForSelector(`body[data-signed-in="${who.id}"]`);
        await page.waitForSelector("#signed-in:not([hidden])");
      };

      /** Asks to connect `mall` and waits for Cafe24's consent page. */
      const startConnecting = async (page: Page, mall: string | null) => {
        if (mall === null) {
          await page.click(`#connections button.reconnect`);
        } else {
          await page.fill("#mall-id", mall);
          await page.click("#connect");
        }
        // The consent page, or this page's error notice when authorize failed (CORS, session, …).
        await page.waitForSelector("#approve, #notice[data-kind='error']");
        if (!page.url().startsWith(sandbox.url)) {
          assert.fail(`authorize did not lead to Cafe24: ${JSON.stringify(await notice(page))}`);
        }
      };

      /** The page's response to its `method` request to function `name` that `action` causes. */
      const responseTo = async (
        page: Page,
        method: string,
        name: string,
        action: () => Promise<unknown>,
      ) => {
        const response = page.waitForResponse((r) =>
          new URL(r.url()).pathname === `/functions/v1/${name}` && r.request().method() === method
        );
        response.catch(() => {}); // awaited below unless `action` fails first
        await action();
        try {
          return await response;
        } catch {
          return assert.fail(
            `the page sent no ${method} ${name}; it shows ` +
              JSON.stringify(await notice(page).catch(() => null)) + ` at ${page.url()}`,
          );
        }
      };

      /** Approves on the consent page; resolves to cafe24-callback's POST answer on the page. */
      const approveAndComplete = (page: Page) =>
        responseTo(page, "POST", "cafe24-callback", async () => {
          await page.click("#approve");
          await page.waitForURL((url) => url.href.startsWith(settingsPage.url));
        });

      /**
       * Every visible string of the page in both languages: each block (heading, cell, button,
       * label, paragraph, note) with English words has Korean, and the other way round. Values
       * are not strings of the page: mall IDs, emails, codes, scopes, dates and shop names.
       */
      const assertBilingual = async (page: Page) => {
        const offenders = await page.locator("body").evaluate((body) => {
          const found: string[] = [];
          const malls = [...body.querySelectorAll("[data-mall]")]
            .map((e) => e.getAttribute("data-mall") ?? "").filter((m) => m !== "");
          for (
            const block of body.querySelectorAll(
              "h1, h2, th, td:not(.shop), button, label, p, small, #notice",
            )
          ) {
            // An element with a lang is one half of a pair: its block is checked.
            if (block.hasAttribute("lang") || block.closest("#notice p") !== null) continue;
            if (block.getClientRects().length === 0 || block.closest("[hidden]") !== null) continue;
            const shown = (block as unknown as { innerText: string }).innerText;
            let text = shown;
            for (const mall of malls) text = text.replaceAll(mall, "");
            text = text
              .replace(/\S+@\S+/g, "") // emails
              .replace(/\b[A-Z][A-Z0-9_]{2,}\b/g, "") // codes
              .replace(/\b[a-z]+(\.[a-z_]+)+\b/g, "") // scopes
              .replace(/\bmyshop\b/g, "");
            const english = /[A-Za-z]/.test(text);
            const korean = /[\uac00-\ud7a3]/.test(text);
            if (english !== korean) found.push(shown.trim().slice(0, 80));
          }
          return found;
        });
        assert.deepEqual(offenders, [], "strings in one language only");
      };
      const scrollWidth = (page: Page) => page.locator("html").evaluate((html) => html.scrollWidth);

      const row = (page: Page, mall: string) =>
        page.locator(`#connections tr[data-mall="${mall}"]`);

      // The pair lives in the connection's private row (providers.cafe24 keeps no copy).
      const rowsOf = async (userId: string) => [
        ...await db.sql<{ mall_id: string; has_tokens: boolean }[]>`
          select s.providers -> 'cafe24' ->> 'mall_id' as mall_id,
            (c.refresh_token is not null) as has_tokens
          from public.auth_settings s
          left join cafe24_private.connections c on c.auth_settings_id = s.id
          where s.user_id = ${userId} order by 1`,
      ];

      // ---- scenarios ---------------------------------------------------------------------------

      await t.step("sign-in wants the launch link's key, kept in an HttpOnly cookie", async () => {
        const context = await newContext();
        const tryToSignIn = async (url: string) => {
          const page = await openPage(context);
          await page.goto(url);
          await page.waitForSelector("body[data-ready='true']");
          assert.equal(page.url(), settingsPage.url, "no fragment left in the address bar");
          return page;
        };
        const signInAs = async (page: Page, who: DemoUser) => {
          const answer = page.waitForResponse((r) => new URL(r.url()).pathname === "/demo-session");
          answer.catch(() => {}); // awaited below unless the form fails first
          await page.selectOption("#demo-user", who.key);
          await page.click("#sign-in-button");
          return await answer;
        };

        // The page's own address, without the key: no session, and the page says how to get one.
        const bare = await tryToSignIn(settingsPage.url);
        assert.equal((await signInAs(bare, users.alice)).status(), 403);
        assert.match(
          await expectNotice(bare, "error", "DEMO_KEY_REQUIRED"),
          /open this page from the link npm start printed/,
        );
        assert.equal(await bare.locator("body").getAttribute("data-signed-in"), "");
        await shot(bare, "0a-sign-in-without-the-key");

        // A key that is not this stack's: refused at once, and still no session.
        const wrong = await tryToSignIn(`${settingsPage.url}#key=${newControlToken()}`);
        await expectNotice(wrong, "error", "DEMO_KEY_INVALID");
        assert.equal((await signInAs(wrong, users.alice)).status(), 403);
        assert.deepEqual(await context.cookies(), []);

        // The launch link: a cookie no script can read and no other site's request carries.
        const launched = await tryToSignIn(settingsPage.launchUrl);
        const [cookie, ...others] = await context.cookies();
        assert.equal(others.length, 0);
        assert.equal(cookie?.name, demoCookieName(settingsPage.port));
        assert.equal(cookie?.httpOnly, true);
        assert.equal(cookie?.sameSite, "Strict");
        assert.notEqual(cookie?.value, controlToken, "the cookie is not the stack's token");
        assert.equal(await launched.evaluate("document.cookie"), "");
        assert.equal((await signInAs(launched, users.alice)).status(), 200);
        await launched.waitForSelector(`body[data-signed-in="${users.alice.id}"]`);
        // Another tab of the same browser, opened on the bare address (signed in as alice, the
        // session being shared), signs out and in as someone else: the cookie is enough.
        const again = await tryToSignIn(settingsPage.url);
        await again.click("#sign-out");
        assert.equal((await signInAs(again, users.dana)).status(), 200);
        await again.waitForSelector(`body[data-signed-in="${users.dana.id}"]`);
        await context.clearCookies();
      });

      await t.step("a page on a hostname rebound to 127.0.0.1 reads nothing", async () => {
        const page = await openPage(await newContext());
        for (
          const [server, origin, path] of [
            ["the settings page", settingsPage.url, "/"],
            ["the gateway", gateway.url, "/auth/v1/.well-known/jwks.json"],
            ["the Cafe24 sandbox", sandbox.url, "/__sandbox/counters"],
          ]
        ) {
          const rebound = new URL(path!, origin);
          rebound.hostname = REBOUND_HOSTNAME;
          const response = await page.goto(rebound.href);
          assert.equal(response?.status(), 421, `${server} at ${rebound.href}`);
          const body = JSON.parse(await response!.text());
          assert.equal(body.error, "MISDIRECTED_REQUEST", server);
        }
        // The page's own sign-in, asked from the rebound origin: refused before anything else.
        const demo = await page.evaluate(async () => {
          const response = await fetch("/demo-session", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ user: "alice" }),
          });
          return { status: response.status, text: await response.text() };
        });
        assert.equal(demo.status, 421, demo.text);
      });

      const alice = await openPage(await newContext());

      await t.step("connect: page → Cafe24 consent → callback → page, completed", async () => {
        for (const mall of ["happyshop", "denyshop", "sharedshop"]) sandbox.addMall(mall);
        await signIn(alice, users.alice);
        await alice.waitForSelector("#connections tr.empty");

        await startConnecting(alice, "happyshop");
        assert.equal(await alice.locator("#mall").innerText(), "happyshop");
        assert.deepEqual(
          await alice.locator("#scopes li").allInnerTexts(),
          CONNECT_SETTINGS.scopes.split(","),
        );
        const completion = await approveAndComplete(alice);
        assert.equal(completion.status(), 200);
        // The browser itself went every hop: the page, Cafe24 (GET, then the consent POST), the
        // callback with a code, and back to the page.
        const hops = navigations.get(alice)!;
        const origins = hops.map((hop) => {
          const [method, url] = hop.split(" ");
          return `${method} ${new URL(url!).origin}${new URL(url!).pathname}`;
        });
        const mallPath = `${sandbox.url}/happyshop/api/v2/oauth/authorize`;
        assert.deepEqual(origins.slice(-5), [
          `GET ${settingsPage.url}`,
          `GET ${mallPath}`,
          `POST ${mallPath}`,
          `GET ${callbackUrl}`,
          `GET ${settingsPage.url}`,
        ], hops.join("\n"));
        assert.match(hops.at(-2)!, /[?&]code=/);

        const text = await expectNotice(alice, "success", null);
        assert.match(text, /happyshop is connected \(shop 1\)/);
        assert.match(text, /happyshop 쇼핑몰이 연결되었습니다/);
        assert.equal(alice.url(), settingsPage.url, "the handle is gone from the address bar");
        await row(alice, "happyshop").locator("td.status.status-active").waitFor();
        assert.match(await row(alice, "happyshop").locator("td.needs-reconnect").innerText(), /No/);
        assert.match(await row(alice, "happyshop").locator("td.shop").innerText(), /^1/);
        assert.deepEqual(await rowsOf(users.alice.id), [{
          mall_id: "happyshop",
          has_tokens: true,
        }]);
        await shot(alice, "1-connected");
      });

      await t.step("the owner denies consent: told so, nothing stored", async () => {
        await startConnecting(alice, "denyshop");
        await alice.click("#deny");
        await alice.waitForURL((url) => url.href.startsWith(settingsPage.url));
        const text = await expectNotice(alice, "error", "ACCESS_DENIED");
        assert.match(text, /Access was not allowed at Cafe24/);
        assert.match(text, /카페24에서 앱 접근을 허용하지 않아/);
        assert.equal(alice.url(), settingsPage.url, "?cafe24=error&reason=… is removed");
        assert.equal(await row(alice, "denyshop").count(), 0);
        assert.deepEqual(await rowsOf(users.alice.id), [{
          mall_id: "happyshop",
          has_tokens: true,
        }]);
        await shot(alice, "2-denied");
      });

      await t.step("another account completing someone's connection is refused", async () => {
        // Dana starts connecting; the Cafe24 link ends up in Erin's browser, signed in as Erin.
        const dana = await openPage(await newContext());
        await signIn(dana, users.dana);
        await startConnecting(dana, "sharedshop");
        const consentUrl = dana.url();

        const erin = await openPage(await newContext());
        await signIn(erin, users.erin);
        await erin.goto(consentUrl);
        const refused = await approveAndComplete(erin);
        assert.equal(refused.status(), 403);
        const erinText = await expectNotice(erin, "error", "CONNECT_USER_MISMATCH");
        assert.match(erinText, /started from another account, so it was cancelled/);
        assert.match(erinText, /Sign in as yourself and start connecting again/);
        assert.equal(erin.url(), settingsPage.url);
        assert.equal(await row(erin, "sharedshop").count(), 0);
        await shot(erin, "3a-other-account-refused");

        // Dana's own approval now finds the attempt used up, and she is told to start again.
        await dana.click("#approve");
        await dana.waitForURL((url) => url.href.startsWith(settingsPage.url));
        const danaText = await expectNotice(dana, "error", "STATE_REPLAYED");
        assert.match(danaText, /already used\. Please start connecting again/);
        assert.deepEqual(await rowsOf(users.dana.id), []);
        assert.deepEqual(await rowsOf(users.erin.id), []);
        await shot(dana, "3b-initiator-told-to-start-again");

        // Starting again, as herself, connects.
        await startConnecting(dana, "sharedshop");
        assert.equal((await approveAndComplete(dana)).status(), 200);
        await expectNotice(dana, "success", null);
        await row(dana, "sharedshop").locator("td.status.status-active").waitFor();
        assert.deepEqual(await rowsOf(users.dana.id), [{
          mall_id: "sharedshop",
          has_tokens: true,
        }]);
      });

      await t.step("reconnect after reconnect_required", async () => {
        sandbox.revokeRefreshToken("happyshop");
        const run = await (await stack.refresh({ mall_id: "happyshop", force: "true" })).json();
        assert.equal(run.failed, 1, JSON.stringify(run));

        await alice.click("#reload-status");
        const dead = row(alice, "happyshop");
        await dead.locator("td.status.status-reconnect_required").waitFor();
        assert.match(await dead.locator("td.needs-reconnect").innerText(), /Yes/);
        assert.equal(
          await dead.locator("td.status small.why").getAttribute("data-code"),
          "CAFE24_INVALID_GRANT",
        );
        assert.match(await dead.innerText(), /Cafe24 no longer accepts this mall's access/);
        // A dead connection's access token is not usable: no expiry shown as if it were.
        assert.equal(await dead.locator("td.access-expiry time").count(), 0);
        assert.match(
          await dead.locator("td.access-expiry").innerText(),
          /사용할 수 없음\s+not usable/,
        );
        await shot(alice, "4a-reconnect-required");

        await startConnecting(alice, null);
        assert.equal(await alice.locator("#mall").innerText(), "happyshop");
        assert.equal((await approveAndComplete(alice)).status(), 200);
        assert.match(await expectNotice(alice, "success", null), /happyshop is connected/);
        await row(alice, "happyshop").locator("td.status.status-active").waitFor();
        assert.equal(await row(alice, "happyshop").locator("button.reconnect").count(), 0);
        await shot(alice, "4b-reconnected");
      });

      await t.step("refresh now, then again at once: throttled, said politely", async () => {
        const first = await responseTo(
          alice,
          "POST",
          "cafe24-refresh",
          () => alice.click("#refresh-now"),
        );
        assert.equal(first.status(), 200);
        // Refreshed, or (the mall's pair being new) nothing, and why: never "0 refreshed".
        assert.match(
          await expectNotice(alice, "success", null),
          /Refresh done: [1-9]\d* refreshed|Nothing was refreshed: \w/,
        );

        const limited = await responseTo(
          alice,
          "POST",
          "cafe24-refresh",
          () => alice.click("#refresh-now"),
        );
        assert.equal(limited.status(), 429);
        const retryAfter = Number(limited.headers()["retry-after"]);
        assert.ok(retryAfter >= 1 && retryAfter <= 30, `Retry-After ${retryAfter}`);
        const text = await expectNotice(alice, "error", "RATE_LIMITED");
        assert.match(text, new RegExp(`Please try again in ${retryAfter} seconds`));
        assert.match(text, new RegExp(`${retryAfter}초 후에 다시 시도해 주세요`));
        await shot(alice, "5-refresh-throttled");
      });

      await t.step("at 390 px: nothing overflows, every string in both languages", async () => {
        const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
        cleanups.push(() => context.close());
        const phone = await openPage(context);
        await signIn(phone, users.alice);
        const active = row(phone, "happyshop");
        await active.locator("td.status.status-active").waitFor();
        assert.ok((await scrollWidth(phone)) <= 390, `scrollWidth ${await scrollWidth(phone)}`);
        // Relative times, in both languages.
        const relative = await active.locator("td.access-expiry small.relative").innerText();
        assert.match(relative, /\d+(분|시간|일) (후|전)/);
        assert.match(relative, /in \d+ (min|h|d)|\d+ (min|h|d) ago/);
        await assertBilingual(phone);
        await shot(phone, "7a-phone");

        // "Refresh now" when the tokens were just refreshed (the throttle of the step above let
        // go): nothing refreshed, and why, in both languages.
        await db.sql`
          delete from cafe24_private.user_refresh_starts where user_id = ${users.alice.id}`;
        const again = await responseTo(
          phone,
          "POST",
          "cafe24-refresh",
          () => phone.click("#refresh-now"),
        );
        assert.equal(again.status(), 200);
        const said = await expectNotice(phone, "success", null);
        assert.match(said, /Nothing was refreshed: the tokens are still fresh\./);
        assert.match(said, /새로 고친 연결이 없습니다: 토큰이 아직 충분히 유효합니다/);
        assert.ok((await scrollWidth(phone)) <= 390);
        await assertBilingual(phone);

        // A bad mall ID: the format, in both languages, and no trip anywhere.
        await phone.fill("#mall-id", "Bad-Mall!");
        await phone.click("#connect");
        const bad = await expectNotice(phone, "error", "INVALID_MALL_ID");
        assert.match(bad, /4~16자/);
        assert.match(bad, /4 to 16 lowercase letters and digits, starting with a letter/);
        assert.equal(phone.url(), settingsPage.url);
        assert.ok((await scrollWidth(phone)) <= 390);
        await assertBilingual(phone);
        await shot(phone, "7b-phone-bad-mall-id");

        // A mall Cafe24 does not have: its own page, in both languages, with a way back.
        await phone.fill("#mall-id", "nosuchmall");
        await phone.click("#connect");
        await phone.waitForSelector("#not-found");
        assert.ok(phone.url().startsWith(sandbox.url), phone.url());
        assert.match(await phone.locator("body").innerText(), /쇼핑몰을 찾을 수 없습니다/);
        assert.match(await phone.locator("body").innerText(), /Mall not found/);
        assert.ok((await scrollWidth(phone)) <= 390);
        await shot(phone, "7c-phone-unknown-mall");
        await phone.click("#back");
        await phone.waitForURL((url) => url.href.startsWith(settingsPage.url));
        await expectNotice(phone, "error", "AUTHORIZATION_FAILED");
        assert.ok((await scrollWidth(phone)) <= 390);
        await assertBilingual(phone);

        // Signing out clears what the notice said about the account.
        await phone.click("#sign-out");
        await phone.waitForSelector("#sign-in:not([hidden])");
        assert.equal(await phone.locator("#notice").innerText(), "");
        assert.equal(await phone.locator("#notice").getAttribute("data-kind"), null);
        await assertBilingual(phone);
        await shot(phone, "7d-phone-signed-out");
      });

      await t.step("disconnect: tokens removed and revoked at Cafe24", async () => {
        const revokesBefore = sandbox.counters().requests.revoke;
        alice.once("dialog", (dialog) => dialog.accept());
        const answer = await responseTo(
          alice,
          "POST",
          "cafe24-disconnect",
          () => row(alice, "happyshop").locator("button.disconnect").click(),
        );
        assert.equal(answer.status(), 200);
        assert.match(
          await expectNotice(alice, "success", null),
          /happyshop is disconnected, and the app's access was revoked at Cafe24/,
        );
        const gone = row(alice, "happyshop");
        await gone.locator("td.status.status-disconnected").waitFor();
        assert.match(await gone.innerText(), /You disconnected this mall/);
        assert.equal(await gone.locator("button.disconnect").count(), 0);
        assert.equal(
          await gone.locator("button.reconnect").count(),
          1,
          "it can be connected again",
        );
        assert.equal(sandbox.counters().requests.revoke, revokesBefore + 1);
        assert.deepEqual(await rowsOf(users.alice.id), [
          { mall_id: "happyshop", has_tokens: false },
        ]);
        await shot(alice, "6-disconnected");
      });
    } finally {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    }
  },
});
