"""Overhead of each memory backend on the bundled example server under load, one interleaved run.

Modes per round (fresh server each, seeded shuffled order): ``none`` (plain server), ``agent``
(the mcpprof agent with its memory channel, no memory backend), ``sampled`` / ``sampled@64k``
(sampled allocations from the C extension, mean interval 256 KiB by default or the given size),
``tracemalloc@1`` / ``tracemalloc@8`` (traceback depth), ``memray`` (Tracker in the server, Python
frames). Each run warms up untraced,
starts the backend, then drives echo + alloc(kib=16) over stdio with N calls in flight for a fixed
window. Reported per mode: median req/s, the median over rounds of the paired slowdown
none req/s / mode req/s from the same round, and the paired ratio of server CPU time per call
(less sensitive to other jobs on a shared machine than throughput).

    python benchmarks/memory_overhead.py --rounds 5 --seconds 5 --out benchmarks/results/memory_overhead.jsonl

A script: prints JSON lines and a summary to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive
from mcpprof.jobs.memlaunch import EXAMPLE_COMMAND, launch

def interval_of(mode: str) -> int:
    """``sampled`` -> 256 KiB, ``sampled@64k`` -> 65536."""
    spec = mode.partition("@")[2].lower() or "256k"
    return int(float(spec.rstrip("km")) * {"k": 1024, "m": 1024 ** 2}.get(spec[-1], 1))


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MIX = [CallSpec("tools/call", "echo", {"text": "hello"}, 2.0), CallSpec("tools/call", "alloc", {"kib": 16})]


async def one_run(mode: str, seconds: float, warmup: float, concurrency: int) -> dict:
    extra: dict = {}
    if mode == "none":
        async with StdioClient(EXAMPLE_COMMAND) as client:
            await client.initialize()
            await drive(client, MIX, seconds=warmup, concurrency=concurrency)
            c0 = cpu_s(client.pid)
            result = await drive(client, MIX, seconds=seconds, concurrency=concurrency)
            cpu = cpu_s(client.pid) - c0
    else:
        with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "log", "wb") as log:
            async with launch(list(EXAMPLE_COMMAND), Path(tmp), log) as srv:
                await drive(srv.client, MIX, seconds=warmup, concurrency=concurrency)
                if mode.startswith("tracemalloc@"):
                    await srv.control.call("tracemalloc_start", nframe=int(mode.split("@")[1]))
                elif mode == "memray":
                    await srv.control.call("memray_start", path=str(Path(tmp) / "cap.bin"))
                elif mode.startswith("sampled"):
                    await srv.control.call("sampled_start", interval=interval_of(mode))
                c0 = cpu_s(srv.pid)
                result = await drive(srv.client, MIX, seconds=seconds, concurrency=concurrency)
                cpu = cpu_s(srv.pid) - c0
                if mode == "memray":
                    await srv.control.call("memray_stop")
                elif mode.startswith("sampled"):
                    stats = await srv.control.call("snapshot", path=str(Path(tmp) / "s.mcpprof"))
                    extra = {k: stats["metadata"].get(k) for k in ("samples_taken", "live_samples", "snapshot_s")}
    return {"mode": mode, "calls": result.calls, "errors": sum(result.errors.values()), "wall_s": result.wall_s,
            "throughput": result.calls / result.wall_s, "cpu_ms_per_call": 1000 * cpu / max(1, result.calls), **extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--modes", default="none,agent,sampled,sampled@64k,tracemalloc@1,tracemalloc@8,memray")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    modes = args.modes.split(",")
    rng = random.Random(args.seed)
    runs = []
    sink = open(args.out, "a") if args.out else None
    for rnd in range(args.rounds):
        order = modes[:]
        rng.shuffle(order)
        for mode in order:
            row = {"round": rnd, **asyncio.run(one_run(mode, args.seconds, args.warmup, args.concurrency))}
            runs.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if sink:
                sink.write(line + "\n")
                sink.flush()
    base = {r["round"]: r["throughput"] for r in runs if r["mode"] == "none"}
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        ratios = [base[r["round"]] / r["throughput"] for r in mine if r["round"] in base and r["throughput"]]
        base_cpu = {r["round"]: r["cpu_ms_per_call"] for r in runs if r["mode"] == "none"}
        cpu_ratios = [r["cpu_ms_per_call"] / base_cpu[r["round"]] for r in mine if base_cpu.get(r["round"])]
        summary = {"summary": mode, "median_req_s": round(statistics.median(r["throughput"] for r in mine), 1),
                   "slowdown_median": round(statistics.median(ratios), 3) if ratios else None,
                   "slowdown_range": [round(min(ratios), 3), round(max(ratios), 3)] if ratios else None,
                   "cpu_per_call_ratio_median": round(statistics.median(cpu_ratios), 3) if cpu_ratios else None,
                   "cpu_per_call_ratio_range": [round(min(cpu_ratios), 3), round(max(cpu_ratios), 3)] if cpu_ratios else None,
                   "errors": sum(r["errors"] for r in mine)}
        print(json.dumps(summary), flush=True)
        if sink:
            sink.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    sys.exit(main())
