// myTurn's browser client. The end-to-end core is Rust compiled to
// WebAssembly (myturn-web: myturn-media's key agreement, seal, replay
// window and playout; myturn-sip's agent); this script only moves bytes
// between it, the sockets and the sound card, and shows what happens.
// Everything shown from others goes in as text (textContent), never HTML.
//
// The flow is the terminal client's: POST /v1/users, the event stream,
// SIP over WebSocket (/sip) to register; `ready` with this call's key
// fingerprint; the partner from GET /v1/me/peer; `ready_to_talk`; the
// callee answers the caller's INVITE; the media (a WebRTC data channel, or
// the /media WebSocket, bridged onto the relay's UDP) carries the sealed
// key agreement, audio and text.
import init, { MediaKey, Call, Sip } from "/web/myturn_web.js";

const RATE = 8000; // what a caller offers: the terminal client's default
const PEER_TIMEOUT_S = 5; // the terminal client's --peer-timeout
const KEEPALIVE_MS = 10000;
const KEPT_FRAMES = 250; // frames the test hook keeps (5 s)

const $ = (id) => document.getElementById(id);
const now = () => performance.now();

// What a test (or a curious user, in the console) can read.
const hook = (window.myturnTest = {
  state: "loading",
  sas: null,
  frames: 0,
  kept: [],
  chat: [],
  ended: null,
  transport: null,
  mic: null,
  sent: 0,
  steps: [], // [step, page ms]: how the last call was set up
  // Mouth-to-ear inside the page, for tests: a frame's fingerprint → when
  // it was framed from the microphone (`sentAt`) or reaches the speaker
  // (`heardAt`: popped from the playout plus the worklet's queue), on the
  // clock every tab shares (timeOrigin + now, ms). The first 500 voiced
  // frames only.
  sentAt: {},
  heardAt: {},
});

const TIMED_FRAMES = 500;

function wallNow() {
  return performance.timeOrigin + performance.now();
}

// A frame's fingerprint: a few of its samples (voiced frames only).
function frameKey(pcm) {
  let energy = 0;
  for (let k = 0; k < pcm.length; k += 8) energy += Math.abs(pcm[k]);
  if (energy < 2000) return null;
  return pcm[0] + "," + pcm[17] + "," + pcm[53] + "," + pcm[101] + "," + pcm[pcm.length - 1];
}

function step(name) {
  hook.steps.push([name, Math.round(now())]);
}

const S = {
  token: null,
  refresh: null,
  issued: 0,
  expiresIn: 900,
  name: null,
  creds: null,
  events: null,
  sip: null,
  call: null, // the current call, see startCall
  waiting: false,
  lastPeer: null,
};

// ---- what the page shows -------------------------------------------------

const SECTIONS = ["login", "lobby", "call", "ended"];

function show(state) {
  const section = { login: "login", lobby: "lobby", waiting: "lobby", call: "call", ended: "ended" }[state];
  for (const s of SECTIONS) $(s).hidden = s !== section;
  document.body.dataset.state = state;
  hook.state = state;
  $("ready-form").hidden = state === "waiting";
  $("stop-waiting").hidden = state !== "waiting";
  if (state !== "waiting") $("waiting").textContent = "";
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function logLine(list, from, text, cls) {
  const li = document.createElement("li");
  if (from) {
    const f = document.createElement("span");
    f.className = "from" + (cls ? " " + cls : "");
    f.textContent = from + ": ";
    li.append(f);
  }
  li.append(document.createTextNode(text));
  $(list).append(li);
  $(list).scrollTop = $(list).scrollHeight;
}

// ---- the HTTP API ---------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (S.token) headers.authorization = "Bearer " + S.token;
  if (body !== undefined) headers["content-type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "unreachable", "the server cannot be reached");
  }
  if (r.status === 204) return null;
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(r.status, err.code || "http_" + r.status, err.message || "the server said " + r.status);
  }
  return data;
}

function wsUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

