// myTurn admin console. Talks to the server's admin API with the admin
// token (kept in this tab's sessionStorage only) and listens to the admin
// event stream. Every piece of data from the server is put into the page
// as text (textContent), never as HTML: a lobby line "<script>" shows as
// those characters.
//
// One model, one source of truth: a full refresh fills it, each admin
// event changes it as it comes, and every table, count, caption and the
// last point of each chart is drawn from it (`figures()`). With the event
// stream open the page refreshes in full only once a minute, as a safety
// net; without it a "not live" badge says so and the page polls.
"use strict";

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("myturn-admin-token") || "";
let socket = null;
let refreshTimer = null;
let reconnectTimer = null;
let started = false;

// How often the page refreshes in full: with the stream open (a safety
// net), and without it (polling).
const SAFETY_MS = 60000;
const POLL_MS = 3000;

const model = {
  users: new Map(),   // name → AdminUser
  pairs: new Map(),   // pair_id → AdminPair
  moderated: false,
  health: null,
  media: null,
  reports: [],
  bans: [],
  blocked: { total: 0, sources: [] },
  sipconf: { files: [] },
  history: { every_secs: 30, samples: [] },
  lobbySeen: new Set(),
  lastOk: 0,
};

// Events heard while a refresh is under way: applied again on top of the
// refreshed model (each event sets a state, so applying one twice is
// harmless), so nothing heard meanwhile is lost.
let replay = null;
// One refresh at a time; one asked for meanwhile runs right after.
let refreshing = false;
let refreshAgain = false;

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function when(unixSecs) {
  if (!unixSecs) return "";
  return new Date(unixSecs * 1000).toLocaleString();
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function hhmm(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// "3 s", "4 min 05 s", "2 h 10 min".
function duration(secs) {
  secs = Math.max(0, Math.floor(secs));
  if (secs < 60) return secs + " s";
  const m = Math.floor(secs / 60), s = secs % 60;
  if (m < 60) return m + " min " + String(s).padStart(2, "0") + " s";
  return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
}

function since(unixSecs) {
  return duration(Date.now() / 1000 - unixSecs);
}

async function api(method, path, body) {
  const headers = { authorization: "Bearer " + token };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401 || r.status === 403) {
    logout("The admin token was refused.");
    throw new Error("unauthorized");
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!r.ok) {
    const msg = data && data.error ? data.error.message : r.status + " " + r.statusText;
    throw new Error(msg);
  }
  return data;
}

function notice(msg) { $("#notice").textContent = msg || ""; }

// A cell, labelled with its column for the phone layout (each row a card).
function cell(text, label) {
  return el("td", text, label ? { "data-label": label } : {});
}

function confirmButton(label, confirmLabel, action) {
  const b = el("button", label, { type: "button", class: "danger" });
  let armed = null;
  b.addEventListener("click", async () => {
    if (!armed) {
      b.textContent = confirmLabel;
      armed = setTimeout(() => { armed = null; b.textContent = label; }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    b.disabled = true;
    try { await action(); notice(""); } catch (e) { notice(e.message); }
    // Bans, reports and blocked sources have no events: read them again.
    scheduleRefresh(0);
  });
  return b;
}

// ---- The figures: one reading of the model for tables, counts, captions
// and charts alike.

function inWaitingRoom(u) { return u.status === "ready" && !u.admitted; }
function waitingForPartner(u) { return u.status === "ready" && u.admitted; }

function figures() {
  const users = [...model.users.values()];
  const byStatus = {};
  for (const u of users) byStatus[u.status] = (byStatus[u.status] || 0) + 1;
  const pairs = [...model.pairs.values()];
  const media = model.media || {};
  return {
    users: users.length,
    byStatus,
    waiting: users.filter(waitingForPartner).length,
    waitingRoom: users.filter(inWaitingRoom).length,
    sip: users.filter((u) => !!u.sip_contact).length,
    pairs: pairs.length,
    inCall: pairs.filter((p) => p.in_call).length,
    relayedCalls: media.calls_count || 0,
  };
}

// ---- Rendering, all from the model.

function statusText(u) {
  if (!model.moderated || u.admitted) return u.status;
  return u.status + (u.status === "ready" ? " (in the waiting room)" : " (not admitted yet)");
}

function renderUsers() {
  const f = figures();
  $("#user-counts").textContent = f.users + " online" +
    Object.entries(f.byStatus).map(([s, n]) => " · " + n + " " + s).join("");
  $("#user-counts").dataset.value = String(f.users);
  const users = [...model.users.values()].sort((a, b) => a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1);
  const pbx = model.health ? model.health.pbx : "";
  $("#users tbody").replaceChildren(...users.map((u) => {
    const tr = el("tr", null, { "data-name": u.name, "data-status": u.status });
    const sip = u.sip_contact || (pbx === "builtin" ? "not registered" : "n/a");
    const online = cell(since(u.since), "Online for");
    online.dataset.since = String(u.since);
    online.title = "since " + when(u.since);
    tr.append(el("th", u.name, { scope: "row", "data-label": "Name" }), cell(statusText(u), "Status"),
      cell((u.interests || []).join(", "), "Interests"), cell(u.extension, "Extension"),
      cell(sip, "SIP"), online);
    const actions = cell(null, "Moderate");
    const box = el("div", null, { class: "row-actions" });
    box.append(confirmButton("Kick", "Really kick " + u.name + "?", () => api("DELETE", "/v1/admin/users/" + encodeURIComponent(u.name))));
    const sel = el("select", null, { "aria-label": "Ban duration for " + u.name });
    for (const [label, secs] of [["1 hour", 3600], ["1 day", 86400], ["1 week", 604800], ["30 days", 2592000]]) {
      sel.append(el("option", label, { value: String(secs) }));
    }
    box.append(sel, confirmButton("Ban", "Really ban " + u.name + "?", () =>
      api("POST", "/v1/admin/bans", { name: u.name, seconds: Number(sel.value) })));
    actions.append(box);
    tr.append(actions);
    return tr;
  }));
}

function renderWaitingRoom() {
  const f = figures();
  const waiting = [...model.users.values()].filter(inWaitingRoom);
  const empty = $("#waiting-empty");
  if (!model.moderated) {
    empty.textContent = "Admission is open: ready users go straight to the pairing pool (" +
      f.waiting + " waiting for a partner now).";
  } else {
    empty.textContent = "Nobody is waiting to be admitted.";
  }
  empty.hidden = model.moderated && waiting.length > 0;
  $("#admit-all").hidden = !model.moderated || waiting.length === 0;
  $("#waiting").replaceChildren(...waiting.map((u) => {
    const li = el("li", null, { "data-name": u.name });
    li.append(el("span", u.name + " "));
    const b = el("button", "Admit", { type: "button", "aria-label": "Admit " + u.name });
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await api("POST", "/v1/admin/admit", { name: u.name }); notice(""); } catch (e) { notice(e.message); b.disabled = false; }
      if (!isLive()) scheduleRefresh(0);
    });
    li.append(b);
    return li;
  }));
}

