"""PESQ (ITU-T P.862, the PyPI `pesq` package) of a degraded recording
against its reference, after lining the two up: the degraded file (a
call's --output-wav) starts with the call's silence, so the reference is
found in it by cross-correlation and that stretch is scored.

usage: score.py REFERENCE.wav DEGRADED.wav RATE   (8000: NB, 16000: WB)
prints the MOS-LQO score on one line.
"""
import sys
import wave

import numpy as np
from pesq import pesq


def read(path, rate):
    with wave.open(path, "rb") as w:
        if w.getframerate() != rate or w.getsampwidth() != 2 or w.getnchannels() != 1:
            sys.exit(f"{path}: want mono PCM16 at {rate} Hz")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def main():
    ref_path, deg_path, rate = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ref, deg = read(ref_path, rate), read(deg_path, rate)
    n = len(ref)
    if len(deg) < n:
        deg = np.concatenate([deg, np.zeros(n - len(deg))])
    # Where the reference starts in the degraded file: the peak of their
    # cross-correlation (by FFT), then that stretch.
    size = 1 << int(np.ceil(np.log2(len(deg) + n)))
    xc = np.fft.irfft(np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size)), size)
    lag = int(np.argmax(xc[: len(deg) - n + 1]))
    part = deg[lag : lag + n]
    mode = "wb" if rate == 16000 else "nb"
    print(f"{pesq(rate, ref, part, mode):.3f}")


main()