async function keepAlive() {
  if (!S.token) return;
  try {
    if ((Date.now() - S.issued) / 1000 > S.expiresIn * 0.75) {
      const pair = await api("POST", "/v1/session/refresh", { refresh_token: S.refresh });
      S.token = pair.token;
      S.refresh = pair.refresh_token;
      S.issued = Date.now();
      if (S.events && S.events.readyState === WebSocket.OPEN) {
        S.events.send(JSON.stringify({ type: "reauth", token: S.token }));
      }
    }
    await api("GET", "/v1/me");
  } catch (e) {
    if (e.status === 401) {
      notice("Your session ended (" + e.message + "). Join again.");
      leave();
    }
  }
}

// ---- waiters: a step waits for an event from a socket ---------------------

const waiters = new Set();

function waitFor(what, pred, ms) {
  return new Promise((resolve, reject) => {
    const w = {
      pred,
      resolve: (v) => { clearTimeout(w.timer); waiters.delete(w); resolve(v); },
      reject: (e) => { clearTimeout(w.timer); waiters.delete(w); reject(e); },
    };
    w.timer = setTimeout(() => w.reject(new Error("timed out waiting for " + what)), ms);
    waiters.add(w);
  });
}

function offer(ev) {
  for (const w of [...waiters]) {
    if (w.pred(ev)) w.resolve(ev);
  }
}

function cancelWaiters(why) {
  for (const w of [...waiters]) w.reject(new Error(why));
}

// ---- the event stream -----------------------------------------------------

function openEvents() {
  const ws = new WebSocket(wsUrl("/v1/events"), ["myturn.v1", "bearer." + S.token]);
  S.events = ws;
  ws.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch (_) { return; }
    offer({ src: "events", ...ev });
    switch (ev.type) {
      case "lobby_message":
        logLine("lobby-log", ev.from + (ev.admin ? " (moderator)" : ""), ev.text, ev.from === S.name ? "me" : "");
        break;
      case "peer_left":
        if (S.call) endCall(leaveText(ev.reason), false);
        break;
      case "kicked":
        notice("A moderator removed you.");
        leave();
        break;
      case "banned":
        notice("You are banned until " + new Date(ev.until * 1000).toLocaleString() + ".");
        leave();
        break;
      case "session_expired":
        notice("Your session expired. Join again.");
        leave();
        break;
      case "error":
        notice(ev.message);
        break;
    }
  };
  ws.onclose = () => {
    if (S.events === ws) S.events = null;
  };
}

function leaveText(reason) {
  return {
    hung_up: "Your partner hung up.",
    logged_out: "Your partner left myTurn.",
    kicked: "A moderator removed your partner.",
    banned: "Your partner was banned.",
    expired: "Your partner's connection was lost.",
  }[reason] || "Your partner left (" + reason + ").";
}

// ---- SIP over WebSocket ---------------------------------------------------

class SipLink {
  constructor(creds) {
    this.agent = new Sip(creds.username, creds.password, creds.domain, now());
    this.timer = null;
    this.registered = false;
    this.ws = new WebSocket(wsUrl("/sip"), "sip");
    this.ws.onopen = () => { this.agent.register(now()); this.drain(); };
    this.ws.onmessage = (m) => { this.agent.handle_message(now(), String(m.data)); this.drain(); };
    this.ws.onclose = () => {
      if (S.sip === this && S.token) notice("The connection to the phone service was lost. Reload the page to join again.");
    };
  }

  drain() {
    let m;
    while ((m = this.agent.poll_transmit())) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(m);
    }
    let e;
    while ((e = this.agent.poll_event())) this.onEvent(JSON.parse(e));
    clearTimeout(this.timer);
    const at = this.agent.poll_timeout();
    if (at !== undefined && at !== null) {
      this.timer = setTimeout(() => { this.agent.handle_timeout(now()); this.drain(); }, Math.max(0, at - now()));
    }
  }

  onEvent(ev) {
    if (ev.type === "registered") this.registered = true;
    if (ev.type === "registration_failed") notice("The phone service refused this account (" + ev.code + " " + ev.reason + ").");
    if (ev.type === "incoming_call") {
      if (S.call && S.call.expectingInvite && !S.call.invite) {
        S.call.invite = ev; // kept for the callee's step, whenever it looks
      } else {
        this.agent.hangup(now(), ev.call); // nobody expects a call: refused
      }
    }
    if (ev.type === "call_ended" && S.call && S.call.sipCall === ev.call) {
      S.call.sipCall = null;
      endCall(ev.by === "remote" ? "Your partner hung up." : "The call's signalling ended.", false);
    }
    offer({ src: "sip", ...ev });
  }

  close() {
    clearTimeout(this.timer);
    try { this.agent.unregister(now()); this.drain(); } catch (_) {}
    this.ws.close();
  }
}