function relayLine() {
  const m = model.media;
  if (!m || m.mode === "none" || m.mode === "off") return "Media: not relayed by this server.";
  return "Media relay (" + m.mode + "): " + (m.calls_count || 0) + " call(s) anchored now; since start " +
    m.packets + " datagrams, " + m.bytes + " bytes forwarded, " + m.dropped + " dropped.";
}

// A pair's call on this node's relay: the anchored call whose two SIP
// users are the pair's (GET /v1/admin/media, fetched again when the
// relay's figures move). Datagrams each way, and drops.
function relayOf(p) {
  const m = model.media;
  if (!m || m.mode === "none" || m.mode === "off") return "not relayed";
  const key = (a, b) => [String(a).toLowerCase(), String(b).toLowerCase()].sort().join("\n");
  const want = key(p.caller, p.callee);
  const c = (m.calls || []).find((c) => c.users && key(c.users[0], c.users[1]) === want);
  if (!c) return p.in_call ? "not through this node" : "—";
  const dropped = c.caller.dropped + c.callee.dropped;
  return "from the caller " + c.caller.packets + ", from the callee " + c.callee.packets + " datagrams" +
    (dropped ? ", " + dropped + " dropped" : "");
}

let mediaTimer = null;
// The anchored calls again, at most once a second (each relay event says
// the figures moved; the calls' own counters come with GET /v1/admin/media).
function refreshMediaSoon() {
  if (mediaTimer) return;
  mediaTimer = setTimeout(async () => {
    mediaTimer = null;
    try {
      setMedia(await api("GET", "/v1/admin/media"));
      redraw();
    } catch (_) { /* the next refresh says why */ }
  }, 1000);
}

