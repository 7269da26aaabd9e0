// opsledger wall-screen dashboard: headline tally, breakdowns by area and by day, live via SSE.
// No framework, no build step; every element is built with textContent (never innerHTML).
"use strict";

(() => {
  const METRICS = [
    ["warrants_executed", "Warrants executed"],
    ["arrests", "Arrests"],
    ["drug_wraps_seized", "Drug wraps seized"],
    ["mobile_phones_seized", "Mobile phones seized"],
    ["weapons_seized", "Weapons seized"],
    ["cash_seized_pence", "Cash seized"],
    ["schools_visited", "Schools visited"],
    ["vulnerable_people_engaged", "Vulnerable people engaged"],
    ["other_items_seized", "Other items seized"],
  ];
  const LABEL = Object.fromEntries(METRICS);
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "opsledger.token";
  const OP_KEY = "opsledger.operation";
  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    authMode: "token", // "oidc": signed in through the identity provider (auth.js)
    operation: null,
    selected: "warrants_executed",
    chosen: false, // true once someone tapped a figure
    data: null,
    source: null, // AbortController of the open stream
    lastEventId: null, // id of the last totals message received (resumes a stream)
    receivedAt: null,
    records: {}, // operation_id -> its entry of GET /v1/operations (title, areas, dates, status)
  };

  // ---- formatting --------------------------------------------------------------------------
  const whole = new Intl.NumberFormat("en-GB");
  const money = new Intl.NumberFormat("en-GB", {
    style: "currency", currency: "GBP", minimumFractionDigits: 2, maximumFractionDigits: 2,
  });
  function fmt(metric, value) {
    return metric === "cash_seized_pence" ? money.format(value / 100) : whole.format(value);
  }
  function fmtShort(metric, value) {
    if (metric !== "cash_seized_pence") return whole.format(value);
    const pounds = value / 100;
    return pounds >= 10000 ? "£" + whole.format(Math.round(pounds / 1000)) + "k" : money.format(pounds);
  }
  const time = (d) => d.toLocaleTimeString("en-GB", { hour12: false });
  function ago(seconds) {
    if (seconds < 5) return "just now";
    if (seconds < 90) return `${Math.round(seconds)} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} days ago`;
  }

  // ---- token and operation -----------------------------------------------------------------
  // The token may arrive in the page's fragment (#token=...), which browsers never send to a
  // server, so it is in no request line or proxy log; it is moved to localStorage at once.
  function readParams() {
    const url = new URL(window.location.href);
    const fragment = new URLSearchParams(url.hash.slice(1));
    const token = fragment.get("token");
    const operation = url.searchParams.get("operation") || fragment.get("operation");
    if (token) localStorage.setItem(TOKEN_KEY, token);
    if (operation) localStorage.setItem(OP_KEY, operation);
    if (token) {
      // Keep the token out of the address bar, history and any screenshot of it.
      window.history.replaceState(null, "", url.pathname + url.search);
    }
    state.token = state.authMode === "oidc" ? window.OpsledgerAuth.token : localStorage.getItem(TOKEN_KEY);
    state.operation = operation || localStorage.getItem(OP_KEY);
  }

  // Seconds until the token's `exp` (not verified here: the server does that).
  function tokenLifetime(token) {
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(payload)).exp - Date.now() / 1000;
    } catch (_) {
      return -1;
    }
  }

  // A renewed token: one stored since (by another tab or a new sign-in) that is still valid.
  // Without one the page asks for a token, keeping its place in the stream for when it comes.
  async function renewToken() {
    if (state.authMode === "oidc") {
      // Usually renewed ahead of expiry already (auth.js); else renew now.
      if (tokenLifetime(state.token) <= 5) state.token = await window.OpsledgerAuth.renew();
      return tokenLifetime(state.token) > 5;
    }
    const stored = localStorage.getItem(TOKEN_KEY);
    if (stored && stored !== state.token && tokenLifetime(stored) > 5) {
      state.token = stored;
      return true;
    }
    return tokenLifetime(state.token) > 5;
  }

  async function api(path) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      const error = new Error(`${response.status}: ${detail}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function showLogin(message) {
    if (state.source) state.source.abort();
    $("board").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setLive("off", "signed out");
  }

  // ---- building the page -------------------------------------------------------------------
  function buildTiles() {
    const tiles = $("tiles");
    tiles.replaceChildren();
    for (const [metric, label] of METRICS) {
      const tile = document.createElement("button");
      tile.type = "button";
      tile.className = "tile";
      tile.dataset.metric = metric;
      const figure = document.createElement("span");
      figure.className = "figure";
      figure.textContent = "–";
      const caption = document.createElement("span");
      caption.className = "label";
      caption.textContent = label;
      tile.append(figure, caption);
      tile.addEventListener("click", () => {
        state.chosen = true;
        select(metric);
      });
      tile.addEventListener("animationend", () => tile.classList.remove("bump"));
      tiles.append(tile);
    }
    markSelected();
  }

  function select(metric) {
    state.selected = metric;
    markSelected();
    if (state.data) drawCharts(state.data);
  }

  function markSelected() {
    for (const tile of document.querySelectorAll(".tile")) {
      tile.classList.toggle("selected", tile.dataset.metric === state.selected);
      tile.setAttribute("aria-pressed", String(tile.dataset.metric === state.selected));
    }
    for (const el of document.querySelectorAll("[data-role=metric-name]")) {
      el.textContent = LABEL[state.selected] || state.selected;
    }
  }

  function setLive(kind, text) {
    const el = $("live");
    el.className = `live ${kind}`;
    el.textContent = text;
  }

  // ---- rendering an update -----------------------------------------------------------------
  function render(data) {
    const first = state.data === null;
    state.data = data;
    if (!state.chosen && !(data.metrics[state.selected] > 0)) {
      // Until someone picks, chart the first figure that has something to show.
      const some = METRICS.find(([m]) => data.metrics[m] > 0);
      if (some) {
        state.selected = some[0];
        markSelected();
      }
    }
    state.receivedAt = new Date();
    for (const tile of document.querySelectorAll(".tile")) {
      const metric = tile.dataset.metric;
      const value = data.metrics[metric] ?? 0;
      const figure = tile.querySelector(".figure");
      const text = fmt(metric, value);
      if (figure.textContent !== text) {
        figure.textContent = text;
        tile.dataset.value = String(value);
        if (!first) flash(tile);
      }
      tile.classList.toggle("zero", value === 0);
    }
    drawCharts(data);
    renderFreshness();
  }

  function flash(tile) {
    tile.classList.remove("bump");
    void tile.offsetWidth; // restart the animation
    tile.classList.add("bump");
  }

  function sumBy(groups, key, metric) {
    const out = new Map();
    for (const group of groups || []) {
      const name = group[key] ?? "—";
      out.set(name, (out.get(name) || 0) + (group.metrics[metric] || 0));
    }
    return out;
  }

  function drawCharts(data) {
    const metric = state.selected;
    const areas = [...sumBy(data.groups, "area", metric)].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    drawBars($("by-area"), areas, metric);
    drawColumns($("by-day"), fillDays(sumBy(data.groups, "day", metric)), metric);
  }

  function fillDays(byDay) {
    const days = [...byDay.keys()].filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d)).sort();
    if (days.length === 0) return [];
    const out = [];
    const end = new Date(days[days.length - 1] + "T00:00:00Z");
    for (let d = new Date(days[0] + "T00:00:00Z"); d <= end && out.length < 62; d.setUTCDate(d.getUTCDate() + 1)) {
      const key = d.toISOString().slice(0, 10);
      out.push([key, byDay.get(key) || 0]);
    }
    return out;
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function emptyChart(svg, width, height) {
    svg.append(el("text", { x: width / 2, y: height / 2, class: "empty", "text-anchor": "middle" }, "nothing recorded yet"));
  }

  // Horizontal bars: one row per area, largest first.
  function drawBars(svg, rows, metric) {
    const width = svg.clientWidth || 600;
    const height = svg.clientHeight || 260;
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (rows.length === 0 || rows.every(([, v]) => v === 0)) return emptyChart(svg, width, height);
    const max = Math.max(...rows.map(([, v]) => v), 1);
    const labelW = Math.min(220, width * 0.34);
    const valueW = 110;
    const rowH = Math.min(72, height / rows.length);
    const barH = Math.min(44, rowH * 0.62);
    const offset = (height - rows.length * rowH) / 2; // centre a short list in its panel
    rows.forEach(([name, value], i) => {
      const y = offset + i * rowH + (rowH - barH) / 2;
      const w = Math.max(2, ((width - labelW - valueW) * value) / max);
      svg.append(el("text", { x: labelW - 14, y: y + barH / 2, class: "axis", "text-anchor": "end", "dominant-baseline": "central" }, name));
      svg.append(el("rect", { x: labelW, y, width: w, height: barH, rx: 5, class: `bar c${i % 6}` }));
      svg.append(el("text", { x: labelW + w + 10, y: y + barH / 2, class: "value", "dominant-baseline": "central" }, fmtShort(metric, value)));
    });
  }

  // Vertical columns: one per day, in order, empty days shown as zero.
  function drawColumns(svg, rows, metric) {
    const width = svg.clientWidth || 600;
    const height = svg.clientHeight || 260;
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (rows.length === 0 || rows.every(([, v]) => v === 0)) return emptyChart(svg, width, height);
    const max = Math.max(...rows.map(([, v]) => v), 1);
    const top = 30, bottom = 44, side = 8;
    const slot = (width - 2 * side) / rows.length;
    const colW = Math.min(72, slot * 0.7);
    const plotH = height - top - bottom;
    svg.append(el("line", { x1: side, x2: width - side, y1: top + plotH, y2: top + plotH, class: "baseline" }));
    rows.forEach(([day, value], i) => {
      const h = Math.max(value ? 3 : 0, (plotH * value) / max);
      const x = side + i * slot + (slot - colW) / 2;
      const date = new Date(day + "T12:00:00Z");
      const label = date.toLocaleDateString("en-GB", { weekday: "short", day: "numeric", timeZone: "UTC" });
      svg.append(el("rect", { x, y: top + plotH - h, width: colW, height: h, rx: 5, class: "bar c0" }));
      svg.append(el("text", { x: x + colW / 2, y: top + plotH - h - 9, class: "value", "text-anchor": "middle" }, value ? fmtShort(metric, value) : ""));
      svg.append(el("text", { x: x + colW / 2, y: height - 16, class: "axis", "text-anchor": "middle" }, label));
    });
  }

  function renderFreshness() {
    const data = state.data;
    const line = $("freshness");
    if (!data) return;
    const f = data.freshness || {};
    const parts = [`Updated ${time(state.receivedAt)}`];
    if (f.last_event_at) {
      const at = new Date(f.last_event_at);
      parts.push(`last event applied ${time(at)} (${ago((Date.now() - at.getTime()) / 1000)})`);
    }
    if (f.lag === null || f.lag === undefined) parts.push("lag unknown");
    else parts.push(f.lag === 0 ? "aggregator up to date" : `${whole.format(f.lag)} records behind`);
    const offsets = (f.partitions || []).length;
    if (offsets) parts.push(`${offsets} ${offsets === 1 ? "partition" : "partitions"} applied`);
    parts.push(`event #${whole.format(data.version)}`);
    line.textContent = parts.join(" · ");
    line.classList.toggle("behind", Boolean(f.lag));
  }

  // Areas, planned window and status under the title; an implicit operation shows only its slug.
  const day = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  function describe(record) {
    if (!record || record.status === "implicit" || !record.planned_start) return "";
    const parts = [];
    if (record.areas && record.areas.length) parts.push(record.areas.join(", "));
    parts.push(`planned ${day.format(new Date(record.planned_start))} – ${day.format(new Date(record.planned_end))}`);
    parts.push(record.closed_at ? `closed ${day.format(new Date(record.closed_at))}` : record.status);
    return parts.join(" · ");
  }

  // ---- connecting ----------------------------------------------------------------------------
  // fetch, not EventSource: EventSource cannot send an Authorization header, and a token must
  // never travel in a URL. The text/event-stream format is parsed here (id, event, data, retry).
  function connect(operation) {
    if (state.source) state.source.abort();
    if (operation !== state.operation) {
      state.data = null;
      state.lastEventId = null;
    }
    state.operation = operation;
    localStorage.setItem(OP_KEY, operation);
    const record = state.records[operation];
    const title = (record && record.title) || operation;
    $("operation-name").textContent = title;
    $("operation-detail").textContent = describe(record);
    document.title = `${title} · opsledger`;
    const controller = new AbortController();
    state.source = controller;
    setLive("off", "connecting");
    stream(operation, controller).then(async (outcome) => {
      if (controller.signal.aborted) return;
      if (outcome.signedOut) return showLogin(outcome.message);
      if (outcome.expired && !(await renewToken())) {
        return showLogin("Your token expired: paste a new one to resume where the board left off.");
      }
      setLive("off", outcome.expired ? "renewing" : "reconnecting");
      setTimeout(() => connect(operation), outcome.expired ? 0 : outcome.retryMs);
    });
  }

  async function stream(operation, controller) {
    const query = new URLSearchParams([["group_by", "area"], ["group_by", "day"]]);
    const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
    if (state.lastEventId !== null) headers["Last-Event-ID"] = state.lastEventId;
    const outcome = { expired: false, signedOut: false, message: "", retryMs: 3000 };
    let response;
    try {
      response = await fetch(`/v1/operations/${encodeURIComponent(operation)}/stream?${query}`, {
        headers, signal: controller.signal, cache: "no-store",
      });
    } catch (_) {
      return outcome; // network: retry
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      if (response.status === 401 && detail === "token expired") {
        outcome.expired = true; // renewed by the caller, or the sign-in form asks for a new one
      } else if (response.status === 401 || response.status === 403) {
        Object.assign(outcome, { signedOut: true, message: `${response.status}: ${detail}` });
      } else {
        setLive("off", `${response.status}: ${detail}`);
      }
      return outcome;
    }
    setLive("on", "live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { type: "message", data: [], id: null };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end).replace(/\r$/, "");
          buffer = buffer.slice(end + 1);
          if (line === "") {
            dispatch(event, outcome);
            event = { type: "message", data: [], id: null };
            continue;
          }
          if (line.startsWith(":")) continue; // heartbeat
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "data") event.data.push(text);
          else if (field === "event") event.type = text;
          else if (field === "id") event.id = text;
          else if (field === "retry" && /^\d+$/.test(text)) outcome.retryMs = Number(text);
        }
      }
    } catch (_) {
      /* aborted or the connection dropped: the caller reconnects */
    }
    return outcome;
  }

  function dispatch(event, outcome) {
    if (event.type === "token-expired") {
      outcome.expired = true;
      return;
    }
    if (event.type !== "message" || event.data.length === 0) return;
    if (event.id !== null) state.lastEventId = event.id;
    setLive("on", "live");
    render(JSON.parse(event.data.join("\n")));
  }

  async function start() {
    readParams();
    if (!state.token) return showLogin();
    $("login").hidden = true;
    $("board").hidden = false;
    buildTiles();
    let listing;
    try {
      listing = await api("/v1/operations");
    } catch (error) {
      return showLogin(error.status === 401 || error.status === 403 ? error.message : `cannot reach the service: ${error.message}`);
    }
    const ids = listing.operations.map((o) => o.operation_id);
    state.records = Object.fromEntries(listing.operations.map((o) => [o.operation_id, o]));
    const select = $("operation");
    select.replaceChildren(...ids.map((id) => new Option(state.records[id].title || id, id)));
    select.hidden = ids.length < 2;
    select.onchange = () => connect(select.value);
    const operation = state.operation && (ids.includes(state.operation) || !ids.length) ? state.operation : ids[0];
    if (!operation) {
      $("freshness").textContent = "No operation has any events yet; this page will show the first.";
      setTimeout(start, 5000);
      return;
    }
    select.value = operation;
    connect(operation);
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    const op = $("operation-input").value.trim();
    if (op) localStorage.setItem(OP_KEY, op);
    start();
  });
  $("logout").addEventListener("click", (event) => {
    event.preventDefault();
    if (state.authMode === "oidc") {
      window.OpsledgerAuth.signOut();
      window.OpsledgerAuth.signIn("login");
      return;
    }
    localStorage.removeItem(TOKEN_KEY);
    showLogin();
  });
  window.addEventListener("resize", () => state.data && drawCharts(state.data));
  setInterval(() => {
    $("clock").textContent = time(new Date());
    renderFreshness();
  }, 1000);
  $("clock").textContent = time(new Date());

  // Signed in through the identity provider when the service names one (auth.js); otherwise
  // (the development issuer) a pasted token.
  async function signInThenStart() {
    try {
      const auth = await window.OpsledgerAuth.init();
      state.authMode = auth.mode;
      if (auth.mode === "oidc") {
        window.OpsledgerAuth.onToken((token) => { state.token = token; });
      }
    } catch (error) {
      return showLogin(`sign-in failed: ${error.message}`);
    }
    start();
  }
  signInThenStart();
})();