// ---- joining --------------------------------------------------------------

async function join(name) {
  const u = await api("POST", "/v1/users", { name });
  S.token = u.token;
  S.refresh = u.refresh_token;
  S.expiresIn = u.expires_in;
  S.issued = Date.now();
  S.name = u.name;
  S.creds = u.sip;
  $("who").textContent = "You are " + u.name;
  $("who").hidden = false;
  openEvents();
  S.sip = new SipLink(u.sip);
  S.keepalive = setInterval(keepAlive, KEEPALIVE_MS);
  await waitFor("the phone service", (e) => e.src === "sip" && (e.type === "registered" || e.type === "registration_failed"), 15000);
  if (!S.sip.registered) throw new Error("the phone service did not register this account");
  show("lobby");
  $("ready").focus();
}

function leave() {
  if (S.call) endCall("You left.", true);
  cancelWaiters("left");
  clearInterval(S.keepalive);
  if (S.sip) S.sip.close();
  if (S.events) S.events.close();
  S.token = null;
  S.sip = null;
  $("who").hidden = true;
  show("login");
}

// ---- waiting and pairing --------------------------------------------------

function interests() {
  const tags = $("interests").value.split(",").map((t) => t.trim().toLowerCase()).filter(Boolean);
  return tags.length ? tags : undefined;
}

async function ready() {
  notice("");
  hook.sas = null; // the last call's, until the next call agrees its own
  const key = new MediaKey();
  const fp = key.fingerprint();
  const me = await api("PUT", "/v1/me/status", { status: "ready", media_key: fp, interests: interests() });
  show("waiting");
  const tags = (me && me.interests) || [];
  $("waiting").textContent = tags.length
    ? "Waiting for someone who likes " + tags.join(", ") + "…"
    : "Waiting for someone to talk to…";
  S.waiting = true;
  // The media transport is opened while waiting: its handshakes (ICE,
  // DTLS, SCTP) then cost the call nothing.
  premedia();
  let peer = null;
  while (S.waiting && !peer) {
    peer = await api("GET", "/v1/me/peer?wait=15");
  }
  if (!S.waiting) { key.free(); return; }
  S.waiting = false;
  hook.steps = [];
  step("paired " + peer.role);
  await startCall(peer, key, fp);
}

// A transport opened ahead is used if it is fresh (the bridge drops a
// silent page after 60 s) and still open.
const PREMEDIA_FRESH_MS = 45000;

function premedia() {
  if (S.pre) S.pre.promise.then((l) => l.close(), () => {});
  const pre = { at: now(), gone: false, promise: openMedia() };
  pre.promise.then((l) => { l.onGone = () => { pre.gone = true; }; }, () => {});
  S.pre = pre;
}

async function takeMedia() {
  const pre = S.pre;
  S.pre = null;
  if (pre && now() - pre.at < PREMEDIA_FRESH_MS) {
    try {
      const link = await pre.promise;
      if (!pre.gone) return link;
      link.close();
    } catch (_) {}
  } else if (pre) {
    pre.promise.then((l) => l.close(), () => {});
  }
  return openMedia();
}

async function stopWaiting() {
  if (S.pre) { S.pre.promise.then((l) => l.close(), () => {}); S.pre = null; }
  S.waiting = false;
  await api("PUT", "/v1/me/status", { status: "busy" }).catch(() => {});
  show("lobby");
}

// ---- a call ---------------------------------------------------------------

// The media transport: a WebRTC data channel (unordered, never
// retransmitted: a late frame is worth nothing) terminated by the server,
// or, where UDP is blocked, the WebSocket. Either carries the same
// conversation: `bound` first, then `peer`, then one sealed datagram per
// binary message. `?transport=websocket` forces the fallback.
const DATA_CHANNEL_WITHIN_MS = 4000;

async function openMedia() {
  if (new URLSearchParams(location.search).get("transport") !== "websocket" && window.RTCPeerConnection) {
    try {
      return await openDataChannel();
    } catch (e) {
      console.warn("myTurn: no data channel (" + e.message + "), using the WebSocket");
    }
  }
  return openWebSocket();
}

