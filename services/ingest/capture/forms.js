// The forms, one per kind of event: what each asks, in the officer's words, and how the
// answers become the event's payload (and back, to edit a refused entry).
import { formatPence, parsePounds, penceToInput } from "./money.js";

const PREMISES = ["flat", "terraced house", "semi-detached house", "bedsit", "HMO room", "hotel room", "garage", "vehicle"];
const OFFENCES = [
  "possession with intent to supply class A",
  "being concerned in the supply of class A",
  "possession of an offensive weapon",
  "possession of criminal property",
  "money laundering",
  "modern slavery (county lines)",
];
export const AREAS = ["Buckinghamshire", "Berkshire", "Oxfordshire"];

const ref = (path, label, hint) => ({ path, label, hint, type: "text", required: true, max: 64 });
const itemIs = (...items) => (values) => items.includes(values["payload.item"]);

export const KINDS = {
  warrant_executed: {
    label: "Warrant executed",
    fields: [
      ref("payload.warrant_ref", "Warrant reference", "e.g. W-2026-0142"),
      { path: "payload.premises", label: "Premises (optional)", type: "text", max: 500, suggestions: PREMISES },
    ],
  },
  arrest_made: {
    label: "Arrest",
    fields: [
      ref("payload.person_ref", "Person reference", "a reference, never a name"),
      { path: "payload.age_band", label: "Age", type: "choice", required: true,
        options: [["adult", "Adult"], ["youth", "Youth (under 18)"]] },
      { path: "payload.offences", label: "Offences", type: "multi", required: true, options: OFFENCES },
    ],
  },
  item_seized: {
    label: "Items seized",
    fields: [
      { path: "payload.item", label: "What was seized", type: "choice", required: true,
        options: [["drug_wrap", "Drug wraps"], ["mobile_phone", "Mobile phones"], ["weapon", "Weapons"],
          ["cash", "Cash"], ["other", "Other"]] },
      { path: "payload.substance", label: "Substance", type: "choice", required: true, when: itemIs("drug_wrap"),
        options: [["crack", "Crack"], ["heroin", "Heroin"], ["cocaine", "Cocaine"], ["cannabis", "Cannabis"], ["other", "Other"]] },
      { path: "payload.quantity", label: "How many", type: "stepper", required: true, min: 1, max: 1000000, start: 1,
        when: itemIs("drug_wrap", "mobile_phone", "weapon", "other") },
      { path: "payload.amount_pence", label: "Amount in pounds and pence", type: "money", required: true, when: itemIs("cash") },
      { path: "payload.description", label: "Description (optional)", type: "text", max: 500, when: itemIs("weapon", "other") },
    ],
  },
  school_visited: {
    label: "School visited",
    fields: [
      ref("payload.school_ref", "School reference (URN)", "e.g. URN-110456"),
      { path: "payload.pupils_engaged", label: "Pupils engaged (optional)", type: "stepper", min: 0, max: 10000, start: null, step: 10 },
    ],
  },
  vulnerable_person_engaged: {
    label: "Vulnerable person engaged",
    fields: [
      ref("payload.person_ref", "Person reference", "a reference, never a name"),
      { path: "payload.safeguarding_referral", label: "Safeguarding referral made?", type: "choice", required: true,
        options: [["true", "Yes"], ["false", "No"]] },
    ],
  },
};

// Fields every form starts with; unit and officer live in Settings.
const COMMON = [
  { path: "occurred_at", label: "When", type: "when", required: true },
  { path: "location.area", label: "Area", type: "text", required: true, max: 128, suggestions: AREAS },
];

export const LABELS = {
  occurred_at: "When", "location.area": "Area", "actor.unit": "Unit (Settings)",
  "actor.officer_id": "Officer id (Settings)", "location.lat": "Location", "location.lon": "Location",
};

let uid = 0;
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

