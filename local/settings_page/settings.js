// The reference "Cafe24 connection" settings page: connect a mall, refresh now, disconnect, and
// the connections' status. Plain ES module, no build step, plain fetch. Copy what you need:
//
//   1. sign-in            the only local-only part (SIGN-IN below); in your app, supabase.auth
//   2. the five calls     authorize, complete, refresh, disconnect, status (CALLS below)
//   3. MESSAGES           every code the functions answer, as a sentence in Korean and English
//   4. the return visit   reading and removing #cafe24=pending&handle=… (RETURN below)
//
// Connecting is two steps. cafe24-authorize answers Cafe24's URL, the browser goes there, the
// owner approves, and Cafe24 sends the browser through cafe24-callback back to this page with a
// one-time handle in the URL fragment. Only the session that started the connection can complete
// it with that handle: a handle that reaches anyone else is cancelled (CONNECT_USER_MISMATCH).

// ---- configuration -----------------------------------------------------------------------------

/**
 * `supabaseUrl` (the functions are under `${supabaseUrl}/functions/v1/`), `anonKey`, and for the
 * form `defaultMallId` and `scopes` (the app's allowed Cafe24 scopes, CAFE24_SCOPES).
 */
function readConfig() {
  const element = document.getElementById("app-config");
  return JSON.parse(element?.textContent ?? "{}");
}

// ---- SIGN-IN (local only) ----------------------------------------------------------------------
//
// The local stack has no Supabase Auth, so this page's own server hands out sessions for demo
// users (POST /demo-session). In your app this whole section is supabase-js:
//
//   const { data: { session } } = await supabase.auth.getSession();   // session.access_token
//   supabase.auth.onAuthStateChange((_event, session) => …);
//
// The session is kept in localStorage, as supabase-js keeps it, so it survives the trip to Cafe24
// and back and is shared by every tab of this page.
//
// The local server hands a demo session only to a browser that opened this page from the link
// `npm start` printed: its fragment carries the stack's token (#key=…), which the page trades at
// once for an HttpOnly cookie (POST /demo-key) and removes from the address bar.

const SESSION_KEY = "cafe24-settings-demo.session";

function currentSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null");
    if (session === null || typeof session.access_token !== "string") return null;
    if (typeof session.expires_at === "number" && session.expires_at * 1000 <= Date.now()) {
      return null;
    }
    return session;
  } catch {
    return null;
  }
}

async function listDemoUsers() {
  const response = await fetch("./demo-users");
  return response.ok ? await response.json() : [];
}

/** Trades the link's key for the session cookie; the error code when the server refuses it. */
async function exchangeDemoKey(key) {
  try {
    const response = await fetch("./demo-key", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key }),
    });
    if (response.ok) return null;
    return (await response.json().catch(() => ({}))).error ?? "UNEXPECTED_RESPONSE";
  } catch {
    return "NETWORK_ERROR";
  }
}

/** `{ session }`, or `{ error }` with a code (DEMO_KEY_REQUIRED: not opened from the link). */
async function signInAsDemoUser(key) {
  let response;
  try {
    response = await fetch("./demo-session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: key }),
    });
  } catch {
    return { error: "NETWORK_ERROR" };
  }
  if (!response.ok) {
    return { error: (await response.json().catch(() => ({}))).error ?? "UNEXPECTED_RESPONSE" };
  }
  const session = await response.json();
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return { session };
}

function signOut() {
  localStorage.removeItem(SESSION_KEY);
}

// ---- CALLS: the five requests the page makes ---------------------------------------------------
//
// Each one with supabase-js, which sends the same headers (Authorization: Bearer <access token>,
// apikey) to the same URLs:
//
//   authorize   supabase.functions.invoke(`cafe24-authorize?mall_id=${mallId}&mode=json`, { method: "GET" })
//   complete    supabase.functions.invoke("cafe24-callback", { body: { handle } })
//   refresh     supabase.functions.invoke("cafe24-refresh", { body: { force: true } })
//   disconnect  supabase.functions.invoke("cafe24-disconnect", { body: { auth_settings_id } })
//   status      supabase.from("cafe24_connections").select()
//
// The status read goes through the Data API on Supabase; the local stack has none, so here it is
// GET cafe24-connections, which answers the same rows for the same session.

/**
 * Calls a function as the signed-in user. Resolves to `{ ok, status, body, retryAfter }`; `body`
 * always has `error` when `ok` is false: the function's code, NETWORK_ERROR when no answer arrived
 * (offline, or a CORS refusal, which browsers report the same way), or UNEXPECTED_RESPONSE.
 */