function mediaLink(kind, send, close, bound) {
  return { kind, send, close, bound, onDatagram: null, onGone: null };
}

async function openDataChannel() {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const dc = pc.createDataChannel("myturn-media", { ordered: false, maxRetransmits: 0 });
  dc.binaryType = "arraybuffer";
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  let answer;
  try {
    answer = await api("POST", "/media/webrtc", { sdp: pc.localDescription.sdp });
  } catch (e) {
    pc.close();
    throw e;
  }
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  const bound = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("the data channel did not open")), DATA_CHANNEL_WITHIN_MS);
    dc.onmessage = (m) => {
      if (typeof m.data !== "string") return;
      const hello = JSON.parse(m.data);
      if (hello.type === "bound") {
        clearTimeout(t);
        resolve(hello.addr);
      }
    };
  }).catch((e) => {
    pc.close();
    throw e;
  });
  const link = mediaLink(
    "webrtc",
    (d) => { if (dc.readyState === "open") dc.send(d); },
    () => { dc.onclose = null; pc.close(); },
    bound,
  );
  link.sendText = (t) => { if (dc.readyState === "open") dc.send(t); };
  dc.onmessage = (m) => { if (typeof m.data !== "string" && link.onDatagram) link.onDatagram(new Uint8Array(m.data)); };
  dc.onclose = () => { if (link.onGone) link.onGone(); };
  return link;
}

function openWebSocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl("/media"), ["myturn-media", "bearer." + S.token]);
    ws.binaryType = "arraybuffer";
    const t = setTimeout(() => reject(new Error("the media bridge did not open")), 10000);
    ws.onmessage = (m) => {
      if (typeof m.data !== "string") return;
      const hello = JSON.parse(m.data);
      if (hello.type !== "bound") return;
      clearTimeout(t);
      const link = mediaLink(
        "websocket",
        (d) => { if (ws.readyState === WebSocket.OPEN) ws.send(d); },
        () => { ws.onclose = null; ws.close(); },
        hello.addr,
      );
      link.sendText = (s) => { if (ws.readyState === WebSocket.OPEN) ws.send(s); };
      ws.onmessage = (m2) => { if (typeof m2.data !== "string" && link.onDatagram) link.onDatagram(new Uint8Array(m2.data)); };
      ws.onclose = () => { if (link.onGone) link.onGone(); };
      resolve(link);
    };
    ws.onerror = () => { clearTimeout(t); reject(new Error("the media bridge refused the connection")); };
  });
}

async function partnerListening(c) {
  const t0 = now();
  while (S.call === c) {
    const p = await api("GET", "/v1/me/peer?wait=0");
    if (!p) throw new Error("the pair ended");
    if (p.peer_status === "ready_to_talk" || p.peer_status === "in_call") return;
    if (now() - t0 > 30000) throw new Error("the partner never got ready");
    await waitFor("the partner", (e) => e.src === "events" && e.type === "peer_ready_to_talk", 500).catch(() => {});
  }
  throw new Error("the call ended");
}

