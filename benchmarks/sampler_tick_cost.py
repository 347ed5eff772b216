"""Micro-benchmark of mcpprof's in-process sampler (mcpprof.collect.sampler).

Measures the median cost of one ``Sampler.sample_once()`` with 4 threads whose stacks are about
40 frames deep, in four cases:

* ``first``  - a fresh sampler: every frame is a cache miss (line numbers computed, frames interned);
* ``cached`` - a warm sampler, every thread re-walked (its CPU clock moved): cache hits only;
* ``idle``   - a warm sampler, real per-thread CPU clocks, threads blocked: walks skipped;
* ``idle-leaf`` - threads waiting on an Event (an idle leaf, as idle workers are): counted on their
  previous key without even reading their CPU clocks (that CPU is read at their next running sample);
* ``busy``   - a warm sampler, real CPU clocks, the 4 threads spinning at depth ~40; the benchmark
  sleeps 2 ms before each tick so they run, which also leaves the CPU caches cold as in the real
  sampling thread (``cpu_median_us``, this thread's CPU time, excludes waits for the GIL).

Then the live cost: the real sampler at 100 Hz and 1 kHz against 4 threads at depth ~40, either
1 doing pure-Python work and 3 idle (like an MCP server's busy event loop and idle workers) or all
4 busy (GIL contention): work done per second relative to no sampler (interleaved rounds,
medians of paired ratios), work done per process CPU second relative to no sampler (less sensitive
to other load on the machine), the sampler thread's own CPU time (metadata ``overhead``) and the
sampling rate it really reached.

Then the sampler's memory when its stack table is full (tracemalloc of everything the sampler
allocated while filling ``max_stacks`` keys of 40-frame stacks), and the cost of ``snapshot()``
at that size. Prints one JSON object per line on stdout.

    python benchmarks/sampler_tick_cost.py [--reps 2000] [--rounds 9] [--seconds 1] [--max-stacks 20000]
                                           [--cases tick,live,memory]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mcpprof.collect.sampler import Sampler, request_tagger  # noqa: E402

THREADS = 4
DEPTH = 36  # recursion depth; plus threading bootstrap and the blocking frames: ~42 per thread


def descend(depth: int, at_bottom) -> None:
    if depth > 0:
        descend(depth - 1, at_bottom)
    else:
        at_bottom()


def spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(1000):
            x += 1


def timed(fn, reps: int, between=None) -> dict:
    """Median wall time and median CPU time of this thread (thread_time) of one call."""
    wall, cpu = [], []
    pc, tt = time.perf_counter_ns, time.thread_time_ns
    for _ in range(reps):
        if between is not None:
            between()
        c0, t0 = tt(), pc()
        fn()
        t1, c1 = pc(), tt()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    wall.sort()
    return {"median_us": round(statistics.median(wall) / 1e3, 2), "p10_us": round(wall[len(wall) // 10] / 1e3, 2),
            "p90_us": round(wall[len(wall) * 9 // 10] / 1e3, 2),
            "cpu_median_us": round(statistics.median(cpu) / 1e3, 2), "reps": reps}


def stack_depths() -> list:
    me = threading.get_ident()
    depths = []
    for ident, f in sys._current_frames().items():
        if ident == me:
            continue
        n = 0
        while f is not None:
            n, f = n + 1, f.f_back
        depths.append(n)
    return sorted(depths)


def tick_costs(reps: int) -> None:
    stop, release = threading.Event(), threading.Event()

    def nap() -> None:  # blocked in a C call: the top frame is not an idle leaf, so it is walked
        while not release.is_set():
            time.sleep(0.05)

    threads = [threading.Thread(target=descend, args=(DEPTH, nap), name=f"blocked-{i}", daemon=True)
               for i in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    base = {"threads": THREADS, "frames_per_thread": stack_depths(), "python": sys.version.split()[0]}
    tagger = request_tagger()

    def fresh_tick():
        Sampler(tagger=tagger).sample_once()

    print(json.dumps({"case": "first", **base, **timed(fresh_tick, max(50, reps // 10))}))

    counter = [0]

    def moving_cpu(ident):  # every thread "ran": no walk is skipped
        counter[0] += 1000
        return counter[0]

    warm = Sampler(tagger=tagger, cpu_clock=moving_cpu)
    warm.sample_once()
    print(json.dumps({"case": "cached", **base, **timed(warm.sample_once, reps)}))

    idle = Sampler(tagger=tagger)
    idle.sample_once()
    idle.sample_once()
    print(json.dumps({"case": "idle", **base, **timed(idle.sample_once, reps)}))
    release.set()
    for t in threads:
        t.join()
    release.clear()
    waiting = [threading.Thread(target=descend, args=(DEPTH, release.wait), name=f"waiting-{i}", daemon=True)
               for i in range(THREADS)]
    for t in waiting:
        t.start()
    time.sleep(0.2)
    leaf = Sampler(tagger=tagger, cpu_clock=moving_cpu)
    leaf.sample_once()
    leaf.sample_once()
    print(json.dumps({"case": "idle-leaf", **base, **timed(leaf.sample_once, reps)}))
    release.set()
    for t in threads:
        t.join()

    threads = [threading.Thread(target=descend, args=(DEPTH, lambda: spin(stop)), name=f"busy-{i}", daemon=True)
               for i in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    busy = Sampler(tagger=tagger)
    busy.sample_once()
    busy_base = dict(base, frames_per_thread=stack_depths())
    print(json.dumps({"case": "busy", **busy_base, **timed(busy.sample_once, max(50, reps // 10), lambda: time.sleep(0.002))}))
    stop.set()
    for t in threads:
        t.join()


def live_overhead(rounds: int, seconds: float, busy: int, rates=(0, 100, 1000)) -> None:
    """``busy`` of the 4 threads do pure-Python work, the others wait on an Event (idle workers)."""
    tagger = request_tagger()
    results = {rate: {"ops": [], "ratio": [], "cpu_ratio": [], "fraction": [], "hz": [], "cpu_per_tick_us": []}
               for rate in rates}
    rng = random.Random(7)
    for _ in range(rounds):
        order = list(rates)
        rng.shuffle(order)
        ops_by_rate, ops_per_cpu = {}, {}
        for rate in order:
            stop = threading.Event()
            counts = [0] * THREADS

            def work(i: int) -> None:
                if i >= busy:
                    stop.wait()
                while not stop.is_set():
                    sum(range(200))
                    counts[i] += 1

            threads = [threading.Thread(target=descend, args=(DEPTH, lambda i=i: work(i)), daemon=True)
                       for i in range(THREADS)]
            for t in threads:
                t.start()
            time.sleep(0.3)
            sampler = Sampler(rate, tagger=tagger) if rate else None
            base = sum(counts)
            t0, cpu0 = time.perf_counter(), time.process_time()
            if sampler is not None:
                sampler.start()
            time.sleep(seconds)
            done, elapsed, cpu = sum(counts) - base, time.perf_counter() - t0, time.process_time() - cpu0
            if sampler is not None:
                sampler.stop()
            stop.set()
            for t in threads:
                t.join()
            ops_by_rate[rate] = done / elapsed
            ops_per_cpu[rate] = done / cpu
            r = results[rate]
            r["ops"].append(done / elapsed)
            if sampler is not None:
                meta = sampler.snapshot().metadata
                r["fraction"].append(meta["overhead"]["fraction"])
                r["hz"].append(meta["ticks"] / (meta["duration_ns"] / 1e9))
                r["cpu_per_tick_us"].append(meta["overhead"]["sampler_cpu_ns"] / max(1, meta["ticks"]) / 1e3)
        for rate in rates:
            results[rate]["ratio"].append(ops_by_rate[rate] / ops_by_rate[rates[0]])
            results[rate]["cpu_ratio"].append(ops_per_cpu[rate] / ops_per_cpu[rates[0]])
    for rate in rates:
        r = results[rate]
        row = {"case": "live", "rate_hz": rate, "threads": THREADS, "busy_threads": busy, "rounds": rounds, "seconds": seconds,
               "ops_per_s": round(statistics.median(r["ops"])), "paired_ratio": round(statistics.median(r["ratio"]), 4),
               "slowdown_pct": round((1 - statistics.median(r["ratio"])) * 100, 2),
               "ratio_min_max": [round(min(r["ratio"]), 3), round(max(r["ratio"]), 3)],
               "ops_per_process_cpu_ratio": round(statistics.median(r["cpu_ratio"]), 4),
               "cpu_ratio_min_max": [round(min(r["cpu_ratio"]), 3), round(max(r["cpu_ratio"]), 3)]}
        if rate:
            row.update(sampler_cpu_fraction=round(statistics.median(r["fraction"]), 4),
                       effective_hz=round(statistics.median(r["hz"]), 1),
                       sampler_cpu_per_tick_us=round(statistics.median(r["cpu_per_tick_us"]), 1))
        print(json.dumps(row))


class Code:
    def __init__(self, name: str):
        self.co_name = self.co_qualname = name
        self.co_filename = f"/srv/app/{name}.py"


class Fake:
    def __init__(self, code, lasti, back):
        self.f_code, self.f_lasti, self.f_back, self.f_lineno = code, lasti, back, lasti // 2 + 1


def memory_at_cap(max_stacks: int, shared: bool) -> None:
    """Fill the stack table with distinct 40-frame stacks on one thread, 10 tool labels."""
    root = None
    for i in range(35):
        root = Fake(Code(f"root{i}"), 2 * i, root)
    mids = [Code(f"mid{i}") for i in range(200)]
    leaves = [Code(f"leaf{i}") for i in range(200)]
    tops = []
    for k in range(max_stacks):
        f = root
        for j in range(4):  # 4 mid frames shared by every stack
            f = Fake(mids[j], 2 * j, f)
        if shared:  # distinct by the combination of (mid, leaf): frames are reused
            f = Fake(mids[4 + k // 200 % 196], 8, f)
            f = Fake(leaves[k % 200], 4, f)
        else:  # every stack ends in a new code location: one new frame per stack
            f = Fake(mids[4], 8, f)
            f = Fake(leaves[k % 200], 2 * (k // 200), f)
        tops.append(f)
    labels = [(("gen_ai.tool.name", f"tool{i}"), ("mcp.method.name", "tools/call")) for i in range(10)]
    current = [None, 0]
    clock = [0]

    def tick_clock():
        clock[0] += 10_000_000
        return clock[0]

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    s = Sampler(max_stacks=max_stacks, clock=tick_clock, cpu_clock=lambda i: None,
                frames=lambda: {1: current[0]}, threads=lambda: {1: ("MainThread", 1)},
                tagger=lambda i: labels[current[1] % 10])
    for k, top in enumerate(tops):
        current[0], current[1] = top, k // 200  # each stack under one tool
        s.sample_once()
    used = sum(st.size_diff for st in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    snap = timed(s.snapshot, 5)
    p = s.snapshot()
    print(json.dumps({"case": "memory_at_cap", "variant": "shared_frames" if shared else "new_frame_per_stack",
                      "max_stacks": max_stacks, "keys": len(p.samples), "stacks": len(p.stacks),
                      "frames": len(p.frames), "frames_per_stack": 40, "bytes": used,
                      "mb": round(used / 2**20, 2), "bytes_per_key": round(used / max(1, len(p.samples))),
                      "overflow_samples": p.metadata["overflow_samples"], "snapshot_median_ms":
                      round(snap["median_us"] / 1e3, 2)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--max-stacks", type=int, default=20_000)
    ap.add_argument("--cases", default="tick,live,memory", help="comma-separated: tick, live, memory")
    args = ap.parse_args()
    cases = set(args.cases.split(","))
    if "tick" in cases:
        tick_costs(args.reps)
    if "live" in cases:
        live_overhead(args.rounds, args.seconds, busy=1)
        live_overhead(args.rounds, args.seconds, busy=THREADS)
    if "memory" in cases:
        memory_at_cap(args.max_stacks, shared=True)
        memory_at_cap(args.max_stacks, shared=False)


if __name__ == "__main__":
    main()
