// opsledger dashboard sign-in: OpenID Connect authorization code flow with PKCE (a public
// client, no secret), against the issuer and client the query service publishes at
// /v1/auth/config. The access token is renewed before it expires with the refresh token; when
// that fails the page signs in again (silently if the provider's session is still open).
// No token ever travels in a URL: the code comes back in the fragment (response_mode=fragment,
// never sent to a server), is removed from the address bar at once, and is exchanged with a
// POST. Tokens are kept in sessionStorage (this tab only), never in localStorage.
"use strict";

window.OpsledgerAuth = (() => {
  const ACCESS = "opsledger.oidc.access";
  const REFRESH = "opsledger.oidc.refresh";
  const PENDING = "opsledger.oidc.pending"; // state, verifier, return address of a sign-in
  let config = null;
  let renewTimer = null;
  let renewing = null; // the renewal in flight, shared by every caller
  const listeners = [];

  function b64url(bytes) {
    let text = "";
    for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));

  function lifetime(token) {
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(payload)).exp - Date.now() / 1000;
    } catch (_) {
      return -1;
    }
  }

  function redirectUri() {
    return window.location.origin + window.location.pathname;
  }

  async function loadConfig() {
    if (config) return config;
    const response = await fetch("/v1/auth/config", { cache: "no-store" });
    if (!response.ok) throw new Error(`sign-in configuration: ${response.status}`);
    config = await response.json();
    return config;
  }

  // Go to the provider's sign-in page; we come back to this page with a code.
  async function signIn(prompt) {
    const cfg = await loadConfig();
    const verifier = random(48);
    const state = random(16);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    const back = window.location.search; // the operation chosen, if any (never a token)
    sessionStorage.setItem(PENDING, JSON.stringify({ state, verifier, back }));
    const params = new URLSearchParams({
      response_type: "code",
      response_mode: "fragment",
      client_id: cfg.client_id,
      redirect_uri: redirectUri(),
      scope: cfg.scope,
      state,
      code_challenge: b64url(digest),
      code_challenge_method: "S256",
    });
    if (prompt) params.set("prompt", prompt);
    window.location.assign(`${cfg.authorization_endpoint}?${params}`);
    return new Promise(() => {}); // the page is leaving
  }

  async function tokenRequest(form) {
    const cfg = await loadConfig();
    const response = await fetch(cfg.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: cfg.client_id, ...form }),
      cache: "no-store",
      credentials: "omit",
    });
    if (!response.ok) throw new Error(`token endpoint: ${response.status}`);
    const body = await response.json();
    if (!body.access_token) throw new Error("token endpoint: no access token");
    sessionStorage.setItem(ACCESS, body.access_token);
    if (body.refresh_token) sessionStorage.setItem(REFRESH, body.refresh_token);
    schedule();
    listeners.forEach((fn) => fn(body.access_token));
    return body.access_token;
  }

  // The code in the fragment, if this load is the provider sending us back.
  async function completeSignIn() {
    const fragment = new URLSearchParams(window.location.hash.slice(1));
    if (!fragment.has("code") && !fragment.has("error")) return null;
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    sessionStorage.removeItem(PENDING);
    window.history.replaceState(null, "", window.location.pathname + (pending ? pending.back : ""));
    if (!pending || fragment.get("state") !== pending.state) throw new Error("sign-in: state mismatch");
    if (fragment.has("error")) throw new Error(`sign-in: ${fragment.get("error")}`);
    return tokenRequest({
      grant_type: "authorization_code",
      code: fragment.get("code"),
      redirect_uri: redirectUri(),
      code_verifier: pending.verifier,
    });
  }

  // Renew ahead of expiry: at two thirds of the token's life, at least 2 s before it ends.
  function schedule() {
    clearTimeout(renewTimer);
    const left = lifetime(sessionStorage.getItem(ACCESS) || "");
    if (left <= 0) return;
    const delay = Math.max(0, Math.min(left * (2 / 3), left - 2)) * 1000;
    renewTimer = setTimeout(() => renew().catch(() => {}), delay);
  }

  // A fresh access token: by the refresh token, else by signing in again (the provider's
  // session usually lets that through without a form). Resolves to the token, or never (the
  // page navigates away to sign in).
  function renew() {
    if (renewing) return renewing;
    const refresh = sessionStorage.getItem(REFRESH);
    renewing = (async () => {
      try {
        if (refresh) return await tokenRequest({ grant_type: "refresh_token", refresh_token: refresh });
      } catch (_) {
        sessionStorage.removeItem(REFRESH);
      }
      return signIn();
    })().finally(() => { renewing = null; });
    return renewing;
  }

  // {mode: "token"} (paste a token: the development issuer), or {mode: "oidc", token}.
  async function init() {
    const cfg = await loadConfig();
    if (cfg.mode !== "oidc") return { mode: cfg.mode, token: null };
    let token = await completeSignIn();
    token = token || sessionStorage.getItem(ACCESS);
    if (!token || lifetime(token) <= 5) token = await renew();
    schedule();
    return { mode: "oidc", token };
  }

  function signOut() {
    clearTimeout(renewTimer);
    sessionStorage.removeItem(ACCESS);
    sessionStorage.removeItem(REFRESH);
  }

  return {
    init,
    renew,
    signIn,
    signOut,
    onToken: (fn) => listeners.push(fn),
    get token() { return sessionStorage.getItem(ACCESS); },
  };
})();
