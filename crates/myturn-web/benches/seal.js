// The browser core's seal and open per frame, in Node.js's V8 (the
// engine of chromium), for benches/seal.rs: two calls agree keys, then the
// caller seals N frames of PCM16 and the callee opens each. Prints
// "NS <nanoseconds per frame>" for the median of ROUNDS rounds.
"use strict";
const [, , modulePath, samples, frames, rounds] = process.argv;
const { Call } = require(modulePath);
const PAIR = "6d7974726e2d7761736d2d62656e6368";
const spf = Number(samples);
const a = new Call("caller", PAIR, 96, 1, spf, 0);
const b = new Call("callee", PAIR, 96, 2, spf, 0);
function pump(t) {
  for (let i = 0; i < 20; i++) {
    let moved = false;
    let d;
    while ((d = a.poll_transmit())) { b.handle_datagram(t, d); moved = true; }
    while ((d = b.poll_transmit())) { a.handle_datagram(t, d); moved = true; }
    while (a.poll_event()) {}
    while (b.poll_event()) {}
    if (!moved) return;
  }
}
pump(1);
b.handle_timeout(2);
pump(3);
if (!a.is_established() || !b.is_established()) throw new Error("no keys");
const pcm = new Uint8Array(spf * 2).map((_, i) => (i * 37) & 0xff);
const times = [];
let t = 10;
for (let r = 0; r < Number(rounds); r++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < Number(frames); i++) {
    a.send_audio(pcm);
    const d = a.poll_transmit();
    t += 20;
    b.handle_datagram(t, d);
    b.poll_event();
  }
  times.push(Number(process.hrtime.bigint() - t0) / Number(frames));
}
times.sort((x, y) => x - y);
process.stdout.write("NS " + times[Math.floor(times.length / 2)] + "\n");