async function callFunction(config, session, name, { method = "POST", query, body } = {}) {
  if (session === null) return { ok: false, status: 0, body: { error: "SIGNED_OUT" } };
  const url = new URL(`functions/v1/${name}`, config.supabaseUrl.replace(/\/?$/, "/"));
  for (const [key, value] of Object.entries(query ?? {})) url.searchParams.set(key, value);
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        Authorization: `Bearer ${session.access_token}`,
        apikey: config.anonKey,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    return { ok: false, status: 0, body: { error: "NETWORK_ERROR" } };
  }
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    // handled below
  }
  const answer = parsed !== null && typeof parsed === "object" ? parsed : null;
  const retryAfter = Number(response.headers.get("Retry-After"));
  if (!response.ok) {
    return {
      ok: false,
      status: response.status,
      body: typeof answer?.error === "string" ? answer : { error: "UNEXPECTED_RESPONSE" },
      retryAfter: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
    };
  }
  if (answer === null) {
    return { ok: false, status: response.status, body: { error: "UNEXPECTED_RESPONSE" } };
  }
  return { ok: true, status: response.status, body: answer };
}

/** Step one: Cafe24's authorization URL for `mallId` (`scopes` empty: the app's default). */
function authorize(config, session, mallId, scopes) {
  const query = { mall_id: mallId, mode: "json" };
  if (scopes.length > 0) query.scope = scopes.join(",");
  return callFunction(config, session, "cafe24-authorize", { method: "GET", query });
}

/** Step two, back from Cafe24: the handle from the fragment, with the same user's session. */
function complete(config, session, handle) {
  return callFunction(config, session, "cafe24-callback", { body: { handle } });
}

/** "Refresh now": the user's own connections; at most one start per 30 s (429 RATE_LIMITED). */
function refreshNow(config, session) {
  return callFunction(config, session, "cafe24-refresh", { body: { force: true } });
}

function disconnect(config, session, authSettingsId) {
  return callFunction(config, session, "cafe24-disconnect", {
    body: { auth_settings_id: authSettingsId },
  });
}

function readConnections(config, session) {
  return callFunction(config, session, "cafe24-connections", { method: "GET" });
}

// ---- MESSAGES: every code, as a sentence a shop owner understands ------------------------------
//
// The codes are the functions' stable error codes (supabase/functions/_shared/platform/errors.ts:
// request errors, the callback's ?reason=, connect warnings, revoke results, refresh failures and
// why a connection was disconnected) plus three of this page's own (SIGNED_OUT, NETWORK_ERROR,
// UNEXPECTED_RESPONSE) and two of the local sign-in (DEMO_KEY_REQUIRED, DEMO_KEY_INVALID). {name} is filled in from the answer. A code missing here is shown with the
// generic sentence and the code itself.

const TRY_AGAIN = { ko: "잠시 후 다시 시도해 주세요.", en: "Please try again in a moment." };
const RECONNECT = { ko: "쇼핑몰을 다시 연결해 주세요.", en: "Please connect the mall again." };
const START_AGAIN = { ko: "처음부터 다시 연결해 주세요.", en: "Please start connecting again." };
const OPERATOR = {
  ko: "앱 운영자에게 알려 주세요.",
  en: "Please let the app's operator know.",
};
const RETRIED = {
  ko: "자동으로 다시 시도하니 기다려 주세요.",
  en: "It is retried automatically; nothing to do for now.",
};
const both = (ko, en, then) => ({ ko: `${ko} ${then.ko}`, en: `${en} ${then.en}` });

