// opsledger field capture: record events with or without signal; the outbox sends them.
// No framework, no build step; every element is built with textContent (never innerHTML).
import * as token from "./token.js";
import * as outbox from "./outbox.js";
import { Sender } from "./sender.js";
import { AREAS, KINDS, LABELS, buildForm, describe, eventValues, explain, payloadOf } from "./forms.js";

const APP_VERSION = "capture-1.0";
const PREFS_KEY = "opsledger.capture.prefs";
const DEVICE_KEY = "opsledger.capture.device";
const KEEP_MS = 14 * 24 * 3600 * 1000; // accepted entries stay listed (and voidable) this long
const STATE_TEXT = {
  waiting: "Waiting to send",
  sent: "Sending",
  accepted: "In the ledger",
  refused: "Refused: needs a fix",
  conflict: "Conflict: not counted",
};
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children);
  return node;
};

let sender;
let form = null; // {kind, built, editing}
let currentView = null;

// ---- preferences kept on the device ----------------------------------------------------------
function prefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY) || "{}");
  } catch {
    return {};
  }
}
function savePrefs(changes) {
  localStorage.setItem(PREFS_KEY, JSON.stringify({ ...prefs(), ...changes }));
}
function deviceId() {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = `device-${crypto.randomUUID().slice(0, 8)}`;
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}
function announce(text) {
  $("announce").textContent = "";
  setTimeout(() => { $("announce").textContent = text; }, 50);
}