function renderPairs() {
  const f = figures();
  $("#pair-counts").textContent = f.pairs + " pair(s) · " + f.inCall + " in call";
  $("#pairs-media").textContent = relayLine();
  const pairs = [...model.pairs.values()].sort((a, b) => a.since - b.since);
  $("#pairs tbody").replaceChildren(...pairs.map((p) => {
    const tr = el("tr", null, { "data-pair": p.pair_id });
    const paired = cell(since(p.since), "Paired for");
    paired.dataset.since = String(p.since);
    paired.title = "since " + when(p.since);
    const call = cell(p.in_call && p.call_since ? "up for " + since(p.call_since) : (p.in_call ? "up" : "setting up"), "Call");
    if (p.in_call && p.call_since) { call.dataset.since = String(p.call_since); call.dataset.prefix = "up for "; }
    tr.append(cell(p.caller, "Caller"), cell(p.callee, "Callee"),
      cell((p.shared_interests || []).join(", "), "Shared interests"), paired, call, cell(relayOf(p), "Relay"));
    return tr;
  }));
}

// The interests of the users waiting for a partner, from the model.
function renderInterests() {
  const waiting = [...model.users.values()].filter(waitingForPartner);
  const counts = new Map();
  let withSome = 0;
  for (const u of waiting) {
    if ((u.interests || []).length) withSome++;
    for (const t of u.interests || []) counts.set(t, (counts.get(t) || 0) + 1);
  }
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 20);
  $("#interest-counts").textContent = withSome + " of " + waiting.length + " waiting gave some";
  $("#interests-empty").hidden = top.length > 0;
  $("#top-interests").replaceChildren(...top.map(([tag, n]) => el("li", tag + " (" + n + " waiting)")));
}

function renderReports() {
  $("#reports tbody").replaceChildren(...model.reports.slice(-100).reverse().map((r) => {
    const tr = el("tr");
    tr.append(cell(when(r.at), "When"), cell(r.reporter, "Reporter"), cell(r.reported, "Reported"), cell(r.reason, "Reason"));
    return tr;
  }));
}

function renderBans() {
  $("#bans tbody").replaceChildren(...model.bans.map((b) => {
    const tr = el("tr");
    const lift = cell(null, "Lift");
    lift.append(confirmButton("Lift", "Really lift?", () => api("DELETE", "/v1/admin/bans/" + encodeURIComponent(b.name))));
    tr.append(cell(b.name, "Name"), cell(when(b.until), "Until"), lift);
    return tr;
  }));
}

const blockReasons = { flood: "flooding (over --sip-rate-limit)", auth_failures: "failed passwords (--sip-fail-limit)" };

function renderBlocked() {
  const b = model.blocked;
  $("#blocked-empty").hidden = b.total > 0;
  $("#blocked-count").textContent = b.total ? "(" + b.total + ")" : "";
  $("#blocked tbody").replaceChildren(...b.sources.map((s) => {
    const tr = el("tr");
    const lift = cell(null, "Unblock");
    lift.append(confirmButton("Unblock", "Really unblock " + s.ip + "?", () => api("DELETE", "/v1/admin/blocked/" + encodeURIComponent(s.ip))));
    tr.append(cell(s.ip, "Source"), cell(blockReasons[s.reason] || s.reason, "Why"), cell(when(s.since), "Since"),
      cell(when(s.until), "Until"), cell(s.packets + " datagrams, " + s.bytes + " bytes", "Dropped since"), lift);
    return tr;
  }));
}