export const MESSAGES = {
  // Any call
  UNAUTHORIZED: {
    ko: "로그인이 만료되었거나 확인할 수 없습니다. 다시 로그인해 주세요.",
    en: "Your sign-in has expired or could not be verified. Please sign in again.",
  },
  CRON_SECRET_NOT_CONFIGURED: both(
    "서비스 설정이 아직 끝나지 않았습니다.",
    "The service is not fully set up yet.",
    OPERATOR,
  ),
  CONFIG_MISSING: both(
    "서비스 설정 일부가 빠져 있습니다.",
    "Part of the service's setup is missing.",
    OPERATOR,
  ),
  CONFIG_INVALID: both(
    "서비스 설정에 잘못된 값이 있습니다.",
    "The service's setup has a wrong value.",
    OPERATOR,
  ),
  INVALID_REQUEST: {
    ko: "요청을 처리할 수 없습니다. 페이지를 새로 고친 뒤 다시 시도해 주세요.",
    en: "The request could not be understood. Reload the page and try again.",
  },
  BODY_TOO_LARGE: {
    ko: "보낸 내용이 너무 큽니다. 페이지를 새로 고친 뒤 다시 시도해 주세요.",
    en: "What was sent is too large. Reload the page and try again.",
  },
  METHOD_NOT_ALLOWED: {
    ko: "이 작업은 지원되지 않습니다. 페이지를 새로 고쳐 주세요.",
    en: "This action is not supported. Please reload the page.",
  },
  NOT_FOUND: {
    ko: "해당 연결을 찾을 수 없습니다. 이미 해제되었을 수 있습니다.",
    en: "That connection could not be found; it may already be disconnected.",
  },
  INTERNAL_ERROR: both(
    "예기치 않은 문제가 생겼습니다.",
    "Something unexpected went wrong.",
    TRY_AGAIN,
  ),
  DATABASE_UNAVAILABLE: both(
    "서비스에 일시적인 문제가 있습니다.",
    "The service is having a temporary problem.",
    TRY_AGAIN,
  ),
  FUNCTIONS_UNAVAILABLE: both(
    "서비스가 응답하지 않습니다.",
    "The service is not answering.",
    TRY_AGAIN,
  ),

  // Refresh now
  RATE_LIMITED: {
    ko: "방금 새로 고침을 시작했습니다. {seconds}초 후에 다시 시도해 주세요.",
    en: "A refresh was started moments ago. Please try again in {seconds} seconds.",
  },
  REFRESH_RUN_FAILED: both(
    "토큰 새로 고침을 끝내지 못했습니다.",
    "The token refresh could not finish.",
    TRY_AGAIN,
  ),

  // Connecting: authorize
  INVALID_MALL_ID: {
    ko: "쇼핑몰 ID는 영문 소문자로 시작하는 4~16자의 영문 소문자와 숫자입니다.",
    en: "A mall ID is 4 to 16 lowercase letters and digits, starting with a letter.",
  },
  INVALID_SCOPE: {
    ko: "선택한 권한 중 이 앱이 요청할 수 없는 권한이 있습니다.",
    en: "Some of the chosen permissions are not ones this app may ask for.",
  },

  // Connecting: back from Cafe24 (?cafe24=error&reason=…)
  STATE_INVALID: both(
    "연결 요청을 확인할 수 없습니다.",
    "The connection request could not be verified.",
    START_AGAIN,
  ),
  STATE_EXPIRED: both(
    "연결에 10분 넘게 걸려 요청이 만료되었습니다.",
    "Connecting took longer than 10 minutes, so the request expired.",
    START_AGAIN,
  ),
  STATE_REPLAYED: both(
    "이 연결 링크는 이미 사용되었습니다.",
    "This connection link was already used.",
    START_AGAIN,
  ),
  STATE_MALL_MISMATCH: {
    ko:
      "요청한 쇼핑몰이 아닌 다른 쇼핑몰에서 승인되었습니다. 올바른 쇼핑몰 ID로 다시 연결해 주세요.",
    en:
      "Cafe24 approved a different mall than the one asked for. Connect again with the right mall ID.",
  },
  ACCESS_DENIED: {
    ko:
      "카페24에서 앱 접근을 허용하지 않아 연결되지 않았습니다. 연결하려면 다시 시도해 '승인'을 눌러 주세요.",
    en:
      "Access was not allowed at Cafe24, so the mall was not connected. To connect, try again and choose Approve.",
  },
  AUTHORIZATION_FAILED: both(
    "카페24가 승인 중 오류를 알려 왔습니다.",
    "Cafe24 reported a problem during the approval.",
    START_AGAIN,
  ),
  MISSING_CODE: both(
    "카페24에서 승인 정보가 오지 않았습니다.",
    "Cafe24 did not send the approval.",
    START_AGAIN,
  ),
  TOKEN_EXCHANGE_REJECTED: both(
    "카페24가 승인을 받아들이지 않았습니다(만료되었거나 이미 사용됨).",
    "Cafe24 did not accept the approval (it expired or was already used).",
    START_AGAIN,
  ),
  CAFE24_UNAVAILABLE: both(
    "카페24에 연결할 수 없습니다.",
    "Cafe24 could not be reached.",
    TRY_AGAIN,
  ),
  TOKEN_RESPONSE_INVALID: both(
    "카페24의 응답이 완전하지 않았습니다.",
    "Cafe24's answer was incomplete.",
    START_AGAIN,
  ),
  CONNECTION_STORE_FAILED: both(
    "연결 정보를 저장하지 못했습니다.",
    "The connection could not be saved.",
    START_AGAIN,
  ),

  // Connecting: completing with the handle
  SCOPE_NOT_REQUESTED: both(
    "카페24가 앱이 요청하지 않은 권한을 부여했습니다(카페24 링크가 바뀌었나요?). 아무것도 저장하지 않았습니다.",
    "Cafe24 granted permissions the app did not ask for (was the Cafe24 link changed?). Nothing was kept.",
    START_AGAIN,
  ),
  TOO_MANY_PENDING_CONNECTIONS: both(
    "완료를 기다리는 연결이 너무 많습니다. 10분 후 만료되면 다시 시도해 주세요.",
    "Too many connections are waiting to be completed. Try again once they expire (10 minutes).",
    START_AGAIN,
  ),
  HANDLE_INVALID: both(
    "이 연결 결과는 알 수 없거나, 이미 사용되었거나, 만료되었습니다.",
    "This connection result is unknown, already used or expired.",
    START_AGAIN,
  ),
  CONNECT_USER_MISMATCH: {
    ko:
      "이 연결은 다른 계정에서 시작되어 취소되었습니다. 본인 계정으로 로그인한 상태에서 처음부터 다시 연결해 주세요.",
    en:
      "This connection was started from another account, so it was cancelled. Sign in as yourself and start connecting again.",
  },
  SHOPS_LOOKUP_FAILED: {
    ko: "쇼핑몰은 연결되었지만 상점 목록을 읽지 못해 상점이 아직 선택되지 않았습니다.",
    en: "The mall is connected, but its shops could not be read, so no shop is chosen yet.",
  },

  // Disconnecting: revoking the app's access at Cafe24
  REVOKE_REJECTED: {
    ko:
      "연결은 해제했지만 카페24가 권한 회수를 거절했습니다. 카페24 관리자 화면에서 앱을 삭제할 수 있습니다.",
    en:
      "Disconnected, but Cafe24 refused to revoke the app's access; you can remove the app in your Cafe24 admin.",
  },
  REVOKE_UNREACHABLE: {
    ko:
      "연결은 해제했지만 카페24에 연결할 수 없어 권한을 회수하지 못했습니다. 남은 권한은 14일 안에 만료됩니다.",
    en:
      "Disconnected, but Cafe24 could not be reached to revoke the app's access; what is left expires within 14 days.",
  },
  NO_TOKENS: {
    ko: "연결에 남아 있는 권한이 없어 회수할 것이 없었습니다.",
    en: "The connection held no access any more, so there was nothing to revoke.",
  },

  // The status table: why a refresh failed (last_error_code)
  CAFE24_INVALID_GRANT: both(
    "카페24가 이 쇼핑몰의 접근 권한을 더 이상 인정하지 않습니다.",
    "Cafe24 no longer accepts this mall's access.",
    RECONNECT,
  ),
  CAFE24_ANSWER_LOST: both(
    "카페24의 응답을 받지 못한 뒤 접근 권한이 무효가 되었습니다.",
    "An answer from Cafe24 was lost, and the mall's access is no longer valid.",
    RECONNECT,
  ),
  CAFE24_CLIENT_AUTH_FAILED: {
    ko:
      "카페24가 앱의 인증 정보를 거절했습니다. 앱 운영자에게 알려 주세요. 자동으로 다시 시도합니다.",
    en:
      "Cafe24 rejected the app's credentials. Please let the app's operator know; it is retried automatically.",
  },
  CAFE24_REJECTED: both("카페24가 갱신 요청을 거절했습니다.", "Cafe24 refused a refresh.", RETRIED),
  CAFE24_RATE_LIMITED: both(
    "카페24 요청 한도에 도달했습니다.",
    "Cafe24's request limit was reached.",
    RETRIED,
  ),
  CAFE24_SERVER_ERROR: both(
    "카페24 서버에 오류가 있었습니다.",
    "Cafe24 had a server error.",
    RETRIED,
  ),
  CAFE24_UNEXPECTED_STATUS: both(
    "카페24가 예상하지 못한 응답을 보냈습니다.",
    "Cafe24 sent an unexpected answer.",
    RETRIED,
  ),
  CAFE24_MALFORMED_RESPONSE: both(
    "카페24의 응답이 완전하지 않았습니다.",
    "Cafe24's answer was incomplete.",
    RETRIED,
  ),
  CAFE24_TIMEOUT: both(
    "카페24가 제때 응답하지 않았습니다.",
    "Cafe24 did not answer in time.",
    RETRIED,
  ),
  CAFE24_NETWORK_ERROR: both(
    "카페24에 연결할 수 없었습니다.",
    "Cafe24 could not be reached.",
    RETRIED,
  ),
  STORE_FAILED: both(
    "새 토큰을 저장하지 못했습니다.",
    "The new tokens could not be saved.",
    RETRIED,
  ),
  LEASE_LOST: both("갱신이 도중에 중단되었습니다.", "A refresh was interrupted.", RETRIED),

  // The app's server code asking for a token (cafe24-token)
  RECONNECT_REQUIRED: both(
    "이 쇼핑몰의 연결을 사용할 수 없습니다.",
    "This mall's connection cannot be used.",
    RECONNECT,
  ),
  MALL_ID_AMBIGUOUS: both(
    "이 쇼핑몰 ID로 연결된 항목이 여러 개 있습니다.",
    "Several connections hold this mall ID.",
    OPERATOR,
  ),
  TOKEN_UNAVAILABLE: both(
    "카페24 접근 토큰을 지금 받을 수 없습니다.",
    "No Cafe24 access token can be had right now.",
    TRY_AGAIN,
  ),
  TOKEN_KEY_UNAVAILABLE: both(
    "이 연결의 토큰을 여는 데 필요한 암호화 키가 없습니다.",
    "The key needed to open this connection's tokens is missing.",
    OPERATOR,
  ),
  REFRESH_IN_PROGRESS: both(
    "토큰 갱신이 아직 진행 중입니다.",
    "A token refresh is still in progress.",
    TRY_AGAIN,
  ),
  INVALID_PATH: {
    ko: "카페24 Admin API 경로가 올바르지 않습니다 (/api/v2/admin/ 아래의 경로만 가능합니다).",
    en: "The Cafe24 Admin API path is not valid (only paths under /api/v2/admin/).",
  },

  // The status table: why a connection was disconnected (last_error_code)
  CONNECTION_TAKEN_OVER: {
    ko: "다른 계정이 이 쇼핑몰을 연결하여 이 계정의 연결이 해제되었습니다.",
    en: "Another account connected this mall, so it was disconnected here.",
  },
  DISCONNECTED_BY_USER: {
    ko: "연결을 해제했습니다.",
    en: "You disconnected this mall.",
  },
  DISCONNECTED_BY_APP: {
    ko: "앱이 이 쇼핑몰의 연결을 해제했습니다.",
    en: "The app disconnected this mall.",
  },
  APP_UNINSTALLED: {
    ko: "카페24에서 앱이 삭제되어 연결이 해제되었습니다.",
    en: "The app was removed at Cafe24, so the mall was disconnected.",
  },

  // This page's own
  SIGNED_OUT: { ko: "먼저 로그인해 주세요.", en: "Please sign in first." },
  // The local page's sign-in (POST /demo-key, /demo-session)
  DEMO_KEY_REQUIRED: {
    ko:
      "로그인하려면 npm start가 출력한 링크(.local/stack.json의 settings_page_url)로 이 페이지를 여세요.",
    en:
      "To sign in, open this page from the link npm start printed (settings_page_url in .local/stack.json).",
  },
  DEMO_KEY_INVALID: {
    ko:
      "링크의 키가 지금 실행 중인 npm start의 것이 아닙니다. 그 npm start가 출력한 링크로 다시 여세요.",
    en: "The link's key is not the running npm start's. Open the link that npm start printed.",
  },
  NETWORK_ERROR: {
    ko: "서버에 연결할 수 없습니다. 인터넷 연결을 확인한 뒤 다시 시도해 주세요.",
    en: "The server could not be reached. Check your connection and try again.",
  },
  UNEXPECTED_RESPONSE: both(
    "서버의 응답을 이해할 수 없습니다.",
    "The server's answer could not be understood.",
    TRY_AGAIN,
  ),
};

