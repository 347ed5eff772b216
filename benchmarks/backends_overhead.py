"""Overhead of every CPU backend, side by side, on the bundled example server under load.

One interleaved run (``benchmarks/interleave.py``): the servers of every mode run side by side and are
driven in short windows, order shuffled per round, the others SIGSTOPped, over several sets of fresh
processes; a mix of echo and CPU-bound tools (async on the loop, sync on worker threads) over stdio
with N calls in flight. Modes:

    none            the server alone
    sample@100      mcpprof run (in-process sampler, 100 Hz; default recorders and control channel)
    sample@1000     the same at 1 kHz
    exact           mcpprof run --mode exact (yappi, CPU clock, every call tagged)
    pyinstrument    mcpprof run --mode pyinstrument (1 ms interval)
    pyspy@100       the server alone, py-spy record --pid at 100 Hz from outside (attached for its
                    windows only)

Reported per mode: the median over windows of the paired throughput ratio mode/none (with its
quartiles) and of server CPU per call.

    python benchmarks/backends_overhead.py --sets 2 --rounds 6 --seconds 1.5 --out benchmarks/results/backends_overhead.jsonl

Prints one JSON line per window and per summary to stdout (a script, not library code).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, Callable, Dict, List, Optional

from interleave import SERVER_MODULE, json_lines, run

SERVER = [sys.executable, "-m", SERVER_MODULE]
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


async def pyspy_window(mode: str, client: Any) -> Optional[Callable[[], Dict[str, Any]]]:
    """Attach py-spy for a ``pyspy@`` mode's window; the returned callable detaches it."""
    if not mode.startswith("pyspy@"):
        return None
    from mcpprof.collect.pyspy_collector import PySpyCollector

    outside = PySpyCollector(float(mode.split("@")[1]), pid=client.pid or 0).start()
    await asyncio.sleep(0.5)  # py-spy attached and sampling before the window

    def done() -> Dict[str, Any]:
        outside.stop()
        return {"pyspy_samples": outside.snapshot().metadata.get("samples")}
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", type=int, default=2, help="sets of fresh server processes")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved windows per mode and set")
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--modes", default=MODES)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="append the JSON lines to this file too")
    args = ap.parse_args()
    with json_lines(args.out) as emit:
        run(args.modes.split(","), command_for, sets=args.sets, rounds=args.rounds, seconds=args.seconds,
            warmup=args.warmup, concurrency=args.concurrency, seed=args.seed, emit=emit, hook=pyspy_window)


if __name__ == "__main__":
    main()