// ---- views ---------------------------------------------------------------------------------
function show(name, { focus = true } = {}) {
  currentView = name;
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${name}`;
  for (const button of document.querySelectorAll("#nav button")) {
    if (button.dataset.view === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (name === "events") renderEvents();
  if (focus) {
    const heading = document.querySelector(`#view-${name} h1`);
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

function settingsComplete() {
  const p = prefs();
  const who = token.principal();
  return Boolean(p.operation && p.officer && p.unit && p.area && who && who.operations.includes(p.operation));
}

function route(options) {
  const signedIn = token.signedIn();
  $("nav").hidden = !signedIn;
  if (!signedIn) return show("signin", options);
  if (!settingsComplete()) {
    fillSettings();
    return show("settings", options);
  }
  renderContext();
  return show("record", options);
}

// ---- sign in and settings ------------------------------------------------------------------
async function onSignIn(event) {
  event.preventDefault();
  const error = $("signin-error");
  error.textContent = "";
  try {
    await token.signIn($("token-input").value);
  } catch (exc) {
    error.textContent = exc.message;
    $("token-input").focus();
    return;
  }
  $("token-input").value = "";
  route();
  sender.soon();
}

function fillSettings() {
  const who = token.principal();
  const p = prefs();
  $("who").textContent = `Signed in as ${who.subject}.`;
  const select = $("operation-input");
  select.replaceChildren(...who.operations.map((op) => el("option", { value: op, text: op })));
  if (who.operations.length === 0) select.append(el("option", { value: "", text: "(the token covers no operation)" }));
  if (p.operation && who.operations.includes(p.operation)) select.value = p.operation;
  $("officer-input").value = p.officer || who.subject;
  $("unit-input").value = p.unit || "";
  $("area-input").value = p.area || "";
  $("geo-input").checked = Boolean(p.geo);
  $("area-list").replaceChildren(...AREAS.map((a) => el("option", { value: a })));
  const units = new Set([...(p.units || []), p.unit].filter(Boolean));
  $("unit-list").replaceChildren(...[...units].map((u) => el("option", { value: u })));
}

function onSaveSettings(event) {
  event.preventDefault();
  const values = {
    operation: $("operation-input").value,
    officer: $("officer-input").value.trim(),
    unit: $("unit-input").value.trim(),
    area: $("area-input").value.trim(),
    geo: $("geo-input").checked,
  };
  const missing = [["operation", "Operation"], ["officer", "Officer id"], ["unit", "Unit"], ["area", "Area"]]
    .filter(([k]) => !values[k]).map(([, label]) => label);
  if (missing.length) {
    $("settings-error").textContent = `Please fill in: ${missing.join(", ")}.`;
    return;
  }
  $("settings-error").textContent = "";
  savePrefs({ ...values, units: [...new Set([...(prefs().units || []), values.unit])].slice(-5) });
  announce("Settings saved.");
  route();
}

function onGeoToggle() {
  if (!$("geo-input").checked) return;
  if (!navigator.geolocation) {
    $("geo-input").checked = false;
    $("settings-error").textContent = "This device cannot share its location.";
    return;
  }
  // Asking now lets the device put its own consent question while the officer is looking.
  navigator.geolocation.getCurrentPosition(() => {}, () => {
    $("geo-input").checked = false;
    $("settings-error").textContent = "Location not allowed: events will be recorded without it.";
  }, { timeout: 10000 });
}

function onSignOut() {
  token.signOut();
  announce("Signed out. Events not yet sent stay on this device.");
  route();
}

// ---- recording -----------------------------------------------------------------------------
function renderContext() {
  const p = prefs();
  $("record-context").textContent = `${p.operation} · ${p.unit} · ${p.officer}`;
}

function renderKinds() {
  $("kinds").replaceChildren(...Object.entries(KINDS).map(([kind, spec]) => {
    const button = el("button", { type: "button", class: `kind kind-${kind}`, "data-kind": kind, text: spec.label });
    button.addEventListener("click", () => openForm(kind));
    return button;
  }));
}

function openForm(kind, entry = null) {
  const values = entry ? eventValues(entry.event) : { "location.area": prefs().area };
  const built = buildForm(kind, values);
  form = { kind, built, editing: entry };
  $("form-title").textContent = entry ? `Fix: ${KINDS[kind].label}` : KINDS[kind].label;
  $("form-fields").replaceChildren(built.node);
  $("form-summary").replaceChildren();
  $("form-save").textContent = entry ? "Save and send again" : "Save";
  $("kinds").hidden = true;
  $("event-form").hidden = false;
  if (currentView !== "record") show("record", { focus: false });
  if (entry) showProblems(entry.errors || [], entry.detail);
  $("form-title").focus();
}

function closeForm() {
  form = null;
  $("event-form").hidden = true;
  $("kinds").hidden = false;
}

function showProblems(errors, detail) {
  const unplaced = form.built.showErrors(errors);
  const lines = unplaced.map((e) => `${LABELS[e.path] || e.path || "Event"}: ${explain(e.path, e.message)}`);
  if (detail && errors.length === 0) lines.push(detail);
  $("form-summary").replaceChildren(...lines.map((line) => el("p", { text: line })));
}

function position() {
  return new Promise((resolve) => {
    if (!prefs().geo || !navigator.geolocation) return resolve(null);
    navigator.geolocation.getCurrentPosition(
      (p) => resolve({ lat: Number(p.coords.latitude.toFixed(5)), lon: Number(p.coords.longitude.toFixed(5)) }),
      () => resolve(null),
      { timeout: 5000, maximumAge: 60000 },
    );
  });
}

async function onSaveEvent(event) {
  event.preventDefault();
  const { kind, built, editing } = form;
  const { values, problems } = built.read();
  if (problems.length) {
    showProblems(problems);
    built.focusFirstError();
    return;
  }
  const p = prefs();
  const area = values["location.area"];
  const where = editing ? { ...editing.event.location, area } : { area, ...(await position()) };
  const body = {
    event_id: editing ? editing.event_id : crypto.randomUUID(),
    operation_id: editing ? editing.event.operation_id : p.operation,
    type: kind,
    schema_version: 1,
    occurred_at: values.occurred_at,
    actor: { officer_id: p.officer, unit: p.unit },
    location: where,
    source: { device_id: deviceId(), app_version: APP_VERSION },
    payload: payloadOf(kind, values),
  };
  await outbox.save({
    event_id: body.event_id, event: body, state: "waiting", errors: [], detail: "",
    created: editing ? editing.created : Date.now(),
  });
  if (area !== p.area) savePrefs({ area });
  closeForm();
  await refresh();
  const waiting = await outbox.pendingCount();
  announce(`Saved on this device: ${describe(body)}. ${waiting} waiting to send.`);
  if (editing) show("events");
  else $("record-title").focus();
  sender.soon();
}

// ---- the officer's events: states, delete, void ----------------------------------------------
async function renderEvents() {
  const entries = (await outbox.all()).reverse();
  const voided = new Map(entries.filter((e) => e.event.type === "event_voided")
    .map((e) => [e.event.payload.voided_event_id, e]));
  const list = $("event-list");
  list.replaceChildren(...entries.slice(0, 200).map((entry) => renderEntry(entry, voided.get(entry.event_id))));
  $("no-events").hidden = entries.length > 0;
}

function renderEntry(entry, voidEntry) {
  const e = entry.event;
  const when = new Date(e.occurred_at).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
  const item = el("li", { class: "event", "data-event-id": entry.event_id, "data-state": entry.state });
  const title = el("p", { class: "what", text: describe(e) });
  const meta = el("p", { class: "meta", text: `${when} · ${e.location.area} · ${e.operation_id}` });
  const badge = el("p", { class: `state state-${entry.state}`, text: STATE_TEXT[entry.state] || entry.state });
  item.append(title, meta, badge);
  if (voidEntry) item.append(el("p", { class: "voided", text: `Voided (${STATE_TEXT[voidEntry.state].toLowerCase()}): ${voidEntry.event.payload.reason}` }));
  if (entry.state === "refused" || entry.state === "conflict") {
    const problems = (entry.errors || []).map((err) => el("li", {
      text: `${LABELS[err.path] || fieldLabel(e.type, err.path)}: ${explain(err.path, err.message)}`,
    }));
    if (!problems.length && entry.detail) problems.push(el("li", { text: entry.detail }));
    item.append(el("ul", { class: "problems" }, ...problems));
  }
  const actions = el("div", { class: "actions" });
  if (entry.state === "refused" && e.type !== "event_voided") {
    actions.append(button("Fix", `Fix ${describe(e)}`, () => openForm(e.type, entry)));
  }
  if (entry.state === "waiting" || entry.state === "refused" || entry.state === "conflict") {
    actions.append(button("Delete", `Delete ${describe(e)}`, () => confirmDelete(item, entry)));
  }
  if (entry.state === "accepted" && e.type !== "event_voided" && !voidEntry) {
    actions.append(button("Void", `Void ${describe(e)}`, () => askVoid(item, entry)));
  }
  if (actions.childElementCount) item.append(actions);
  return item;
}

function fieldLabel(kind, path) {
  const spec = KINDS[kind];
  return spec?.fields.find((f) => f.path === path)?.label || path || "Event";
}

function button(text, label, onClick, cls = "") {
  const b = el("button", { type: "button", class: cls, "aria-label": label === text ? null : label, text });
  b.addEventListener("click", onClick);
  return b;
}

function confirmDelete(item, entry) {
  const box = el("div", { class: "confirm", role: "group", "aria-label": "Delete this event" },
    el("p", { text: "Delete this event? It was never counted." }));
  const yes = button("Yes, delete", "Yes, delete", async () => {
    await outbox.remove(entry.event_id);
    announce("Deleted.");
    await renderEvents();
    await refresh();
    $("events-title").focus();
  }, "danger");
  const no = button("Keep", "Keep", () => renderEvents());
  box.append(el("div", { class: "actions" }, yes, no));
  item.querySelector(".actions").replaceWith(box);
  yes.focus();
}

function askVoid(item, entry) {
  const id = `reason-${entry.event_id}`;
  const input = el("input", { id, type: "text", maxlength: 500, required: true, autocomplete: "off" });
  const error = el("p", { class: "field-error", role: "alert" });
  const box = el("form", { class: "confirm", novalidate: true },
    el("label", { for: id, text: "Why does this event not count?" }), input, error);
  const go = el("button", { type: "submit", class: "danger", text: "Void event" });
  const no = button("Keep", "Keep", () => renderEvents());
  box.append(el("div", { class: "actions" }, go, no));
  box.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const reason = input.value.trim();
    if (!reason) {
      error.textContent = "A reason is required.";
      input.focus();
      return;
    }
    await recordVoid(entry, reason);
  });
  item.querySelector(".actions").replaceWith(box);
  input.focus();
}

