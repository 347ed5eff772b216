"""Overhead of every CPU backend, side by side, on the bundled example server under load.

One interleaved run: each round starts a fresh server per mode (order shuffled per round), warms it
up, then drives a mix of echo and CPU-bound tools (async on the loop, sync on worker threads) over
stdio with N calls in flight for a fixed window and counts completed calls. Modes:

    none            the server alone
    sample@100      mcpprof run (in-process sampler, 100 Hz; default recorders and control channel)
    sample@1000     the same at 1 kHz
    exact           mcpprof run --mode exact (yappi, CPU clock, every call tagged)
    pyinstrument    mcpprof run --mode pyinstrument (1 ms interval)
    pyspy@100       the server alone, py-spy record --pid at 100 Hz from outside

Reported per mode: median throughput and the median over rounds of the paired ratio mode/none
measured in the same round (the machine is shared and noisy: compare ratios, not absolutes).

    python benchmarks/backends_overhead.py --rounds 5 --seconds 4 --out benchmarks/results/backends.jsonl

Prints one JSON line per run and a summary table to stdout (a script, not library code).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from typing import Any, List, Optional

from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive

SERVER = [sys.executable, "-m", "mcpprof.examples.server"]
MIX = [CallSpec("tools/call", "echo", {"text": "hello"}, 2.0),
       CallSpec("tools/call", "cpu_async", {"n": 18}),
       CallSpec("tools/call", "cpu_sync", {"n": 18})]
MODES = "none,sample@100,sample@1000,exact,pyinstrument,pyspy@100"


def command_for(mode: str, out_dir: str) -> List[str]:
    if mode == "none" or mode.startswith("pyspy"):
        return list(SERVER)
    run = [sys.executable, "-m", "mcpprof", "run", "--quiet", "--out", out_dir]
    if mode.startswith("sample@"):
        run += ["--rate", mode.split("@")[1]]
    elif mode == "exact":
        run += ["--mode", "exact"]
    elif mode == "pyinstrument":
        run += ["--mode", "pyinstrument", "--rate", "1000"]
    else:
        raise SystemExit(f"unknown mode {mode}")
    return run + ["--"] + SERVER


async def one_run(mode: str, seconds: float, warmup: float, concurrency: int) -> dict:
    outside: Optional[Any] = None
    with tempfile.TemporaryDirectory() as out:
        async with StdioClient(command_for(mode, out)) as client:
            await client.initialize()
            await drive(client, MIX, seconds=warmup, concurrency=concurrency)
            if mode.startswith("pyspy@"):
                from mcpprof.collect.pyspy_collector import PySpyCollector

                outside = PySpyCollector(float(mode.split("@")[1]), pid=client.pid or 0).start()
                await asyncio.sleep(0.5)  # py-spy attached and sampling before the window
            result = await drive(client, MIX, seconds=seconds, concurrency=concurrency)
            if outside is not None:
                outside.stop()
            await client.aclose()
    row = {"mode": mode, "calls": result.calls, "errors": sum(result.errors.values()), "wall_s": result.wall_s,
           "throughput": result.calls / result.wall_s}
    if outside is not None:
        row["pyspy_samples"] = outside.snapshot().metadata.get("samples")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--modes", default=MODES)
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
    print(f"\n{'mode':<14} {'median calls/s':>14} {'paired ratio':>13} {'overhead':>9} {'errors':>7}")
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        tput = statistics.median(r["throughput"] for r in mine)
        ratios = [r["throughput"] / base[r["round"]] for r in mine if r["round"] in base]
        ratio = statistics.median(ratios) if ratios else float("nan")
        print(f"{mode:<14} {tput:>14.0f} {ratio:>13.3f} {1 - ratio:>8.1%} {sum(r['errors'] for r in mine):>7}")


if __name__ == "__main__":
    main()
