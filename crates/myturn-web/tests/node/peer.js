// One side of a call, in Node.js, through the WebAssembly build of
// myturn-web (`wasm-bindgen --target nodejs`): the same module a page
// loads. Driven by tests/interop/node.rs over stdin/stdout, one line each:
//   in:  "D <hex>"  a datagram from the other side;  "Q"  print stats, exit
//   out: "D <hex>"  a datagram to send;  "E <json>"  an event;  "S <json>"  stats
// Once the keys are agreed it sends one chat line and one PCM16 frame.
"use strict";
const readline = require("readline");
const [, , modulePath, role, pairId] = process.argv;
const { Call } = require(modulePath);

const call = new Call(role, pairId, 96, role === "caller" ? 1 : 2, 160, performance.now());
const out = (line) => process.stdout.write(line + "\n");
let timer = null;
let greeted = false;

function drain() {
  for (;;) {
    let moved = false;
    let d;
    while ((d = call.poll_transmit())) {
      out("D " + Buffer.from(d).toString("hex"));
      moved = true;
    }
    let e;
    while ((e = call.poll_event())) {
      out("E " + e);
      moved = true;
      if (JSON.parse(e).type === "established" && !greeted) {
        greeted = true;
        call.send_text(performance.now(), "hello from wasm <i>page</i>");
        const pcm = new Uint8Array(320);
        for (let i = 0; i < pcm.length; i++) pcm[i] = (i * 7 + 3) & 0xff;
        call.send_audio(pcm);
      }
    }
    if (!moved) break;
  }
  if (timer) clearTimeout(timer);
  const at = call.poll_timeout();
  if (at !== undefined && at !== null) {
    timer = setTimeout(() => {
      call.handle_timeout(performance.now());
      drain();
    }, Math.max(0, at - performance.now()));
  }
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "Q") {
    out("S " + call.stats());
    process.exit(0);
  }
  if (line.startsWith("D ")) {
    call.handle_datagram(performance.now(), Buffer.from(line.slice(2), "hex"));
    drain();
  }
});
drain();