/** Sentences for what went well, and the labels of the status table. */
export const TEXT = {
  connecting: { ko: "{mall} 쇼핑몰을 연결하는 중입니다…", en: "Connecting {mall}…" },
  toCafe24: { ko: "카페24로 이동합니다…", en: "Going to Cafe24…" },
  connected: { ko: "{mall} 쇼핑몰이 연결되었습니다.", en: "{mall} is connected." },
  connectedShop: {
    ko: "{mall} 쇼핑몰이 연결되었습니다 (상점 {shop}).",
    en: "{mall} is connected (shop {shop}).",
  },
  signInToFinish: {
    ko: "{mall} 연결을 마치려면 연결을 시작한 계정으로 로그인해 주세요.",
    en: "Sign in with the account that started connecting {mall} to finish.",
  },
  refreshing: { ko: "새로 고치는 중입니다…", en: "Refreshing…" },
  refreshed: {
    ko: "새로 고침 완료: {refreshed}개 갱신, {failed}개 실패, {skipped}개 건너뜀.",
    en: "Refresh done: {refreshed} refreshed, {failed} failed, {skipped} skipped.",
  },
  nothingRefreshed: {
    ko: "새로 고친 연결이 없습니다: {why}",
    en: "Nothing was refreshed: {why}",
  },
  nothingToRefresh: { ko: "새로 고칠 연결이 없습니다.", en: "There is no connection to refresh." },
  skipped_not_due: {
    ko: "토큰이 아직 충분히 유효합니다.",
    en: "the tokens are still fresh.",
  },
  skipped_leased: {
    ko: "이미 새로 고치는 중입니다.",
    en: "a refresh is already under way.",
  },
  skipped_backing_off: {
    ko: "최근 실패 후 잠시 기다렸다가 자동으로 다시 시도합니다.",
    en: "after a recent failure it is retried automatically, a little later.",
  },
  skipped_reconnect_required: {
    ko: "쇼핑몰을 다시 연결해야 합니다.",
    en: "the mall must be connected again.",
  },
  skipped_missing_keys: {
    ko: "연결이 해제되어 토큰이 없습니다.",
    en: "the connection holds no token (it was disconnected).",
  },
  skipped_malformed: {
    ko: "저장된 연결 정보가 손상되었습니다.",
    en: "the stored connection is damaged.",
  },
  skipped_other: {
    ko: "이번에는 건너뛰었습니다. 잠시 후 다시 시도해 주세요.",
    en: "it was skipped this time; try again in a moment.",
  },
  notUsable: { ko: "사용할 수 없음", en: "not usable" },
  code: { ko: "코드", en: "code" },
  mallIdHint: {
    ko: "영문 소문자로 시작하는 4~16자의 영문 소문자와 숫자",
    en: "4 to 16 lowercase letters and digits, starting with a letter",
  },
  inMinutes: { ko: "{n}분 후", en: "in {n} min" },
  minutesAgo: { ko: "{n}분 전", en: "{n} min ago" },
  inHours: { ko: "{n}시간 후", en: "in {n} h" },
  hoursAgo: { ko: "{n}시간 전", en: "{n} h ago" },
  inDays: { ko: "{n}일 후", en: "in {n} d" },
  daysAgo: { ko: "{n}일 전", en: "{n} d ago" },
  disconnected: {
    ko: "{mall} 쇼핑몰의 연결을 해제하고 카페24에서 앱 권한을 회수했습니다.",
    en: "{mall} is disconnected, and the app's access was revoked at Cafe24.",
  },
  disconnecting: { ko: "{mall} 연결을 해제하는 중입니다…", en: "Disconnecting {mall}…" },
  confirmDisconnect: {
    ko: "{mall} 쇼핑몰의 연결을 해제할까요?",
    en: "Disconnect {mall}?",
  },
  generic: {
    ko:
      "문제가 생겼습니다 (코드 {code}). 잠시 후 다시 시도하고, 계속되면 앱 운영자에게 이 코드를 알려 주세요.",
    en:
      "Something went wrong (code {code}). Try again in a moment; if it keeps happening, tell the app's operator this code.",
  },
  none: { ko: "연결된 쇼핑몰이 없습니다.", en: "No mall is connected yet." },
  yes: { ko: "예", en: "Yes" },
  no: { ko: "아니요", en: "No" },
  reconnect: { ko: "다시 연결", en: "Reconnect" },
  disconnect: { ko: "연결 해제", en: "Disconnect" },
  signedInAs: { ko: "로그인: {email}", en: "Signed in as {email}" },
  status_active: { ko: "연결됨", en: "Connected" },
  status_reconnect_required: { ko: "다시 연결 필요", en: "Reconnect needed" },
  status_disconnected: { ko: "연결 해제됨", en: "Disconnected" },
  status_not_connected: { ko: "연결 안 됨", en: "Not connected" },
  status_malformed: { ko: "저장된 정보 오류", en: "Stored data is damaged" },
};

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => String(values[name] ?? whole));
}