function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// The form for one kind, filled from `values` ({path: value}); returns {node, read, showErrors}.
export function buildForm(kind, values) {
  const spec = KINDS[kind];
  const fields = [...COMMON, ...spec.fields];
  const node = el("div", { class: "fields" });
  const rows = new Map();
  for (const field of fields) {
    const row = renderField(field, values[field.path]);
    rows.set(field.path, row);
    node.append(row.node);
  }
  const refresh = () => {
    const current = readRaw();
    for (const field of fields) {
      if (field.when) rows.get(field.path).node.hidden = !field.when(current);
    }
  };
  const readRaw = () => Object.fromEntries(fields.map((f) => [f.path, rows.get(f.path).get()]));
  node.addEventListener("change", refresh);
  refresh();

  // {values, problems}: the answers by path, and what is missing or wrong (path -> message).
  function read() {
    const raw = readRaw();
    const out = {};
    const problems = [];
    for (const field of fields) {
      if (field.when && !field.when(raw)) continue;
      const value = raw[field.path];
      const empty = value === null || value === "" || (Array.isArray(value) && value.length === 0);
      if (empty) {
        if (field.required) problems.push({ path: field.path, message: "required" });
        continue;
      }
      if (value === undefined) {
        problems.push({ path: field.path, message: field.type === "money" ? "enter pounds and pence, e.g. 1250.00" : "not a whole number" });
        continue;
      }
      out[field.path] = value;
    }
    return { values: out, problems };
  }

  function showErrors(errors) {
    for (const row of rows.values()) row.setError("");
    const unplaced = [];
    for (const error of errors) {
      const row = rows.get(error.path) || rows.get(error.path.split(".").slice(0, 2).join("."));
      if (row && !row.node.hidden) row.setError(explain(error.path, error.message));
      else unplaced.push(error);
    }
    return unplaced;
  }

  function focusFirstError() {
    for (const row of rows.values()) {
      if (row.hasError()) {
        row.focus();
        return true;
      }
    }
    return false;
  }

  return { node, read, showErrors, focusFirstError, labelOf: (path) => fields.find((f) => f.path === path)?.label };
}

function renderField(field, value) {
  const id = `f${++uid}`;
  const errorId = `${id}-error`;
  const error = el("p", { class: "field-error", id: errorId, hidden: true });
  let node, get, focus;
  if (field.type === "choice" || field.type === "multi") {
    const multi = field.type === "multi";
    const legend = el("legend", { text: field.label });
    const box = el("fieldset", { class: `choices${multi ? " multi" : ""}`, "aria-describedby": errorId }, legend);
    const chosen = multi ? new Set(value || []) : new Set(value === undefined ? [] : [String(value)]);
    const inputs = [];
    for (const option of field.options) {
      const [val, text] = Array.isArray(option) ? option : [option, option];
      const input = el("input", {
        type: multi ? "checkbox" : "radio", name: id, value: val, id: `${id}-${inputs.length}`,
        checked: chosen.has(val), required: field.required && !multi,
      });
      inputs.push(input);
      box.append(el("label", { class: "choice", for: input.id }, input, el("span", { text })));
    }
    if (multi) {
      const known = new Set(field.options);
      const other = el("input", { type: "text", id: `${id}-other`, maxlength: 128, autocomplete: "off",
        value: (value || []).filter((v) => !known.has(v)).join("; ") });
      box.append(el("label", { class: "other", for: other.id }, el("span", { text: "Other (separate with ;)" }), other));
      get = () => [
        ...inputs.filter((i) => i.checked).map((i) => i.value),
        ...other.value.split(";").map((s) => s.trim()).filter(Boolean),
      ];
    } else {
      get = () => {
        const picked = inputs.find((i) => i.checked)?.value ?? null;
        if (picked === "true" || picked === "false") return picked === "true";
        return picked;
      };
    }
    focus = () => (inputs.find((i) => i.checked) || inputs[0]).focus();
    node = el("div", { class: "field", "data-path": field.path }, box, error);
  } else {
    const label = el("label", { for: id, text: field.label });
    let input;
    const described = [errorId];
    if (field.type === "stepper") {
      const start = value ?? field.start;
      input = el("input", { id, type: "text", inputmode: "numeric", pattern: "[0-9]*", autocomplete: "off",
        value: start === null || start === undefined ? "" : String(start), required: field.required,
        "aria-describedby": errorId });
      const step = field.step || 1;
      const bump = (delta) => {
        const now = /^\d+$/.test(input.value) ? Number(input.value) : (field.start ?? field.min);
        input.value = String(Math.min(field.max, Math.max(field.min, now + delta)));
        input.dispatchEvent(new Event("change", { bubbles: true }));
      };
      const minus = el("button", { type: "button", class: "step", "aria-label": `${field.label}: ${step} fewer`, text: "−" });
      const plus = el("button", { type: "button", class: "step", "aria-label": `${field.label}: ${step} more`, text: "+" });
      minus.addEventListener("click", () => bump(-step));
      plus.addEventListener("click", () => bump(step));
      get = () => {
        const text = input.value.trim();
        if (text === "") return null;
        if (!/^\d+$/.test(text)) return undefined;
        return Number(text);
      };
      node = el("div", { class: "field", "data-path": field.path }, label,
        el("div", { class: "stepper" }, minus, input, plus), error);
    } else if (field.type === "money") {
      const shown = el("p", { class: "money-preview", id: `${id}-preview`, "aria-live": "polite" });
      described.push(shown.id);
      input = el("input", { id, type: "text", inputmode: "decimal", autocomplete: "off", required: true,
        placeholder: "0.00", value: value ? penceToInput(value) : "", "aria-describedby": described.join(" ") });
      const show = () => {
        const pence = parsePounds(input.value);
        shown.textContent = input.value.trim() === "" ? "" : pence ? formatPence(pence) : "not an amount yet";
      };
      input.addEventListener("input", show);
      show();
      get = () => {
        const text = input.value.trim();
        if (text === "") return null;
        return parsePounds(text) || undefined;
      };
      node = el("div", { class: "field", "data-path": field.path }, label,
        el("div", { class: "money" }, el("span", { class: "currency", "aria-hidden": "true", text: "£" }), input), shown, error);
    } else if (field.type === "when") {
      const start = value ? new Date(value) : new Date();
      input = el("input", { id, type: "datetime-local", required: true, value: localInput(start), "aria-describedby": errorId });
      get = () => (input.value ? new Date(input.value).toISOString().replace(/\.\d{3}Z$/, "Z") : null);
      node = el("div", { class: "field", "data-path": field.path }, label, input, error);
    } else {
      const listId = field.suggestions ? `${id}-list` : null;
      if (field.hint) {
        const hint = el("p", { class: "hint", id: `${id}-hint`, text: field.hint });
        described.push(hint.id);
        input = el("input", { id, type: "text", maxlength: field.max, required: field.required, autocomplete: "off",
          value: value ?? "", list: listId, "aria-describedby": described.join(" ") });
        node = el("div", { class: "field", "data-path": field.path }, label, hint, input, error);
      } else {
        input = el("input", { id, type: "text", maxlength: field.max, required: field.required, autocomplete: "off",
          value: value ?? "", list: listId, "aria-describedby": described.join(" ") });
        node = el("div", { class: "field", "data-path": field.path }, label, input, error);
      }
      if (listId) node.append(el("datalist", { id: listId }, ...field.suggestions.map((s) => el("option", { value: s }))));
      get = () => input.value.trim();
    }
    focus = () => input.focus();
    const setInvalid = (bad) => (bad ? input.setAttribute("aria-invalid", "true") : input.removeAttribute("aria-invalid"));
    node._setInvalid = setInvalid;
  }
  return {
    node,
    get,
    focus,
    hasError: () => !error.hidden,
    setError(message) {
      error.textContent = message ? `${field.label}: ${message}` : "";
      error.hidden = !message;
      node.classList.toggle("invalid", Boolean(message));
      node._setInvalid?.(Boolean(message));
    },
  };
}

