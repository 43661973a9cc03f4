// myTurn admin console. Talks to the server's admin API with the admin
// token (kept in this tab's sessionStorage only) and listens to the admin
// event stream. Every piece of data from the server is put into the page
// as text (textContent), never as HTML: a lobby line "<script>" shows as
// those characters.
"use strict";

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("myturn-admin-token") || "";
let socket = null;
let refreshTimer = null;

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

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function cell(text) { return el("td", text); }

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
    scheduleRefresh(0);
  });
  return b;
}

function renderUsers(users) {
  const counts = {};
  for (const u of users) counts[u.status] = (counts[u.status] || 0) + 1;
  $("#user-counts").textContent = users.length + " online" +
    Object.entries(counts).map(([s, n]) => " · " + n + " " + s).join("");
  fill($("#users tbody"), users.map((u) => {
    const tr = el("tr", null, { "data-name": u.name });
    tr.append(cell(u.name), cell(u.status + (u.admitted ? "" : " (waiting room)")),
      cell((u.interests || []).join(", ")), cell(u.extension), cell(when(u.since)));
    const actions = el("td");
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
  const waiting = users.filter((u) => u.status === "ready" && !u.admitted);
  $("#waiting-empty").hidden = waiting.length > 0;
  $("#admit-all").hidden = waiting.length === 0;
  $("#waiting").replaceChildren(...waiting.map((u) => {
    const li = el("li", null, { "data-name": u.name });
    li.append(el("span", u.name + " "));
    const b = el("button", "Admit", { type: "button", "aria-label": "Admit " + u.name });
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await api("POST", "/v1/admin/admit", { name: u.name }); notice(""); } catch (e) { notice(e.message); }
      scheduleRefresh(0);
    });
    li.append(b);
    return li;
  }));
}

function renderPairs(pairs) {
  fill($("#pairs tbody"), pairs.map((p) => {
    const tr = el("tr");
    tr.append(cell(p.caller), cell(p.callee), cell((p.shared_interests || []).join(", ")),
      cell(when(p.since)), cell(p.in_call ? "yes" : "setting up"));
    return tr;
  }));
}

function renderInterests(v) {
  $("#interest-counts").textContent = v.with_interests + " of " + v.waiting + " waiting gave some";
  $("#interests-empty").hidden = v.top.length > 0;
  $("#top-interests").replaceChildren(...v.top.map((t) => el("li", t.tag + " (" + t.waiting + " waiting)")));
}

function renderReports(reports) {
  fill($("#reports tbody"), reports.slice(-100).reverse().map((r) => {
    const tr = el("tr");
    tr.append(cell(when(r.at)), cell(r.reporter), cell(r.reported), cell(r.reason));
    return tr;
  }));
}

function renderBans(bans) {
  fill($("#bans tbody"), bans.map((b) => {
    const tr = el("tr");
    const lift = el("td");
    lift.append(confirmButton("Lift", "Really lift?", () => api("DELETE", "/v1/admin/bans/" + encodeURIComponent(b.name))));
    tr.append(cell(b.name), cell(when(b.until)), lift);
    return tr;
  }));
}

const blockReasons = { flood: "flooding (over --sip-rate-limit)", auth_failures: "failed passwords (--sip-fail-limit)" };

function renderBlocked(b) {
  $("#blocked-empty").hidden = b.total > 0;
  $("#blocked-count").textContent = b.total ? "(" + b.total + ")" : "";
  fill($("#blocked tbody"), b.sources.map((s) => {
    const tr = el("tr");
    const lift = el("td");
    lift.append(confirmButton("Unblock", "Really unblock " + s.ip + "?", () => api("DELETE", "/v1/admin/blocked/" + encodeURIComponent(s.ip))));
    tr.append(cell(s.ip), cell(blockReasons[s.reason] || s.reason), cell(when(s.since)), cell(when(s.until)),
      cell(s.packets + " datagrams, " + s.bytes + " bytes"), lift);
    return tr;
  }));
}

function renderPbx(health, media, sipconf) {
  const rows = [
    ["PBX", health.pbx],
    ["In sync", health.pbx_in_sync ? "yes" : "no" + (health.pbx_error ? ": " + health.pbx_error : "")],
    ["TLS", health.tls ? "yes" : "no"],
    ["Media relay", media.mode],
    ["Relay ports free", media.ports_capacity ? media.ports_free + " of " + media.ports_capacity + " pairs" : "n/a"],
    ["Relayed calls", String(media.calls.length)],
    ["Relay packets / dropped", media.packets + " / " + media.dropped],
  ];
  if (health.warning) rows.push(["Warning", health.warning]);
  $("#pbx").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  $("#sipconf").textContent = (sipconf.files || []).map((f) => "; " + f.name + "\n" + f.content).join("\n");
}