function renderPbx() {
  const health = model.health, media = model.media;
  if (!health || !media) return;
  const f = figures();
  const rows = [
    ["PBX", health.pbx],
    ["Node", health.node || ""],
    ["In sync", health.pbx_in_sync ? "yes" : "no" + (health.pbx_error ? ": " + health.pbx_error : "")],
    ["TLS", health.tls ? "yes" : "no"],
    ["Registered over SIP", String(f.sip)],
    ["Media relay", media.mode],
    ["Relay ports free", media.ports_capacity ? media.ports_free + " of " + media.ports_capacity + " pairs" : "n/a"],
    ["Relayed calls", String(f.relayedCalls)],
    ["Relay datagrams / dropped", media.packets + " / " + media.dropped],
    ["Relay bytes", String(media.bytes)],
  ];
  if (health.warning) rows.push(["Warning", health.warning]);
  $("#pbx").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  $("#sipconf").textContent = (model.sipconf.files || []).map((f) => "; " + f.name + "\n" + f.content).join("\n");
}

// ---- Charts: axes with units and times; the last point is now.

const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

// A round axis top at or above `max`.
function niceMax(max) {
  if (max <= 1) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(max)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function fmt(v) { return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1); }
function fmtTick(v) { return Number.isInteger(v) ? String(v) : v.toFixed(1); }

// `points`: [[unix ms, value]], oldest first; `now`: the caption's figure
// (the model's, when it has one) and what it reads, for the caption.
function chart(key, title, unit, points, now) {
  const fig = el("figure", null, { class: "chart", "data-chart": key });
  const cap = el("figcaption");
  const value = now.value;
  cap.append(el("span", title + ": "), el("strong", fmt(value) + " " + unit, { class: "value" }),
    el("span", " " + now.note, { class: "muted" }));
  cap.dataset.value = String(value);
  fig.append(cap);
  const W = 320, H = 150, L = 44, R = 8, T = 10, B = 28;
  const svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img",
    "aria-label": title + " over the last hour, in " + unit + "; now " + fmt(value) });
  // The whole last hour, always: the times on the axis read the same on
  // every chart.
  const t1 = points.length ? points[points.length - 1][0] : Date.now();
  const t0 = t1 - 3600 * 1000;
  points = points.filter((p) => p[0] >= t0);
  const top = niceMax(Math.max(0, ...points.map((p) => p[1])));
  const x = (t) => L + (t - t0) / Math.max(1, t1 - t0) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  // Y axis: 0, half, top, with grid lines; its unit.
  for (const v of [0, top / 2, top]) {
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(svgEl("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", class: "tick" }, fmtTick(v)));
  }
  svg.append(svgEl("text", { x: L + 4, y: T + 10, class: "unit" }, unit));
  // X axis: the start, the middle and the end (now), as clock times.
  svg.append(svgEl("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  svg.append(svgEl("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
  for (const [t, anchor] of [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]]) {
    svg.append(svgEl("text", { x: x(t), y: H - B + 16, "text-anchor": anchor, class: "tick" }, hhmm(t)));
  }
  if (points.length > 1) {
    svg.append(svgEl("polyline", { class: "line",
      points: points.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join(" ") }));
  }
  if (points.length) {
    const [t, v] = points[points.length - 1];
    svg.append(svgEl("circle", { cx: x(t), cy: y(v), r: 3, class: "dot" }));
  }
  fig.append(svg);
  return fig;
}

function drawCharts() {
  const f = figures();
  const s = model.history.samples.map((x) => ({ ...x, t: x.at * 1000 }));
  const nowMs = Date.now();
  const last = s.length ? s[s.length - 1] : null;
  const sampled = last ? "(sampled " + clock(last.t) + ")" : "(no sample yet)";
  // A gauge the model knows: the samples, then now.
  const gauge = (k, nowValue) => s.map((x) => [x.t, x[k]]).concat([[nowMs, nowValue]]);
  const rate = (k, per) => s.slice(1).map((x, i) => {
    const dt = (x.at - s[i].at) || 1;
    return [x.t, Math.max(0, (x[k] - s[i][k]) / dt * per)];
  });
  const lastOf = (pts) => pts.length ? pts[pts.length - 1][1] : 0;
  const pairRate = rate("pairings_total", 60), packetRate = rate("relay_packets_total", 1);
  const streams = s.map((x) => [x.t, x.streams]);
  const live = { note: "now, as in the tables" };
  $("#charts").replaceChildren(
    chart("users", "Users online", "users", gauge("users", f.users), { value: f.users, ...live }),
    chart("waiting", "Waiting for a partner", "users", gauge("waiting", f.waiting), { value: f.waiting, ...live }),
    chart("pairings", "Pairings per minute", "pairs/min", pairRate, { value: lastOf(pairRate), note: sampled }),
    chart("relayed", "Relayed calls", "calls", gauge("relayed_calls", f.relayedCalls), { value: f.relayedCalls, ...live }),
    chart("packets", "Relay datagrams per second", "datagrams/s", packetRate, { value: lastOf(packetRate), note: sampled }),
    chart("streams", "Event streams", "streams", streams, { value: lastOf(streams), note: sampled }),
    chart("sip", "Registered over SIP", "users", gauge("sip_bindings", f.sip), { value: f.sip, ...live }),
  );
}

