"""A userspace bridge that delays UDP at random: the jitter test's access
link (this kernel has neither netem nor nft `queue`). Run in a namespace
of its own that holds two veth ends; every Ethernet frame that arrives on
one goes out of the other, IPv4 UDP frames after a random delay drawn
uniformly from [MIN_MS, MAX_MS] each (so frames overtake each other, as
on a real network), everything else at once. AF_PACKET sockets; the veths
that send into the bridge need transmit checksum offload off
(`ethtool -K IF tx off`), or the copied frames carry no valid checksum.

usage: bridge.py IF_A IF_B MIN_MS MAX_MS SEED
prints "ready" once both sockets are bound, then on SIGTERM
"delayed=N reordered=M" (frames delayed, and frames that left after a
frame that arrived later, the same way).
"""
import heapq
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003


def bind(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, 0))
    s.setblocking(False)
    return s


def is_udp(frame):
    # Ethernet II, IPv4, protocol 17.
    return len(frame) > 23 and frame[12:14] == b"\x08\x00" and frame[23] == 17


def main():
    a, b = sys.argv[1], sys.argv[2]
    lo, hi = float(sys.argv[3]) / 1e3, float(sys.argv[4]) / 1e3
    rng = random.Random(int(sys.argv[5]))
    sa, sb = bind(a), bind(b)
    other = {sa: sb, sb: sa}
    queue = []
    counts = {"n": 0, "delayed": 0, "reordered": 0}
    # Per direction, the latest arrival that has left.
    last = {sa: -1, sb: -1}

    def stop(*_):
        print(f"delayed={counts['delayed']} reordered={counts['reordered']}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while True:
        wait = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        ready, _, _ = select.select([sa, sb], [], [], wait)
        now = time.monotonic()
        for s in ready:
            while True:
                try:
                    frame, addr = s.recvfrom(65536)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                delay = 0.0
                if is_udp(frame):
                    delay = rng.uniform(lo, hi)
                    counts["delayed"] += 1
                heapq.heappush(queue, (now + delay, counts["n"], other[s], frame))
                counts["n"] += 1
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, n, out, frame = heapq.heappop(queue)
            if n < last[out]:
                counts["reordered"] += 1
            last[out] = max(last[out], n)
            try:
                out.send(frame)
            except OSError:
                pass


main()
