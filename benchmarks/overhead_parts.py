"""Where the agent's overhead comes from: the example server under ``mcpprof run`` with parts of
the agent switched off, side by side with the plain server (same harness as ``overhead.py``).

Modes (``--modes``, comma-separated): ``none`` (the plain server); ``tags@R`` (the agent at R Hz
with no recorders and no services: request tags, latencies, exact CPU, the sampler); ``agent@R``
(the default agent at R Hz); ``thread@R`` (the default agent with a sampler thread instead of the
SIGALRM timer); ``noflush@R`` (the default agent without periodic writes). R = 1 makes the sampler
nearly idle, isolating the per-request hooks.

    python benchmarks/overhead_parts.py --sets 2 --rounds 8 --modes none,tags@1,agent@1,agent@100

Prints one JSON line per window and per summary to stdout (a script, not library code).
"""

from __future__ import annotations

import argparse
import sys

from interleave import SERVER_MODULE, json_lines, run

ENV = {
    "tags": ["MCPPROF_RECORDERS=", "MCPPROF_SERVICES="],
    "agent": [],
    "thread": ["MCPPROF_TIMER=thread"],
    "noflush": ["MCPPROF_FLUSH=0"],
}


def command_for(mode: str, out_dir: str) -> list:
    server = [sys.executable, "-m", SERVER_MODULE]
    if mode == "none":
        return server
    kind, rate = mode.split("@")
    return (["env", *ENV[kind], sys.executable, "-m", "mcpprof", "run", "--quiet", "--rate", rate,
             "--out", out_dir, "--"] + server)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--modes", default="none,tags@1,agent@1,agent@100,thread@100")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="append the JSON lines to this file too")
    args = ap.parse_args()
    with json_lines(args.out) as emit:
        run(args.modes.split(","), command_for, sets=args.sets, rounds=args.rounds, seconds=args.seconds,
            warmup=args.warmup, concurrency=args.concurrency, seed=args.seed, emit=emit)


if __name__ == "__main__":
    main()