// Everything that reads the users and pairs, redrawn together (once per
// burst of events).
let drawQueued = false;
function redraw() {
  if (drawQueued) return;
  drawQueued = true;
  setTimeout(() => {
    drawQueued = false;
    renderUsers();
    renderWaitingRoom();
    renderPairs();
    renderInterests();
    renderPbx();
    drawCharts();
    document.body.dataset.drawn = String(Date.now());
  }, 0);
}

// The durations tick by themselves, between events.
function tick() {
  for (const td of document.querySelectorAll("td[data-since]")) {
    td.textContent = (td.dataset.prefix || "") + since(Number(td.dataset.since));
  }
}

// ---- The model from the API, and from the events.

function setMedia(media) {
  model.media = { ...media, calls_count: media.calls.length };
}

async function refresh() {
  refreshTimer = null;
  if (refreshing) { refreshAgain = true; return; }
  refreshing = true;
  refreshAgain = false;
  replay = [];
  try {
    const [users, pairs, reports, bans, media, sipconf, health, blocked, history] = await Promise.all([
      api("GET", "/v1/admin/users"), api("GET", "/v1/admin/pairs"), api("GET", "/v1/admin/reports"),
      api("GET", "/v1/admin/bans"), api("GET", "/v1/admin/media"), api("GET", "/v1/admin/sip-conf"),
      fetch("/healthz").then((r) => r.json()), api("GET", "/v1/admin/blocked"), api("GET", "/v1/admin/history"),
    ]);
    model.users = new Map(users.users.map((u) => [u.name, u]));
    model.moderated = !!users.moderated;
    model.pairs = new Map(pairs.pairs.map((p) => [p.pair_id, p]));
    model.reports = reports.reports;
    model.bans = bans.bans;
    setMedia(media);
    model.sipconf = sipconf;
    model.health = health;
    model.blocked = blocked;
    model.history = history;
    const heard = replay;
    replay = null;
    for (const ev of heard) apply(ev);
    model.lastOk = Date.now();
    setStale(false);
    notice("");
    renderReports();
    renderBans();
    renderBlocked();
    redraw();
    document.body.dataset.refreshed = String(Date.now());
  } catch (e) {
    replay = null;
    if (e.message === "unauthorized") { refreshing = false; return; }
    notice("Could not refresh: " + e.message);
    setStale(true);
  }
  refreshing = false;
  scheduleRefresh(refreshAgain ? 0 : (isLive() ? SAFETY_MS : POLL_MS));
}

function scheduleRefresh(ms) {
  if (!token) return;
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, ms);
}

function setStale(stale) {
  document.body.classList.toggle("stale", stale);
  $("#stale-note").hidden = !stale;
  $("#stale-at").textContent = model.lastOk ? clock(model.lastOk) : "never";
}

function isLive() { return !!socket && socket.readyState === 1; }

function badge(state) {
  const b = $("#conn");
  b.dataset.state = state;
  b.textContent = {
    live: "● live",
    polling: "not live: polling every " + POLL_MS / 1000 + " s",
    reconnecting: "not live: reconnecting, polling every " + POLL_MS / 1000 + " s",
    "": "",
  }[state];
}

function lobbyLine(ev) {
  const key = ev.at + "|" + ev.from + "|" + ev.text;
  if (model.lobbySeen.has(key)) return;
  model.lobbySeen.add(key);
  const li = el("li", null, ev.admin ? { class: "mod" } : {});
  const at = ev.at ? el("time", clock(ev.at), { datetime: new Date(ev.at).toISOString(), class: "at" }) : el("span");
  li.append(at, el("span", ev.from, { class: "who" }), el("span", ev.text));
  const list = $("#lobby");
  list.append(li);
  while (list.children.length > 200) list.firstChild.remove();
  list.scrollTop = list.scrollHeight;
}

