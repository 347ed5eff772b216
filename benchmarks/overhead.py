"""Overhead of mcpprof's sampler on the bundled example server under concurrent load.

Each round starts a fresh server per mode (shuffled order, so runs interleave), warms it up, then
drives a mix of echo and CPU-bound tools over stdio with N calls in flight for a fixed window and
counts completed calls. Reported: median throughput per mode, and the median over rounds of the
paired ratio mode/none measured in the same round (the figure the issues quote).

    python benchmarks/overhead.py --rounds 5 --seconds 5 --out benchmarks/results/overhead.jsonl

Prints one JSON line per run and a summary line per mode to stdout (this is a script, not library code).
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
import time

from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive

SERVER = [sys.executable, "-m", "mcpprof.examples.server"]
MIX = [CallSpec("tools/call", "echo", {"text": "hello"}, 2.0),
       CallSpec("tools/call", "cpu_async", {"n": 18}),
       CallSpec("tools/call", "cpu_sync", {"n": 18})]


def command_for(mode: str, out_dir: str) -> list:
    if mode == "none":
        return list(SERVER)
    rate = mode.split("@")[1]
    return [sys.executable, "-m", "mcpprof", "run", "--quiet", "--rate", rate, "--out", out_dir, "--"] + SERVER


async def one_run(mode: str, seconds: float, warmup: float, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        async with StdioClient(command_for(mode, out)) as client:
            await client.initialize()
            await drive(client, MIX, seconds=warmup, concurrency=concurrency)
            result = await drive(client, MIX, seconds=seconds, concurrency=concurrency)
            await client.aclose()
        errors = sum(result.errors.values())
        return {"mode": mode, "calls": result.calls, "errors": errors, "wall_s": result.wall_s,
                "throughput": result.calls / result.wall_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--modes", default="none,sample@100,sample@1000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="append the JSON lines to this file too")
    args = ap.parse_args()
    modes = args.modes.split(",")
    rng = random.Random(args.seed)
    rows = []
    sink = open(args.out, "a") if args.out else None
    for rnd in range(args.rounds):
        order = modes[:]
        rng.shuffle(order)
        for mode in order:
            row = asyncio.run(one_run(mode, args.seconds, args.warmup, args.concurrency))
            row.update(round=rnd, time=time.time())
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if sink:
                sink.write(line + "\n")
                sink.flush()
    base = {r["round"]: r["throughput"] for r in rows if r["mode"] == "none"}
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        med = statistics.median(r["throughput"] for r in mine)
        ratios = [r["throughput"] / base[r["round"]] for r in mine if r["round"] in base]
        ratio = statistics.median(ratios) if ratios else float("nan")
        summary = {"summary": mode, "median_throughput": round(med, 1), "median_paired_ratio": round(ratio, 4),
                   "overhead_pct": round(100 * (1 - ratio), 2), "runs": len(mine),
                   "min": round(min(r["throughput"] for r in mine), 1),
                   "max": round(max(r["throughput"] for r in mine), 1)}
        print(json.dumps(summary), flush=True)
        if sink:
            sink.write(json.dumps(summary) + "\n")
    if sink:
        sink.close()


if __name__ == "__main__":
    main()
