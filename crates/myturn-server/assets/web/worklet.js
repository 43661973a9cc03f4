// myTurn's audio I/O in the audio thread (an AudioWorklet), at the call's
// rate (the AudioContext runs at 8 or 16 kHz, so the browser resamples
// the microphone and the speaker). Every render quantum (128 samples) it
// posts the microphone's samples (null without a microphone) and the
// quantum's length to the page, which is the clock the page frames and plays by; it plays
// what the page sends back, in order, and silence when nothing is queued.
class MyturnIo extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.offset = 0;
    this.port.onmessage = (e) => {
      // Bounded: a page that fell behind drops the oldest, never grows.
      if (this.queue.length > 50) this.queue.splice(0, this.queue.length - 50);
      this.queue.push(e.data);
    };
  }

  process(inputs, outputs) {
    const input = inputs[0] && inputs[0][0];
    const out = outputs[0] && outputs[0][0];
    // How much is queued to play after this quantum (samples): the delay
    // the page's playout adds beyond the jitter buffer.
    let queued = -this.offset;
    for (const f of this.queue) queued += f.length;
    this.port.postMessage({ pcm: input ? input.slice(0) : null, n: out ? out.length : 128, queued });
    if (out) {
      let i = 0;
      while (i < out.length && this.queue.length) {
        const head = this.queue[0];
        const n = Math.min(out.length - i, head.length - this.offset);
        out.set(head.subarray(this.offset, this.offset + n), i);
        i += n;
        this.offset += n;
        if (this.offset >= head.length) {
          this.queue.shift();
          this.offset = 0;
        }
      }
      out.fill(0, i);
      for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    }
    return true;
  }
}
registerProcessor("myturn-io", MyturnIo);