async function startCall(peer, key, fp) {
  const c = { peer, sipCall: null, media: null, session: null, expectingInvite: peer.role === "callee", muted: false, ended: false, audio: null, timer: null, lastBytes: 0 };
  S.call = c;
  S.lastPeer = peer.peer.name;
  show("call");
  $("peer-name").textContent = peer.peer.name;
  $("shared").textContent = peer.shared_interests && peer.shared_interests.length ? "You both like " + peer.shared_interests.join(", ") + "." : "";
  $("call-status").textContent = "Connecting…";
  $("sas-box").hidden = true;
  $("chat-log").replaceChildren();
  $("stats").replaceChildren();
  setChat(false);
  hook.sas = null;
  hook.frames = 0;
  hook.kept = [];
  hook.chat = [];
  hook.ended = null;
  try {
    c.media = await takeMedia();
    step("media " + c.media.kind);
    c.media.onGone = () => { if (S.call === c) endCall("The media connection to the server was lost.", true); };
    hook.transport = c.media.kind;
    $("transport").textContent = c.media.kind === "webrtc"
      ? "Media goes over a WebRTC data channel to the server, sealed end to end."
      : "UDP seems blocked here: media goes over this page's WebSocket to the server. Lost packets add delay on this connection.";
    await api("PUT", "/v1/me/status", { status: "ready_to_talk" });
    step("ready_to_talk");
    let remote;
    if (peer.role === "callee") {
      $("call-status").textContent = "Waiting for " + peer.peer.name + "'s call…";
      const inc = c.invite || (await waitFor("the partner's call", (e) => e.src === "sip" && e.type === "incoming_call", 30000));
      if (!inc.offer) throw new Error("the partner's call has no media description");
      c.sipCall = inc.call;
      step("invited");
      S.sip.agent.answer(now(), inc.call, c.media.bound, fp);
      S.sip.drain();
      remote = inc.offer;
    } else {
      $("call-status").textContent = "Waiting for " + peer.peer.name + " to get ready…";
      await partnerListening(c);
      step("partner listening");
      $("call-status").textContent = "Calling " + peer.peer.name + "…";
      c.sipCall = S.sip.agent.invite(now(), peer.peer.extension, c.media.bound, RATE, fp);
      S.sip.drain();
      const ans = await waitFor("the answer", (e) => e.src === "sip" && (e.type === "answered" || e.type === "call_failed") && e.call === c.sipCall, 30000);
      step("answered");
      if (ans.type === "call_failed") throw new Error("the call failed (" + ans.code + " " + ans.reason + ")");
      if (!ans.answer) throw new Error("the answer has no media description");
      remote = ans.answer;
    }
    if (S.call !== c) return;
    if (peer.peer.media_key && remote.key && peer.peer.media_key !== remote.key) {
      throw new Error("the partner's key in the call differs from the one the server paired: someone may be in between");
    }
    c.media.sendText(JSON.stringify({ type: "peer", addr: remote.media }));
    c.rate = remote.rate;
    c.spf = remote.rate / 50;
    c.session = Call.with_key(key, peer.role, peer.pair_id, peer.peer.media_key || "", remote.payload_type, c.spf, now());
    c.session.set_peer_timeout(PEER_TIMEOUT_S);
    c.media.onDatagram = (d) => {
      if (!c.session) return;
      c.session.handle_datagram(now(), d);
      pump(c);
    };
    $("call-status").textContent = "Agreeing keys…";
    pump(c);
    c.audio = await startAudio(c);
    c.statsTimer = setInterval(() => showStats(c), 1000);
  } catch (e) {
    if (S.call === c) endCall("The call could not be set up: " + ((e && e.message) || String(e)) + ".", true);
  }
}

function pump(c) {
  if (!c.session) return;
  let d;
  while ((d = c.session.poll_transmit())) {
    c.media.send(d);
  }
  let e;
  while ((e = c.session.poll_event())) {
    onMedia(c, JSON.parse(e));
    if (!c.session) return;
  }
  clearTimeout(c.timer);
  const at = c.session.poll_timeout();
  if (at !== undefined && at !== null) {
    c.timer = setTimeout(() => { if (c.session) { c.session.handle_timeout(now()); pump(c); } }, Math.max(0, at - now()));
  }
}

function onMedia(c, ev) {
  switch (ev.type) {
    case "established":
      step("established");
      hook.sas = ev.sas;
      $("sas").textContent = ev.sas;
      $("sas-box").hidden = false;
      $("call-status").textContent = "Connected, end to end encrypted (" + ev.codec + ").";
      setChat(true);
      $("chat-text").focus();
      break;
    case "text":
      hook.chat.push(ev.text);
      logLine("chat-log", c.peer.peer.name, ev.text, "");
      break;
    case "audio":
      hook.frames += 1;
      if (hook.kept.length < KEPT_FRAMES && !ev.redundant) hook.kept.push({ frame: ev.frame, data: ev.data });
      break;
    case "failed":
      endCall(ev.reason.includes("silent") ? "Your partner's connection went silent." : "The call's encryption failed: " + ev.reason + ".", true);
      break;
  }
}

function setChat(on) {
  $("chat-text").disabled = !on;
  $("chat-form").querySelector("button").disabled = !on;
}