/** `{ ko, en, code }` for an error code; an unknown one gets the generic sentence and the code. */
export function describeError(code, values = {}) {
  const known = Object.hasOwn(MESSAGES, code) ? MESSAGES[code] : null;
  const sentence = known ?? TEXT.generic;
  const all = { code, ...values };
  return { ko: fill(sentence.ko, all), en: fill(sentence.en, all), code };
}

function describe(key, values = {}) {
  return { ko: fill(TEXT[key].ko, values), en: fill(TEXT[key].en, values), code: null };
}

// ---- the page ----------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function bilingual(sentence) {
  return [
    element("span", { lang: "ko" }, sentence.ko),
    " ",
    element("small", { class: "en", lang: "en" }, sentence.en),
  ];
}

/** One message at a time, in both languages; `data-code` names the code for support (and tests). */
function notify(kind, sentence) {
  const notice = $("notice");
  notice.dataset.kind = kind;
  if (sentence.code === null) delete notice.dataset.code;
  else notice.dataset.code = sentence.code;
  const lines = [
    element("p", { lang: "ko" }, sentence.ko),
    element("p", { lang: "en", class: "en" }, sentence.en),
  ];
  if (sentence.code !== null) {
    lines.push(
      element("p", { class: "code" }, `${TEXT.code.ko} · ${TEXT.code.en}: ${sentence.code}`),
    );
  }
  notice.replaceChildren(...lines);
}

