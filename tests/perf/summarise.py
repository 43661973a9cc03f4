#!/usr/bin/env python3
"""Summarises a tests/perf/alternate.sh log: one row per run (label, load,
the figures found), then per label the median and range of each figure,
and how often the second label's figure was higher than the first's in the
same pair of runs. Knows the lines of the registrations bench, the PBX
bench, tests/perf/websockets.sh and alternate.sh's own CPU line.

    tests/perf/summarise.py LOG
"""
import re
import statistics
import sys

PATTERNS = {
    # benches/registrations.rs (myturn-server)
    "A reg/s": r"^A coalesced .*?, (\d+) registrations/s",
    "A writes": r"^A coalesced .*?, (\d+) file writes",
    "B reg/s": r"^B naive .*?, (\d+) registrations/s",
    "C reg/s": r"^C coalesced .*?, (\d+) registrations/s",
    "C/B": r"^ratio coalesced/naive .*?: ([\d.]+)x",
    "pairings/s": r"^pairings: .*? = (\d+) pairings/s",
    # benches/pbx.rs (myturn-pbx)
    "PBX REGISTER/s": r"^\s*built-in PBX \(1 thread\):\s+(\d+) /s",
    "PBX µs/REGISTER": r"^\s*built-in PBX \(1 thread\):\s+\d+ /s\s+([\d.]+) µs",
    "Kam1 REGISTER/s": r"^\s*Kamailio 5.6, children=1:\s+(\d+) /s",
    "Kam1 µs/REGISTER": r"^\s*Kamailio 5.6, children=1:\s+\d+ /s\s+([\d.]+) µs",
    "Kam2 REGISTER/s": r"^\s*Kamailio 5.6, children=2:\s+(\d+) /s",
    "Kam2 µs/REGISTER": r"^\s*Kamailio 5.6, children=2:\s+\d+ /s\s+([\d.]+) µs",
    "PBX calls/s": r"^\s*built-in PBX:\s+(\d+) calls/s",
    "Kam2 calls/s": r"^\s*Kamailio 5.6, children=2:\s+(\d+) calls/s",
    "PBX B/user": r"^memory per registered user .*?: (\d+) bytes",
    # tests/perf/websockets.sh (myturn-load ws)
    "push p50 ms": r"push p50 ([\d.]+) ms",
    "push p99 ms": r"push p50 [\d.]+ ms, p99 ([\d.]+) ms",
    "B/stream": None,  # from the RSS line, below
    "fan-out/s": r"^lobby fan-out: .* = (\d+)/s",
    "opened/s": r"event streams open \((\d+) opened/s\)",
    "server CPU s": r"^server CPU: ([\d.]+) s",
    # tests/perf/alternate.sh
    "cmd CPU s": None,
}
RSS = re.compile(r"^server memory per idle stream: .*\(RSS (\d+) → (\d+) kB\)")
STREAMS = re.compile(r"^(\d+) event streams open")
CMD = re.compile(r"^command CPU: user ([\d.]+) s, system ([\d.]+) s")
HEAD = re.compile(r"^=== run (\d+) (\S+) load: (\S+)")


def runs(path):
    cur = None
    for line in open(path, encoding="utf-8", errors="replace"):
        m = HEAD.match(line)
        if m:
            if cur:
                yield cur
            cur = {"run": int(m[1]), "label": m[2], "load": float(m[3]), "figs": {}}
            continue
        if cur is None:
            continue
        f = cur["figs"]
        if line.startswith("FAILED"):
            cur["failed"] = True
        for name, pat in PATTERNS.items():
            if pat and name not in f:
                m = re.search(pat, line)
                if m:
                    f[name] = float(m[1])
        m = STREAMS.match(line)
        if m:
            cur["streams"] = int(m[1])
        m = RSS.match(line)
        if m and cur.get("streams"):
            f["B/stream"] = (int(m[2]) - int(m[1])) * 1024 / cur["streams"]
        m = CMD.match(line)
        if m:
            f["cmd CPU s"] = float(m[1]) + float(m[2])
    if cur:
        yield cur


def fmt(v):
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.3f}"


def main():
    all_runs = [r for r in runs(sys.argv[1])]
    names = [n for n in PATTERNS if any(n in r["figs"] for r in all_runs)]
    labels = list(dict.fromkeys(r["label"] for r in all_runs))
    print("run label load " + " | ".join(names))
    for r in all_runs:
        cells = [fmt(r["figs"][n]) if n in r["figs"] else "-" for n in names]
        print(f"{r['run']} {r['label']} {r['load']:.2f} " + " | ".join(cells)
              + ("  FAILED" if r.get("failed") else ""))
    print()
    ok = [r for r in all_runs if not r.get("failed")]
    for n in names:
        row = [n]
        for lab in labels:
            v = [r["figs"][n] for r in ok if r["label"] == lab and n in r["figs"]]
            if v:
                row.append(f"{lab}: median {fmt(statistics.median(v))} "
                           f"({fmt(min(v))}–{fmt(max(v))}, {len(v)} runs)")
        if len(labels) == 2:
            a, b = labels
            pairs = {}
            for r in ok:
                if n in r["figs"]:
                    pairs.setdefault(r["run"], {})[r["label"]] = r["figs"][n]
            both = [p for p in pairs.values() if a in p and b in p]
            if both:
                hi = sum(p[b] > p[a] for p in both)
                row.append(f"{b} higher in {hi} of {len(both)} pairs")
        print("; ".join(row))
    loads = [r["load"] for r in all_runs]
    print(f"load (1-min average at each run's start): {min(loads):.2f}–{max(loads):.2f}")


main()