async function startAudio(c) {
  const ctx = new AudioContext({ sampleRate: c.rate });
  await ctx.audioWorklet.addModule("/web/worklet.js");
  const node = new AudioWorkletNode(ctx, "myturn-io", { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
  const a = { ctx, node, stream: null, cap: [], capLen: 0, elapsed: 0 };
  try {
    a.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    ctx.createMediaStreamSource(a.stream).connect(node);
    hook.mic = true;
  } catch (e) {
    hook.mic = false;
    notice("The microphone is not available (" + (e.name || e.message) + "): this call is chat only. You still hear your partner. Allow the microphone for this site and start a new call to talk.");
    $("mute").disabled = true;
  }
  node.connect(ctx.destination);
  node.port.onmessage = (m) => onQuantum(c, a, m.data);
  await ctx.resume().catch(() => {});
  // What the browser's audio path adds (seconds), for the stats.
  hook.audioLatency = { base: ctx.baseLatency || 0, output: ctx.outputLatency || 0 };
  if (S.call !== c) stopAudio(a);
  return a;
}

// Every render quantum: frame the microphone's samples, and every 20 ms
// of audio time send one frame and play one.
function onQuantum(c, a, q) {
  if (!c.session) return;
  const spf = c.spf;
  if (q.pcm) {
    a.cap.push(q.pcm);
    a.capLen += q.pcm.length;
  }
  while (a.capLen >= spf) {
    const frame = new Int16Array(spf);
    let i = 0;
    let energy = 0;
    while (i < spf) {
      const head = a.cap[0];
      const n = Math.min(spf - i, head.length);
      for (let k = 0; k < n; k++) {
        const x = Math.max(-1, Math.min(1, head[k]));
        frame[i + k] = x < 0 ? x * 0x8000 : x * 0x7fff;
        energy += x * x;
      }
      i += n;
      if (n === head.length) a.cap.shift();
      else a.cap[0] = head.subarray(n);
    }
    a.capLen -= spf;
    $("level").value = Math.min(1, Math.sqrt(energy / spf) * 4);
    if (c.session.is_established() && !c.muted) {
      try {
        c.session.send_samples(frame);
        hook.sent += 1;
        const key = hook.sent <= TIMED_FRAMES * 4 ? frameKey(frame) : null;
        if (key && Object.keys(hook.sentAt).length < TIMED_FRAMES) hook.sentAt[key] = wallNow();
      } catch (_) {}
    }
  }
  a.elapsed += q.n;
  hook.queued = q.queued; // samples the worklet holds beyond this quantum
  while (a.elapsed >= spf) {
    a.elapsed -= spf;
    const pcm = c.session.pop_playout(now());
    const key = frameKey(pcm);
    if (key && !(key in hook.heardAt) && Object.keys(hook.heardAt).length < TIMED_FRAMES) {
      // It plays once what the worklet holds has played.
      hook.heardAt[key] = wallNow() + ((q.queued || 0) / c.rate) * 1000;
    }
    const out = new Float32Array(pcm.length);
    let energy = 0;
    for (let k = 0; k < pcm.length; k++) {
      out[k] = pcm[k] / 32768;
      energy += out[k] * out[k];
    }
    $("peer-level").value = Math.min(1, Math.sqrt(energy / pcm.length) * 4);
    a.node.port.postMessage(out, [out.buffer]);
  }
  pump(c);
}

function stopAudio(a) {
  if (!a) return;
  if (a.stream) for (const t of a.stream.getTracks()) t.stop();
  a.node.port.onmessage = null;
  a.ctx.close().catch(() => {});
}

function showStats(c) {
  if (!c.session) return;
  const s = JSON.parse(c.session.stats());
  const p = JSON.parse(c.session.playout_stats());
  const kbps = ((s.audio_bytes_sent - c.lastBytes) * 8) / 1000;
  c.lastBytes = s.audio_bytes_sent;
  const dropped = Object.values(s.dropped).reduce((x, y) => x + y, 0);
  const rows = [
    ["Codec", p.codec + " at " + c.rate / 1000 + " kHz"],
    ["Sending", kbps.toFixed(0) + " kbit/s of audio, " + s.audio_sent + " frames"],
    ["Received", s.audio_received + " frames"],
    ["Lost", p.lost + " (" + p.concealed + " concealed, " + p.recovered + " recovered)"],
    ["Playout delay", p.delay_ms.toFixed(0) + " ms"],
    ["Dropped", dropped + " bad or replayed packets"],
  ];
  const dl = $("stats");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
  hook.stats = { ...s, playout: p };
}

function endCall(why, hangUp) {
  const c = S.call;
  if (!c || c.ended) return;
  c.ended = true;
  S.call = null;
  if (hangUp && c.sipCall !== null && S.sip) {
    try { S.sip.agent.hangup(now(), c.sipCall); S.sip.drain(); } catch (_) {}
  }
  clearTimeout(c.timer);
  clearInterval(c.statsTimer);
  stopAudio(c.audio);
  if (c.media) { c.media.onGone = null; c.media.close(); }
  if (c.session) { c.session.free(); c.session = null; }
  hook.ended = why;
  $("ended-why").textContent = why;
  $("mute").disabled = false;
  $("mute").setAttribute("aria-pressed", "false");
  $("mute").textContent = "Mute";
  show("ended");
  $("again").focus();
}

async function hangUp() {
  endCall("You hung up.", true);
  await api("PUT", "/v1/me/status", { status: "busy" }).catch(() => {});
}

async function next() {
  endCall("You moved on.", true);
  await ready().catch(failed);
}

function report() {
  if (!S.lastPeer) return;
  $("report-name").textContent = S.lastPeer;
  $("report-dialog").showModal();
}

async function sendReport() {
  try {
    await api("POST", "/v1/me/report", { reason: $("report-reason").value });
    notice("Thank you: a moderator will look at it.");
  } catch (e) {
    notice("The report was not sent: " + e.message + ".");
  }
}

function failed(e) {
  const m = (e && e.message) || String(e);
  notice(m.charAt(0).toUpperCase() + m.slice(1) + ".");
  if (S.token && !S.call) show("lobby");
}

// ---- wiring -----------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    notice("");
    const btn = $("login-form").querySelector("button");
    btn.disabled = true;
    join($("name").value.trim())
      .catch((err) => {
        notice(err.code === "name_taken" ? "That nickname is taken right now: pick another." : "Could not join: " + err.message + ".");
        if (S.sip) { S.sip.close(); S.sip = null; }
        if (S.events) S.events.close();
        S.token = null;
      })
      .finally(() => { btn.disabled = false; });
  });
  $("ready-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ready().catch(failed);
  });
  $("stop-waiting").addEventListener("click", () => stopWaiting());
  $("again").addEventListener("click", () => ready().catch(failed));
  $("lobby-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("lobby-text").value.trim();
    if (!text || !S.events || S.events.readyState !== WebSocket.OPEN) return;
    S.events.send(JSON.stringify({ type: "lobby_say", text }));
    $("lobby-text").value = "";
  });
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const c = S.call;
    const text = $("chat-text").value.trim();
    if (!text || !c || !c.session) return;
    try {
      c.session.send_text(now(), text);
      logLine("chat-log", "You", text, "me");
      $("chat-text").value = "";
      pump(c);
    } catch (err) {
      notice("Not sent: " + err + ".");
    }
  });
  $("mute").addEventListener("click", () => {
    const c = S.call;
    if (!c) return;
    c.muted = !c.muted;
    $("mute").setAttribute("aria-pressed", String(c.muted));
    $("mute").textContent = c.muted ? "Unmute" : "Mute";
  });
  $("hangup").addEventListener("click", () => hangUp());
  $("next").addEventListener("click", () => next());
  $("report").addEventListener("click", report);
  $("report-after").addEventListener("click", report);
  $("report-dialog").addEventListener("close", () => {
    if ($("report-dialog").returnValue === "send") sendReport();
  });
  // A closing tab hangs up on its way out (its partner also notices the
  // silence within its liveness time if this never gets through).
  window.addEventListener("pagehide", () => {
    if (S.call) endCall("You left.", true);
  });
}

async function main() {
  wire();
  show("login");
  try {
    await init({ module_or_path: "/web/myturn_web_bg.wasm" });
  } catch (e) {
    notice("This browser cannot run myTurn's encryption (WebAssembly): " + e.message);
    return;
  }
  $("login-form").querySelector("button").disabled = false;
  document.body.dataset.ready = "1";
  $("name").focus();
}

main();
