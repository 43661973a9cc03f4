#!/usr/bin/env python3
"""Tables for tests/perf/shared-state.sh from myturn-load's JSON.

  shared-state-table.py ops FILE     one ops run
  shared-state-table.py ws FILE      one ws run
  shared-state-table.py summary DIR  every run, medians and ratios
"""
import glob
import json
import os
import statistics
import sys


def ops_rows(d):
    for p in d["phases"]:
        yield p["phase"], p


def print_ops(d):
    print(f"{d['nodes']} node(s), {d['users']} users, backdrop {d['backdrop']}")
    print(f"{'phase':<22} {'ops':>6} {'ops/s':>8} {'err':>4} {'cpu µs/op':>10}  per process | redis per op")
    for name, p in ops_rows(d):
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in p["cpu_us_per_op"].items())
        red = ", ".join(f"{k} {v:.2f}" for k, v in p["redis_per_op"].items())
        pairs = f" pairings {p['pairings']}" if p.get("pairings") is not None else ""
        print(f"{name:<22} {p['ops']:>6} {p['ops_per_s']:>8.0f} {p['errors']:>4} "
              f"{p['cpu_us_per_op_total']:>10.0f}  {cpu} | {red}{pairs}")
    for k, v in d.get("redis_memory", {}).items():
        print(f"redis {k}: {v:.0f}")


def print_ws(d):
    if "shared_push_ms" in d:
        s, p = d["shared_push_ms"], d["plain_push_ms"]
        print(f"{d['users']} streams, {d['nodes']} node(s), pool {d['pool']}: push shared "
              f"p50 {s['p50']:.2f} p99 {s['p99']:.2f} ms; plain p50 {p['p50']:.2f} "
              f"p99 {p['p99']:.2f} ms; one pair at a time {d['sequential_pairings_per_s']}; "
              f"first side's ready {d.get('first_ready_ms')}")
    else:
        s = d["pairing_push_ms"]
        print(f"{d['users']} streams: push p50 {s['p50']:.2f} p99 {s['p99']:.2f} ms "
              f"({s['samples']} samples), {d.get('bytes_per_idle_stream') or 0:.0f} B/stream, "
              f"{d['streams_opened_per_s']:.0f} streams opened/s, "
              f"{d.get('register_503_retries', 0)} registrations retried after a 503, "
              f"{d.get('streams_closed', 0)} streams closed early, "
              f"{d.get('lobby', {}).get('lost', 0)} lobby deliveries lost")


def load(path):
    """The run's JSON, or None if the run failed (its error is in the log)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def summary(out):
    kinds = ["memory", "redis1", "redis3", "redis1-noaof"]
    runs = {k: [d for f in sorted(glob.glob(os.path.join(out, f"ops-{k}-run*.json")))
                if (d := load(f)) is not None]
            for k in kinds}
    phases = [p["phase"] for p in runs["memory"][0]["phases"]] if runs["memory"] else []
    seen = []
    for ph in phases:
        if ph not in seen:
            seen.append(ph)
    print("\n== per use case: every run (ops/s; CPU µs per op, all processes)")
    for ph in seen:
        for k in kinds:
            vals = []
            for d in runs[k]:
                for p in d["phases"]:
                    if p["phase"] == ph:
                        vals.append(f"{p['ops_per_s']:.0f}/s {p['cpu_us_per_op_total']:.0f}µs")
            if vals:
                print(f"{ph:<22} {k:<13} " + "  ".join(vals))

    def med(k, ph, key):
        v = [p[key] for d in runs[k] for p in d["phases"] if p["phase"] == ph]
        return statistics.median(v) if v else None

    print("\n== medians and ratios against one memory node")
    print(f"{'phase':<22} {'mem ops/s':>9} {'mem µs':>7} {'r1 ops/s':>9} {'r1 µs':>7} "
          f"{'b/a cpu':>7} {'r3 ops/s':>9} {'r3 µs':>7} {'c/a cpu':>7}")
    for ph in seen:
        a = (med("memory", ph, "ops_per_s"), med("memory", ph, "cpu_us_per_op_total"))
        b = (med("redis1", ph, "ops_per_s"), med("redis1", ph, "cpu_us_per_op_total"))
        c = (med("redis3", ph, "ops_per_s"), med("redis3", ph, "cpu_us_per_op_total"))
        if None in a + b + c:
            continue
        print(f"{ph:<22} {a[0]:>9.0f} {a[1]:>7.0f} {b[0]:>9.0f} {b[1]:>7.0f} {b[1]/a[1]:>7.2f} "
              f"{c[0]:>9.0f} {c[1]:>7.0f} {c[1]/a[1]:>7.2f}")

    print("\n== CPU µs per op by process (medians)")
    for k in ["redis1", "redis3", "redis1-noaof"]:
        for ph in seen:
            procs = {}
            for d in runs[k]:
                for p in d["phases"]:
                    if p["phase"] == ph:
                        for n, v in p["cpu_us_per_op"].items():
                            procs.setdefault(n, []).append(v)
            if procs:
                print(f"{k:<13} {ph:<22} " + ", ".join(
                    f"{n} {statistics.median(v):.0f}" for n, v in sorted(procs.items())))

    print("\n== Redis per op (median over runs; total_reads_processed ≈ round trips)")
    for k in ["redis1", "redis3"]:
        for ph in seen:
            cmds = {}
            for d in runs[k]:
                for p in d["phases"]:
                    if p["phase"] == ph:
                        for n, v in p["redis_per_op"].items():
                            cmds.setdefault(n, []).append(v)
            if cmds:
                print(f"{k:<8} {ph:<22} " + ", ".join(
                    f"{n} {statistics.median(v):.2f}" for n, v in sorted(cmds.items())))
    for k in ["redis1", "redis3", "redis1-noaof"]:
        for d in runs[k]:
            print(f"{k} redis memory: {d.get('redis_memory')}")

    for f in sorted(glob.glob(os.path.join(out, "ws-*.json"))):
        print(os.path.basename(f), end=": ")
        d = load(f)
        if d is None:
            print("failed (see the log)")
        else:
            print_ws(d)
    for f in sorted(glob.glob(os.path.join(out, "ops-*-interests.json"))):
        print("\n" + os.path.basename(f))
        d = load(f)
        if d is None:
            print("failed (see the log)")
        else:
            print_ops(d)


if __name__ == "__main__":
    mode, arg = sys.argv[1], sys.argv[2]
    if mode in ("ops", "ws"):
        d = load(arg)
        if d is None:
            sys.exit(f"{arg}: no result")
        (print_ops if mode == "ops" else print_ws)(d)
    else:
        summary(arg)