function clearNotice() {
  const notice = $("notice");
  notice.replaceChildren();
  delete notice.dataset.kind;
  delete notice.dataset.code;
}

function notifyError(answer, values = {}) {
  notify(
    "error",
    describeError(answer.body.error, { seconds: answer.retryAfter ?? "?", ...values }),
  );
}

/** "in 4 min" in both languages: `{ ko, en }` for an instant `minutes` from now. */
export function relativeTime(minutes) {
  const abs = Math.abs(minutes);
  const [unit, n] = abs < 60
    ? ["Minutes", abs]
    : abs < 48 * 60
    ? ["Hours", Math.round(abs / 60)]
    : ["Days", Math.round(abs / 1440)];
  const key = minutes >= 0 ? `in${unit}` : `${unit.toLowerCase()}Ago`;
  return { ko: fill(TEXT[key].ko, { n }), en: fill(TEXT[key].en, { n }) };
}

/** 2026-12-07 15:04, in the browser's time zone: the same in both languages. */
function localDateTime(at) {
  const two = (n) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())} ` +
    `${two(at.getHours())}:${two(at.getMinutes())}`;
}

function formatInstant(value, usable = true) {
  if (!usable) {
    return ["—", element("small", { class: "unusable" }, ...bilingual(describe("notUsable")))];
  }
  if (value === null || value === undefined) return ["—"];
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) return ["—"];
  const relative = relativeTime(Math.round((at.getTime() - Date.now()) / 60_000));
  return [
    element("time", { datetime: at.toISOString() }, localDateTime(at)),
    element("small", { class: "relative" }, ...bilingual({ ...relative, code: null })),
  ];
}

/** What "Refresh now" says: the counts, or why nothing was refreshed. */
export function refreshOutcome(body) {
  const { refreshed = 0, failed = 0, skipped = 0, scanned = 0 } = body ?? {};
  if (refreshed > 0 || failed > 0) return describe("refreshed", { refreshed, failed, skipped });
  if (scanned === 0 && skipped === 0) return describe("nothingToRefresh");
  const reasons = Object.entries(body?.skipped_reasons ?? {})
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([reason]) => reason);
  const key = reasons.length > 0 && Object.hasOwn(TEXT, `skipped_${reasons[0]}`)
    ? `skipped_${reasons[0]}`
    : "skipped_other";
  const why = TEXT[key];
  return {
    ko: fill(TEXT.nothingRefreshed.ko, { why: why.ko }),
    en: fill(TEXT.nothingRefreshed.en, { why: why.en }),
    code: null,
  };
}

function shopLabel(row) {
  if (row.shop_no === null || row.shop_no === undefined) return "—";
  const shop = Array.isArray(row.shops)
    ? row.shops.find((s) => s?.shop_no === row.shop_no)
    : undefined;
  return typeof shop?.name === "string" ? `${row.shop_no} · ${shop.name}` : String(row.shop_no);
}

/** The columns' names, which a narrow screen shows next to each value (data-label). */
const COLUMNS = {
  mall: { ko: "쇼핑몰", en: "Mall" },
  shop: { ko: "상점", en: "Shop" },
  access: { ko: "액세스 토큰 만료", en: "Access token expires" },
  refresh: { ko: "리프레시 토큰 만료", en: "Refresh token expires" },
  status: { ko: "상태", en: "Status" },
  needsReconnect: { ko: "다시 연결 필요", en: "Needs reconnect" },
};

function cell(column, attributes, ...children) {
  const label = COLUMNS[column];
  return element("td", { ...attributes, "data-label": `${label.ko} · ${label.en}` }, ...children);
}

function renderConnections(rows) {
  const body = $("connections").tBodies[0];
  if (rows.length === 0) {
    body.replaceChildren(
      element(
        "tr",
        { class: "empty" },
        element("td", { colspan: "7" }, ...bilingual(describe("none"))),
      ),
    );
    return;
  }
  body.replaceChildren(...rows.map((row) => {
    const statusKey = `status_${row.status}`;
    const status = TEXT[statusKey] ? describe(statusKey) : describeError(String(row.status));
    const statusCell = cell(
      "status",
      { class: `status status-${row.status}` },
      ...bilingual(status),
    );
    if (row.last_error_code && row.status !== "active") {
      const why = describeError(row.last_error_code);
      statusCell.append(
        element("small", { class: "why", "data-code": why.code }, `${why.ko} ${why.en}`),
      );
    }
    const actions = element("td", { class: "actions" });
    if (row.needs_reconnect && row.mall_id) {
      actions.append(
        element(
          "button",
          { type: "button", class: "reconnect", "data-mall": row.mall_id },
          `${TEXT.reconnect.ko} · ${TEXT.reconnect.en}`,
        ),
      );
    }
    if (row.status === "active" || row.status === "reconnect_required") {
      actions.append(element("button", {
        type: "button",
        class: "disconnect",
        "data-id": row.auth_settings_id,
        "data-mall": row.mall_id ?? "",
      }, `${TEXT.disconnect.ko} · ${TEXT.disconnect.en}`));
    }
    return element(
      "tr",
      { "data-mall": row.mall_id ?? "", "data-status": row.status },
      cell("mall", { class: "mall" }, row.mall_id ?? "—"),
      cell("shop", { class: "shop" }, shopLabel(row)),
      // A connection that is not active holds no token the app can use: no expiry to show.
      cell(
        "access",
        { class: "access-expiry" },
        ...formatInstant(
          row.access_token_expires_at,
          row.status === "active",
        ),
      ),
      cell(
        "refresh",
        { class: "refresh-expiry" },
        ...formatInstant(
          row.refresh_token_expires_at,
          row.status === "active",
        ),
      ),
      statusCell,
      cell(
        "needsReconnect",
        { class: "needs-reconnect" },
        ...bilingual(describe(row.needs_reconnect ? "yes" : "no")),
      ),
      actions,
    );
  }));
}

async function start() {
  const config = readConfig();
  let session = currentSession();

  // ---- RETURN: back from Cafe24 ------------------------------------------------------------------
  // Success: #cafe24=pending&handle=…&mall_id=…  (a fragment never reaches a server or a log)
  // Failure: ?cafe24=error&reason=CODE
  // Both are taken out of the address bar at once, so a reload, a bookmark or a shared link never
  // carries them.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  let pending = null;
  if (fragment.get("cafe24") === "pending" && fragment.get("handle")) {
    pending = { handle: fragment.get("handle"), mallId: fragment.get("mall_id") ?? "" };
  }
  const failure = query.get("cafe24") === "error" ? query.get("reason") ?? "" : null;
  const demoKey = fragment.get("key");
  if (pending !== null || failure !== null || location.hash !== "") {
    query.delete("cafe24");
    query.delete("reason");
    const search = query.toString();
    history.replaceState(history.state, "", `${location.pathname}${search ? `?${search}` : ""}`);
  }
  if (failure !== null) notify("error", describeError(failure));
  if (demoKey) {
    const refused = await exchangeDemoKey(demoKey);
    if (refused !== null) notify("error", describeError(refused));
  }

  const showSession = () => {
    $("sign-in").hidden = session !== null;
    $("signed-in").hidden = session === null;
    $("signed-in-as").textContent = session === null
      ? ""
      : `${fill(TEXT.signedInAs.ko, { email: session.user?.email ?? "" })} · ${
        fill(TEXT.signedInAs.en, { email: session.user?.email ?? "" })
      }`;
    document.body.dataset.signedIn = session === null ? "" : session.user?.id ?? "";
  };

  const refreshStatus = async () => {
    if (session === null) {
      renderConnections([]);
      return;
    }
    const answer = await readConnections(config, session);
    if (answer.ok) renderConnections(answer.body.connections ?? []);
    else notifyError(answer);
    document.body.dataset.statusLoaded = String(Date.now());
  };

  const finishConnecting = async () => {
    if (pending === null) return;
    if (session === null) {
      notify("info", describe("signInToFinish", { mall: pending.mallId }));
      return;
    }
    const { handle, mallId } = pending;
    pending = null; // one try: a handle is single-use
    notify("info", describe("connecting", { mall: mallId }));
    const answer = await complete(config, session, handle);
    if (!answer.ok) {
      notifyError(answer, { mall: mallId });
    } else if (answer.body.warning) {
      notify("success", describeError(answer.body.warning));
    } else if (answer.body.shop_no !== null && answer.body.shop_no !== undefined) {
      notify(
        "success",
        describe("connectedShop", { mall: answer.body.mall_id, shop: answer.body.shop_no }),
      );
    } else {
      notify("success", describe("connected", { mall: answer.body.mall_id }));
    }
  };

  const connect = async (mallId) => {
    const scopes = [...document.querySelectorAll("#scopes input:checked")].map((box) => box.value);
    notify("info", describe("toCafe24"));
    const answer = await authorize(config, session, mallId, scopes);
    if (!answer.ok) {
      notifyError(answer, { mall: mallId });
      return;
    }
    location.assign(answer.body.url);
  };

  // ---- wiring ----------------------------------------------------------------------------------
  $("mall-id").value = config.defaultMallId ?? "";
  $("mall-id-hint").replaceChildren(...bilingual(describe("mallIdHint")));
  $("scopes").replaceChildren(
    ...(config.scopes ?? []).map((scope) =>
      element(
        "label",
        {},
        element("input", { type: "checkbox", value: scope, checked: "" }),
        ` ${scope}`,
      )
    ),
  );

  const users = await listDemoUsers();
  $("demo-user").replaceChildren(
    ...users.map((user) => element("option", { value: user.key }, user.label)),
  );
  $("sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    const signedIn = await signInAsDemoUser($("demo-user").value);
    if (signedIn.error !== undefined) {
      notify("error", describeError(signedIn.error));
      return;
    }
    session = signedIn.session;
    showSession();
    await finishConnecting();
    await refreshStatus();
  });
  $("sign-out").addEventListener("click", async () => {
    signOut();
    session = null;
    // What the notice said was about the account that signed out.
    clearNotice();
    showSession();
    await refreshStatus();
  });
  // Another tab signed in or out: this one follows, as supabase-js does.
  addEventListener("storage", async (event) => {
    if (event.key !== SESSION_KEY) return;
    const before = session?.user?.id ?? null;
    session = currentSession();
    if ((session?.user?.id ?? null) !== before) clearNotice();
    showSession();
    await refreshStatus();
  });

  $("connect-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const mallId = $("mall-id").value.trim();
    if (!/^[a-z][a-z0-9]{3,15}$/.test(mallId)) {
      notify("error", describeError("INVALID_MALL_ID"));
      return;
    }
    await connect(mallId);
  });
  $("refresh-now").addEventListener("click", async () => {
    notify("info", describe("refreshing"));
    const answer = await refreshNow(config, session);
    if (!answer.ok) notifyError(answer);
    else notify((answer.body.failed ?? 0) > 0 ? "error" : "success", refreshOutcome(answer.body));
    await refreshStatus();
  });
  $("reload-status").addEventListener("click", async () => {
    clearNotice(); // an earlier message is about an earlier state
    await refreshStatus();
  });
  $("connections").addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (button === null) return;
    const mall = button.dataset.mall ?? "";
    if (button.classList.contains("reconnect")) {
      await connect(mall);
    } else if (button.classList.contains("disconnect")) {
      const question = describe("confirmDisconnect", { mall });
      if (!confirm(`${question.ko}\n${question.en}`)) return;
      notify("info", describe("disconnecting", { mall }));
      const answer = await disconnect(config, session, button.dataset.id);
      if (!answer.ok) notifyError(answer, { mall });
      else if (answer.body.revoked) notify("success", describe("disconnected", { mall }));
      else notify("error", describeError(answer.body.revoke_error ?? "REVOKE_UNREACHABLE"));
      await refreshStatus();
    }
  });

  showSession();
  await finishConnecting();
  await refreshStatus();
  document.body.dataset.ready = "true";
}

if (globalThis.document !== undefined) start();