async function recordVoid(target, reason) {
  const p = prefs();
  const body = {
    event_id: crypto.randomUUID(),
    operation_id: target.event.operation_id,
    type: "event_voided",
    schema_version: 1,
    occurred_at: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
    actor: { officer_id: p.officer || target.event.actor.officer_id, unit: p.unit || target.event.actor.unit },
    location: { area: target.event.location.area },
    source: { device_id: deviceId(), app_version: APP_VERSION },
    payload: { voided_event_id: target.event_id, reason },
  };
  await outbox.save({ event_id: body.event_id, event: body, state: "waiting", errors: [], detail: "", created: Date.now() });
  announce(`Void saved: ${describe(target.event)}.`);
  await renderEvents();
  await refresh();
  $("events-title").focus();
  sender.soon();
}

// ---- status ----------------------------------------------------------------------------------
async function refresh() {
  const entries = await outbox.all();
  const waiting = entries.filter((e) => outbox.PENDING.has(e.state)).length;
  const refused = entries.filter((e) => e.state === "refused" || e.state === "conflict").length;
  $("waiting-count").textContent = String(waiting);
  $("sync").dataset.waiting = String(waiting);
  const eventsButton = document.querySelector('#nav button[data-view="events"]');
  eventsButton.replaceChildren("My events");
  if (refused) {
    eventsButton.append(
      el("span", { class: "badge", "aria-hidden": "true", text: String(refused) }),
      el("span", { class: "visually-hidden", text: ` (${refused} to fix)` }),
    );
  }
  // Not while the officer is typing a reason or confirming a deletion: that would wipe it.
  if (currentView === "events" && !document.querySelector("#event-list .confirm")) await renderEvents();
}

