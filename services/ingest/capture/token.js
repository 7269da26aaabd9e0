// Sign-in for the capture app: the only module that knows what a token is.
// Today the officer pastes a development token; when the force's identity provider signs
// officers in, this module alone changes (obtain, renew, forget). The rest of the app asks
// only for headers(), principal() and whether someone is signed in.
const TOKEN_KEY = "opsledger.capture.token";
const WHO_KEY = "opsledger.capture.principal";

export class SignInError extends Error {}

export function signedIn() {
  return Boolean(localStorage.getItem(TOKEN_KEY)) && principal() !== null;
}

export function headers() {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// Who the token names, as ingest said at sign-in: {subject, role, operations}. Kept on the
// device so that the app starts offline.
export function principal() {
  try {
    return JSON.parse(localStorage.getItem(WHO_KEY) || "null");
  } catch {
    return null;
  }
}

// Ask ingest who the token names (the same check as every write), then keep both.
export async function signIn(raw) {
  const token = raw.trim().replace(/^Bearer\s+/i, "");
  if (!token) throw new SignInError("Paste your token first.");
  let response;
  try {
    response = await fetch("/v1/principal", { headers: { Authorization: `Bearer ${token}` } });
  } catch {
    throw new SignInError("No connection: signing in needs signal once.");
  }
  if (!response.ok) {
    let detail = `ingest answered ${response.status}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch { /* not JSON: keep the status */ }
    throw new SignInError(`Not signed in: ${detail}.`);
  }
  const who = await response.json();
  localStorage.setItem(TOKEN_KEY, token);
  localStorage.setItem(WHO_KEY, JSON.stringify(who));
  return who;
}

// A token handed over in the address (`/capture#token=...`: a fragment never leaves the
// device), taken out of the address at once so it stays in no history or screenshot.
export function fromAddress() {
  const match = /^#token=(.+)$/.exec(window.location.hash);
  if (!match) return null;
  history.replaceState(null, "", window.location.pathname);
  return decodeURIComponent(match[1]);
}

export function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(WHO_KEY);
}