// The ledger's message, said for an officer where it helps (a time ahead of the server clock is
// almost always a mistyped date or a device clock that is wrong).
export function explain(path, message) {
  const ahead = /^is (?:(\d+) days?, )?(\d+):(\d\d):\d\d(?:\.\d+)? after the server clock/.exec(message);
  if (path === "occurred_at" && ahead) {
    const [, days, hours, minutes] = ahead;
    const by = days ? `${days} day${days === "1" ? "" : "s"} ${hours} h ${minutes} min` : `${hours} h ${minutes} min`;
    return `is ${by} after the server clock: check the date and time`;
  }
  return message;
}

// Flatten an event into {path: value} (to fill a form) and back.
export function eventValues(event) {
  const values = { occurred_at: event.occurred_at, "location.area": event.location?.area };
  for (const [k, v] of Object.entries(event.payload || {})) values[`payload.${k}`] = v;
  return values;
}

export function payloadOf(kind, values) {
  const payload = {};
  for (const [path, value] of Object.entries(values)) {
    if (path.startsWith("payload.")) payload[path.slice(8)] = value;
  }
  if (kind === "item_seized" && payload.item === "cash") payload.currency = "GBP";
  return payload;
}

// One line describing an event, for the list of the officer's events.
export function describe(event) {
  const p = event.payload || {};
  switch (event.type) {
    case "warrant_executed": return `Warrant ${p.warrant_ref}${p.premises ? `, ${p.premises}` : ""}`;
    case "arrest_made": return `Arrest ${p.person_ref} (${p.age_band})`;
    case "item_seized": {
      if (p.item === "cash") return `Cash seized ${formatPence(p.amount_pence)}`;
      const what = { drug_wrap: `wraps of ${p.substance}`, mobile_phone: "mobile phones", weapon: "weapons", other: "other items" }[p.item];
      return `Seized ${p.quantity} ${what}`;
    }
    case "school_visited": return `School visited ${p.school_ref}${p.pupils_engaged !== undefined ? `, ${p.pupils_engaged} pupils` : ""}`;
    case "vulnerable_person_engaged": return `Vulnerable person ${p.person_ref}${p.safeguarding_referral ? ", referred" : ""}`;
    case "event_voided": return `Void: ${p.reason}`;
    default: return event.type;
  }
}
