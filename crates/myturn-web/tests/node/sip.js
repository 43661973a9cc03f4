// The SIP agent of myturn-web (WebAssembly, as a page loads it) over SIP
// over WebSocket (RFC 7118) to the pairing server's built-in PBX: it
// registers with its credentials and says so. Driven by
// tests/interop/sip_ws.rs. Node's WebSocket is a browser's (Node 20:
// --experimental-websocket). Out: "E <json>" per agent event, "OK" once
// registered; exit 1 after 10 s without.
"use strict";
const [, , modulePath, url, username, password, domain] = process.argv;
const { Sip } = require(modulePath);

const sip = new Sip(username, password, domain, performance.now());
const ws = new WebSocket(url, "sip");
let timer = null;
const give_up = setTimeout(() => {
  process.stdout.write("TIMEOUT\n");
  process.exit(1);
}, 10000);

function drain() {
  let m;
  while ((m = sip.poll_transmit())) ws.send(m);
  let e;
  while ((e = sip.poll_event())) {
    process.stdout.write("E " + e + "\n");
    if (JSON.parse(e).type === "registered") {
      process.stdout.write("OK " + ws.protocol + "\n");
      clearTimeout(give_up);
      ws.close();
      process.exit(0);
    }
  }
  if (timer) clearTimeout(timer);
  const at = sip.poll_timeout();
  if (at !== undefined && at !== null) {
    timer = setTimeout(() => {
      sip.handle_timeout(performance.now());
      drain();
    }, Math.max(0, at - performance.now()));
  }
}

ws.onopen = () => {
  sip.register(performance.now());
  drain();
};
ws.onmessage = (m) => {
  sip.handle_message(performance.now(), String(m.data));
  drain();
};
ws.onerror = (e) => {
  process.stdout.write("WSERROR " + (e.message || e.type) + "\n");
};