// One admin event into the model. Returns whether the users or pairs
// changed (and so the tables).
function apply(ev) {
  switch (ev.type) {
    case "user_registered": case "user_status": case "user_interests": case "waiting_room_joined":
    case "waiting_room_left": case "user_admitted": case "sip_registered": case "sip_unregistered":
      model.users.set(ev.user.name, ev.user);
      return true;
    case "user_left":
      model.users.delete(ev.name);
      for (const [id, p] of model.pairs) if (p.caller === ev.name || p.callee === ev.name) model.pairs.delete(id);
      return true;
    case "pair_made": case "call_started":
      model.pairs.set(ev.pair.pair_id, ev.pair);
      return true;
    case "pair_ended":
      model.pairs.delete(ev.pair_id);
      return true;
    case "relay": {
      // The figures of the node this page talks to, as GET /v1/admin/media.
      if (model.health && ev.node !== model.health.node) return false;
      const f = ev.figures;
      model.media = { ...(model.media || { mode: "builtin" }), calls_count: f.calls, packets: f.packets,
        bytes: f.bytes, dropped: f.dropped, ports_free: f.ports_free, ports_capacity: f.ports_capacity };
      refreshMediaSoon();
      return true;
    }
    default:
      return false;
  }
}

function onEvent(ev) {
  if (ev.type === "lobby_message") { lobbyLine(ev); return; }
  if (ev.type === "hello" || ev.type === "lobby_typing" || ev.type === "pong" || ev.type === "error") return;
  if (replay) replay.push(ev);
  if (apply(ev)) redraw();
}

// The event stream: the token rides as a WebSocket subprotocol
// (`bearer.<token>`), which allows only token characters; with any other
// token the console polls instead.
function connect() {
  reconnectTimer = null;
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(token)) {
    badge("polling");
    return;
  }
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/admin/events";
  try {
    socket = new WebSocket(url, ["myturn.v1", "bearer." + token]);
  } catch (_) {
    socket = null;
    badge("polling");
    return;
  }
  socket.onopen = () => {
    badge("live");
    // What changed while the stream was closed: read it all once.
    scheduleRefresh(0);
  };
  socket.onmessage = (m) => {
    let ev = null;
    try { ev = JSON.parse(m.data); } catch (_) { return; }
    onEvent(ev);
  };
  socket.onclose = () => {
    socket = null;
    if (!token) return;
    badge("reconnecting");
    scheduleRefresh(0);
    if (!reconnectTimer) reconnectTimer = setTimeout(connect, 2000);
  };
}

function start() {
  $("#login").hidden = true;
  $("#console").hidden = false;
  $("#logout").hidden = false;
  badge("polling");
  connect();
  refresh();
  if (!started) {
    started = true;
    setInterval(tick, 1000);
    // The charts' own clock: the history gains a sample every 30 s.
    setInterval(async () => {
      if (!token) return;
      try { model.history = await api("GET", "/v1/admin/history"); redraw(); } catch (_) { /* the refresh says */ }
    }, 30000);
  }
}

function logout(why) {
  token = "";
  sessionStorage.removeItem("myturn-admin-token");
  if (socket) socket.close();
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = null;
  $("#console").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = why || "";
  badge("");
}

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  token = $("#token").value.trim();
  try {
    await api("GET", "/v1/admin/users");
  } catch (err) {
    if (err.message !== "unauthorized") $("#login-error").textContent = err.message;
    return;
  }
  sessionStorage.setItem("myturn-admin-token", token);
  $("#token").value = "";
  $("#login-error").textContent = "";
  start();
});

$("#logout").addEventListener("click", () => logout(""));

$("#admit-all").addEventListener("click", async () => {
  try { await api("POST", "/v1/admin/admit", { all: true }); notice(""); } catch (e) { notice(e.message); }
  if (!isLive()) scheduleRefresh(0);
});

$("#lobby-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("#lobby-text");
  try { await api("POST", "/v1/admin/lobby", { text: input.value }); input.value = ""; notice(""); } catch (err) { notice(err.message); }
});

$("#login-form button").disabled = false;
document.body.dataset.ready = "1";
if (token) start();
