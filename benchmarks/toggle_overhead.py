"""Cost of one part of mcpprof, switched on and off inside one running server (same-process A/B).

``overhead.py`` compares separate server processes, so each comparison also carries the luck of
two processes (memory layout, hash seed, which core): about ±1 point on this machine even over
dozens of windows. Here one example server (stdio, the overhead mix, 16 in flight) runs the
whole time, and a signal switches one part on or off between windows (order shuffled per round):

* ``null``    - the signal flips nothing: the noise floor of the method;
* ``hooks``   - ``mcpprof.instrument`` / ``mcpprof.uninstall``: the per-request hooks alone
  (middleware, request tags, exact CPU metering, task factory, ``to_thread`` wrappers), no agent;
* ``sampler`` - an in-process :class:`~mcpprof.collect.sampler.Sampler` at ``--rate`` started and
  stopped (``--timer thread|signal``), tagging requests only if ``hooks`` are on too (``--with-hooks``).

Reported per part: the median over rounds of the paired throughput ratio on/off (and quartiles),
and the median paired difference of CPU per call, of the main thread and of the whole process.

    python benchmarks/toggle_overhead.py --parts null,hooks,sampler --rounds 40 --out benchmarks/results/toggle_overhead.jsonl
    python benchmarks/toggle_overhead.py --parts sampler --rate 1000 --with-hooks --mix echo

Prints one JSON line per summary (and per window with ``--windows``) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
from typing import Any, Dict, List

from interleave import MIX, json_lines

from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive

#: The server: the bundled example server with the part under test behind SIGUSR1.
SERVER = r'''
import os, signal, sys
import mcpprof
from mcpprof.examples.server import build_server

part, rate, timer = sys.argv[1], float(sys.argv[2]), sys.argv[3]
server = build_server()
if os.environ.get("TOGGLE_WITH_HOOKS") == "1":
    mcpprof.instrument(server)
state = {"on": False, "sampler": None}

def toggle(*_):
    on = state["on"] = not state["on"]
    if part == "hooks":
        (mcpprof.instrument if on else mcpprof.uninstall)(server)
    elif part == "sampler":
        if on:
            from mcpprof.collect.sampler import Sampler
            state["sampler"] = Sampler(rate, timer=timer).start()
        else:
            state["sampler"].stop()

signal.signal(signal.SIGUSR1, toggle)
server.run("stdio")
'''


def thread_cpu_ns(pid: int) -> tuple:
    """(main thread CPU ns, whole process CPU ns of live threads) from ``schedstat``."""
    main = total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                ns = int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        total += ns
        if int(tid) == pid:
            main = ns
    return main, total


async def run_part(part: str, args: argparse.Namespace, rng: random.Random,
                   emit: Any) -> Dict[str, Any]:
    mix = MIX if args.mix == "mix" else [CallSpec("tools/call", "echo", {"text": "hello"})]
    env = dict(os.environ, TOGGLE_WITH_HOOKS="1" if args.with_hooks and part == "sampler" else "0")
    command = [sys.executable, "-c", SERVER, part, str(args.rate), args.timer]
    rows: Dict[bool, List[tuple]] = {True: [], False: []}
    async with StdioClient(command, env=env) as client:
        await client.initialize()
        await drive(client, mix, seconds=args.warmup, concurrency=args.concurrency)
        pid, on = client.pid or 0, False
        for rnd in range(args.rounds):
            order = [True, False]
            rng.shuffle(order)
            for want in order:
                if want != on:
                    os.kill(pid, signal.SIGUSR1)
                    on = want
                await asyncio.sleep(0.05)  # the switch lands, a started thread settles
                m0, t0 = thread_cpu_ns(pid)
                result = await drive(client, mix, seconds=args.seconds, concurrency=args.concurrency)
                m1, t1 = thread_cpu_ns(pid)
                calls = max(1, result.calls)
                row = (result.calls / result.wall_s, (m1 - m0) / calls / 1000, (t1 - t0) / calls / 1000)
                rows[want].append(row)
                if args.windows:
                    emit({"part": part, "on": want, "round": rnd, "throughput": row[0],
                          "main_cpu_us_per_call": row[1], "cpu_us_per_call": row[2]})
    on_rows, off_rows = rows[True], rows[False]
    ratios = [a[0] / b[0] for a, b in zip(on_rows, off_rows)]
    q = statistics.quantiles(ratios, n=4)
    return {"summary": part, "rounds": len(ratios), "mix": args.mix, "rate_hz": args.rate if part == "sampler" else None,
            "timer": args.timer if part == "sampler" else None, "with_hooks": bool(args.with_hooks) if part == "sampler" else None,
            "median_paired_ratio": round(statistics.median(ratios), 4), "ratio_q1": round(q[0], 4),
            "ratio_q3": round(q[2], 4), "overhead_pct": round(100 * (1 - statistics.median(ratios)), 2),
            "off_main_cpu_us_per_call": round(statistics.median(r[1] for r in off_rows), 1),
            "main_cpu_us_per_call_delta": round(statistics.median(a[1] - b[1] for a, b in zip(on_rows, off_rows)), 2),
            "cpu_us_per_call_delta": round(statistics.median(a[2] - b[2] for a, b in zip(on_rows, off_rows)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="null,hooks,sampler", help="comma-separated: null, hooks, sampler")
    ap.add_argument("--rounds", type=int, default=40, help="on/off window pairs per part")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one window")
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--mix", choices=("mix", "echo"), default="mix", help="the overhead mix, or echo only")
    ap.add_argument("--rate", type=float, default=100.0, help="the sampler's rate (part sampler)")
    ap.add_argument("--timer", choices=("thread", "signal"), default="signal", help="the sampler's timer")
    ap.add_argument("--with-hooks", action="store_true", help="request hooks on all the time (part sampler)")
    ap.add_argument("--windows", action="store_true", help="print every window too")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="append the JSON lines to this file too")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with json_lines(args.out) as emit:
        for part in args.parts.split(","):
            if part not in ("null", "hooks", "sampler"):
                ap.error(f"unknown part {part!r}: null, hooks or sampler")
            emit(asyncio.run(run_part(part, args, rng, emit)))


if __name__ == "__main__":
    main()