function chart(title, points) {
  const fig = el("figure", null, { class: "chart" });
  const last = points.length ? points[points.length - 1][1] : 0;
  fig.append(el("figcaption", title + ": " + (Number.isInteger(last) ? last : last.toFixed(2))));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 100 40");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title + " over the last hour, now " + last);
  if (points.length > 1) {
    const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
    const max = Math.max(1, ...points.map((p) => p[1]));
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.map(([t, v]) =>
      ((t - t0) / Math.max(1, t1 - t0) * 100).toFixed(2) + "," + (38 - v / max * 36).toFixed(2)).join(" "));
    svg.append(line);
  }
  fig.append(svg);
  return fig;
}

// The server keeps the key figures of the last hour (every 30 s); the
// charts draw them, rates from consecutive counters.
async function drawHistory() {
  let h;
  try { h = await api("GET", "/v1/admin/history"); } catch (_) { return; }
  const s = h.samples.map((x) => ({ ...x, t: x.at * 1000 }));
  const gauge = (k) => s.map((x) => [x.t, x[k]]);
  const rate = (k, per) => s.slice(1).map((x, i) => {
    const dt = (x.at - s[i].at) || 1;
    return [x.t, Math.max(0, (x[k] - s[i][k]) / dt * per)];
  });
  $("#charts").replaceChildren(
    chart("Users online", gauge("users")),
    chart("Waiting for a partner", gauge("waiting")),
    chart("Pairings per minute", rate("pairings_total", 60)),
    chart("Relayed calls", gauge("relayed_calls")),
    chart("Relay packets per second", rate("relay_packets_total", 1)),
    chart("Event streams", gauge("streams")),
    chart("Registered over SIP", gauge("sip_bindings")),
  );
}

async function refresh() {
  refreshTimer = null;
  try {
    const [users, pairs, reports, bans, media, sipconf, health, interests, blocked] = await Promise.all([
      api("GET", "/v1/admin/users"), api("GET", "/v1/admin/pairs"), api("GET", "/v1/admin/reports"),
      api("GET", "/v1/admin/bans"), api("GET", "/v1/admin/media"), api("GET", "/v1/admin/sip-conf"),
      fetch("/healthz").then((r) => r.json()), api("GET", "/v1/admin/interests"), api("GET", "/v1/admin/blocked"),
    ]);
    renderUsers(users.users);
    renderPairs(pairs.pairs);
    renderInterests(interests);
    renderReports(reports.reports);
    renderBans(bans.bans);
    renderBlocked(blocked);
    renderPbx(health, media, sipconf);
    document.body.dataset.refreshed = String(Date.now());
  } catch (e) {
    if (e.message !== "unauthorized") notice("Could not refresh: " + e.message);
  }
  scheduleRefresh(socket && socket.readyState === 1 ? 10000 : 3000);
}

function scheduleRefresh(ms) {
  if (!token) return;
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, ms);
}

function lobbyLine(from, text) {
  const li = el("li");
  li.append(el("span", from, { class: "who" }), el("span", text));
  const list = $("#lobby");
  list.append(li);
  while (list.children.length > 200) list.firstChild.remove();
  list.scrollTop = list.scrollHeight;
}

// The event stream: the token rides as a WebSocket subprotocol
// (`bearer.<token>`), which allows only token characters; with any other
// token the console polls instead.
function connect() {
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(token)) {
    $("#conn").textContent = "polling";
    return;
  }
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/admin/events";
  try {
    socket = new WebSocket(url, ["myturn.v1", "bearer." + token]);
  } catch (_) {
    $("#conn").textContent = "polling";
    return;
  }
  socket.onopen = () => { $("#conn").textContent = "live"; };
  socket.onmessage = (m) => {
    let ev = null;
    try { ev = JSON.parse(m.data); } catch (_) { return; }
    if (ev.type === "lobby_message") lobbyLine(ev.from, ev.text);
    scheduleRefresh(200);
  };
  socket.onclose = () => {
    socket = null;
    if (!token) return;
    $("#conn").textContent = "reconnecting";
    setTimeout(connect, 2000);
  };
}

function start() {
  $("#login").hidden = true;
  $("#console").hidden = false;
  $("#logout").hidden = false;
  connect();
  refresh();
  drawHistory();
  setInterval(drawHistory, 30000);
}

function logout(why) {
  token = "";
  sessionStorage.removeItem("myturn-admin-token");
  if (socket) socket.close();
  $("#console").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = why || "";
  $("#conn").textContent = "";
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
  scheduleRefresh(0);
});

$("#lobby-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("#lobby-text");
  try { await api("POST", "/v1/admin/lobby", { text: input.value }); input.value = ""; notice(""); } catch (err) { notice(err.message); }
});

$("#login-form button").disabled = false;
document.body.dataset.ready = "1";
if (token) start();
