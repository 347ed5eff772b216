"""The sampler's whole cost inside one process: A/B windows with the sampler on and off.

An instrumented example server is driven in-process (``mcp.Client`` over the in-memory transport,
16 calls in flight, echo and CPU-bound tools mixed); windows of N calls alternate, in shuffled
pairs, between no sampler and a sampler started for that window. Reported: the median paired ratio
of process CPU per call (on/off: the sampler's direct and indirect cost, with process-to-process
differences ruled out) next to the sampler's own CPU share from its metadata. The client's CPU is
in both sides of every ratio, so the ratio understates the server-only cost by about the client's
share.

    python benchmarks/sampler_ab.py --rate 100 --pairs 15 [--timer signal|thread]

Prints one JSON line on stdout (a script, not library code).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

import mcp

import mcpprof
from mcpprof.collect.sampler import Sampler
from mcpprof.examples.server import build_server

MIX = [("echo", {"text": "x"}), ("echo", {"text": "x"}), ("cpu_async", {"n": 18}), ("cpu_sync", {"n": 18})]


async def _block(client: mcp.Client, calls: int, concurrency: int) -> None:
    it = iter(range(calls))

    async def worker() -> None:
        for i in it:
            name, args = MIX[i % len(MIX)]
            await client.call_tool(name, args)
    await asyncio.gather(*[worker() for _ in range(concurrency)])


async def _run(rate: float, timer: str, pairs: int, calls: int, concurrency: int, seed: int) -> dict:
    server = build_server()
    mcpprof.instrument(server)
    rng = random.Random(seed)
    per_call = {"off": [], "on": []}
    own = []
    async with mcp.Client(server) as client:
        await _block(client, 300, concurrency)
        for _ in range(pairs):
            for side in rng.sample(["off", "on"], 2):
                sampler = Sampler(rate, timer=timer).start() if side == "on" else None
                t0 = time.process_time_ns()
                await _block(client, calls, concurrency)
                spent = time.process_time_ns() - t0
                if sampler is not None:
                    sampler.stop()
                    own.append(sampler.snapshot().metadata["overhead"]["sampler_cpu_ns"] / spent)
                per_call[side].append(spent / calls / 1000)
    ratios = [b / a for a, b in zip(per_call["off"], per_call["on"])]
    return {"rate_hz": rate, "timer": timer, "pairs": pairs, "calls_per_window": calls,
            "off_us_per_call": round(statistics.median(per_call["off"]), 1),
            "on_us_per_call": round(statistics.median(per_call["on"]), 1),
            "paired_cpu_ratio": round(statistics.median(ratios), 4),
            "sampler_own_share": round(statistics.median(own), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--timer", default="signal", choices=("signal", "thread"))
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--calls", type=int, default=200, help="calls per window")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    row = asyncio.run(_run(args.rate, args.timer, args.pairs, args.calls, args.concurrency, args.seed))
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