function setStatus({ state, text }) {
  $("sync").dataset.state = state;
  $("net").textContent = text;
  if (state === "signin" && !token.signedIn()) route({ focus: false });
}

async function prune() {
  const old = Date.now() - KEEP_MS;
  for (const entry of await outbox.all()) {
    if (entry.state === "accepted" && entry.created < old) await outbox.remove(entry.event_id);
  }
}

async function start() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/capture/sw.js", { scope: "/capture" }).catch(() => {});
  }
  sender = new Sender(() => refresh(), setStatus);
  renderKinds();
  $("signin-form").addEventListener("submit", onSignIn);
  $("settings-form").addEventListener("submit", onSaveSettings);
  $("geo-input").addEventListener("change", onGeoToggle);
  $("signout").addEventListener("click", onSignOut);
  $("event-form").addEventListener("submit", onSaveEvent);
  $("form-cancel").addEventListener("click", () => { closeForm(); $("record-title").focus(); });
  for (const b of document.querySelectorAll("#nav button")) {
    b.addEventListener("click", () => {
      if (b.dataset.view === "settings") fillSettings();
      if (b.dataset.view === "record") closeForm();
      show(b.dataset.view);
    });
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) sender.soon(); });
  const handed = token.fromAddress();
  if (handed) {
    try {
      await token.signIn(handed);
    } catch (exc) {
      $("signin-error").textContent = exc.message;
    }
  }
  await prune();
  // Entries left "sent" by a tab closed mid-request go out again (same event_id: harmless).
  route({ focus: false });
  await refresh();
  document.body.dataset.ready = "true";
  sender.soon();
}

start();
