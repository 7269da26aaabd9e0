// Sends the outbox to ingest in batches whenever the device is online, with backoff.
// Exactly once by construction: each event carries the event_id made on the device when it
// was recorded, and a resend after a lost answer is the same event, which the ledger counts
// once. An entry is marked accepted only when ingest answered that it is in the log.
import * as outbox from "./outbox.js";
import * as token from "./token.js";

const BATCH = 50;
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 60000;
const REQUEST_TIMEOUT_MS = 30000;

export class Sender {
  // onChange() is called after the outbox changed; onStatus({state, text}) on news.
  constructor(onChange, onStatus) {
    this.onChange = onChange;
    this.onStatus = onStatus;
    this.delay = 0;
    this.timer = null;
    this.running = false;
    this.again = false;
    window.addEventListener("online", () => this.soon());
    window.addEventListener("offline", () => this.status("offline", "offline: events are kept on this device"));
  }

  status(state, text) {
    this.onStatus({ state, text });
  }

  // Send as soon as possible (a new event, the network back, the page shown again).
  soon(ms = 0) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), ms);
  }

  async run() {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        await this.flush();
      } while (this.again);
    } finally {
      this.running = false;
    }
  }

  retry(why, atLeastMs = 0) {
    this.delay = Math.min(MAX_DELAY_MS, this.delay ? this.delay * 2 : FIRST_DELAY_MS);
    const wait = Math.max(atLeastMs, Math.round(this.delay * (0.8 + Math.random() * 0.4)));
    this.status("retrying", `${why}: trying again in ${Math.ceil(wait / 1000)} s`);
    this.soon(wait);
  }

  async flush() {
    for (;;) {
      if (!navigator.onLine) {
        this.status("offline", "offline: events are kept on this device");
        return; // the "online" event starts the next attempt
      }
      if (!token.signedIn()) {
        this.status("signin", "sign in to send");
        return;
      }
      const entries = (await outbox.all()).filter((e) => outbox.PENDING.has(e.state));
      const batch = entries.slice(0, BATCH);
      if (batch.length === 0) {
        this.delay = 0;
        this.status("idle", "all sent");
        return;
      }
      const ids = batch.map((e) => e.event_id);
      await outbox.change(ids, (e) => ({ ...e, state: "sent" }));
      this.onChange();
      this.status("sending", `sending ${batch.length}…`);
      let response;
      let body = null;
      try {
        response = await fetch("/v1/events/batch", {
          method: "POST",
          headers: { ...token.headers(), "Content-Type": "application/json" },
          body: JSON.stringify({ events: batch.map((e) => e.event) }),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        body = await response.json().catch(() => null);
      } catch {
        await this.putBack(ids);
        this.retry("no answer from the ledger");
        return;
      }
      if (!(await this.apply(batch, response, body))) return;
      this.delay = 0;
    }
  }

  async putBack(ids) {
    await outbox.change(ids, (e) => (e.state === "sent" ? { ...e, state: "waiting" } : e));
    this.onChange();
  }

  // Record each event's outcome; true when the next batch may go at once.
  async apply(batch, response, body) {
    const ids = batch.map((e) => e.event_id);
    if (response.status === 401) {
      await this.putBack(ids);
      token.signOut();
      this.status("signin", "your sign-in has expired: sign in again to send");
      return false;
    }
    if (body && Array.isArray(body.results)) {
      const byIndex = new Map(body.results.map((r) => [r.index, r]));
      let unavailable = 0;
      await outbox.change(ids, (entry) => {
        const result = byIndex.get(ids.indexOf(entry.event_id));
        if (!result || result.status === "unavailable") {
          unavailable += 1;
          return { ...entry, state: "waiting" };
        }
        if (result.status === "accepted") {
          return { ...entry, state: "accepted", errors: [], detail: "" };
        }
        const state = result.reason === "conflict" ? "conflict" : "refused";
        return { ...entry, state, errors: result.errors || [], detail: result.reason || "" };
      });
      this.onChange();
      if (unavailable) {
        this.retry("the ledger is busy", retryAfterMs(response));
        return false;
      }
      return true;
    }
    if (response.status === 409 || response.status === 403) {
      const state = response.status === 409 ? "conflict" : "refused";
      const detail = (body && (body.detail || body.title)) || `ingest answered ${response.status}`;
      const errors = (body && body.errors) || [];
      await outbox.change(ids, (e) => ({ ...e, state, errors, detail }));
      this.onChange();
      return true;
    }
    await this.putBack(ids);
    this.retry(`the ledger answered ${response.status}`, retryAfterMs(response));
    return false;
  }
}

function retryAfterMs(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}
