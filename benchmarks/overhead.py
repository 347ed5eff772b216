"""Overhead of mcpprof's sampler on the bundled example server under concurrent load.

The servers of every mode run side by side and are driven in short interleaved windows (see
``benchmarks/interleave.py``: order shuffled per round, the others SIGSTOPped, several sets of fresh
processes): a mix of echo and CPU-bound tools (async on the loop, sync on worker threads) over
stdio with N calls in flight. Reported per mode: the median over windows of the paired throughput
ratio mode/none (with its quartiles; the figure the issues quote) and of server CPU per call.

    python benchmarks/overhead.py --sets 3 --rounds 10 --seconds 1.5 --out benchmarks/results/overhead.jsonl
    python benchmarks/overhead.py --sets 2 --rounds 8 --modes none,tags@1,sample@1,sample@100,thread@100
    git worktree add /tmp/before <rev>
    python benchmarks/overhead.py --before /tmp/before --modes none,before@100,sample@100,before@1000,sample@1000

The second form splits the overhead by switching the agent's parts off (see ``VARIANT_ENV``); the
third compares another checkout of mcpprof (``before@R``: its agent at R Hz) in the same run.

Prints one JSON line per window and per summary to stdout (a script, not library code).
"""

from __future__ import annotations

import argparse
import sys

from interleave import SERVER_MODULE, json_lines, run


#: Agent variants, to see where the overhead comes from: ``sample@R`` is the default agent at R Hz;
#: ``tags@R`` has no recorders and no services (request tags, latencies, exact CPU, the sampler);
#: ``thread@R`` samples from a thread instead of the SIGALRM timer; ``noflush@R`` writes only at
#: exit; ``norec@R`` runs no recorders, ``nosvc@R`` no services (the control channel); ``xcpu@R`` is
#: the default agent with ``--exact-cpu``. R = 1 leaves the sampler nearly idle, isolating the per-request hooks.
#: ``alarm@R`` is no mcpprof at all: the plain server with an empty SIGALRM handler at R Hz (what the
#: sampler's timer costs by itself); ``burn@R`` the same with a handler that spins ``BURN_NS`` (a
#: tick's CPU without its work: what the ticks would cost if only their own CPU counted). Two modes
#: without a rate: ``imports`` (the plain server after importing every module the default agent
#: loads, nothing started) and ``instrument`` (the request hooks put in by ``mcpprof.instrument`` in
#: code: no agent, no sampler). ``plain`` is a second plain
#: server, started like ``none``: the noise floor of comparing two processes.
VARIANT_ENV = {
    "sample": [],
    "tags": ["MCPPROF_RECORDERS=", "MCPPROF_SERVICES="],
    "thread": ["MCPPROF_TIMER=thread"],
    "noflush": ["MCPPROF_FLUSH=0"],
    "norec": ["MCPPROF_RECORDERS="],
    "nosvc": ["MCPPROF_SERVICES="],
    "xcpu": [],
}
VARIANT_FLAGS = {"xcpu": ["--exact-cpu"]}


#: How long the ``burn@R`` handler spins: about one tick's CPU in the loaded example server (54-77 µs
#: measured on 8 December, ``metadata["overhead"]`` over ``ticks``).
BURN_NS = 70_000

def _alarm_server(handler: str) -> str:
    """The plain example server with ``handler`` (source defining ``handler(signum, frame)``) on a
    process SIGALRM timer at ``sys.argv[1]`` Hz."""
    return ("import runpy, signal, sys, time\n" + handler +
            "signal.signal(signal.SIGALRM, handler)\n"
            "signal.siginterrupt(signal.SIGALRM, False)\n"
            "signal.setitimer(signal.ITIMER_REAL, 1 / float(sys.argv[1]), 1 / float(sys.argv[1]))\n"
            f"sys.argv = [sys.argv[0]]\nrunpy.run_module({SERVER_MODULE!r}, run_name='__main__')\n")


ALARM_SERVER = _alarm_server("handler = lambda signum, frame: None\n")
BURN_SERVER = _alarm_server("pc = time.perf_counter_ns\n"
                            "def handler(signum, frame):\n"
                            f"    end = pc() + {BURN_NS}\n"
                            "    while pc() < end:\n"
                            "        pass\n")

_AGENT_MODULES = ("gc", "gzip", "tracemalloc", "mcpprof.launch.agent", "mcpprof.launch.channel",
                  "mcpprof.launch.recorders", "mcpprof.memory.gcpauses", "mcpprof.memory.procmem",
                  "mcpprof.memory.timeline", "mcpprof.collect.sampler", "mcpprof.collect.slowest",
                  "mcpprof.mcp.sdk2", "mcpprof.mcp.install", "mcpprof.model.io", "mcpprof.native")
IMPORTS_SERVER = (f"import runpy, sys, {', '.join(_AGENT_MODULES)}\n"
                  f"runpy.run_module({SERVER_MODULE!r}, run_name='__main__')\n")
INSTRUMENT_SERVER = (
    f"import mcpprof, {SERVER_MODULE} as example\n"
    "build = example.build_server\n"
    "def instrumented():\n"
    "    server = build()\n"
    "    mcpprof.instrument(server)\n"
    "    return server\n"
    "example.build_server = instrumented\n"
    "example.main([])\n")

BEFORE: list = []  # ["PYTHONPATH=<checkout>"] for the before@R modes (--before)


def command_for(mode: str, out_dir: str) -> list:
    server = [sys.executable, "-m", SERVER_MODULE]
    if mode in ("none", "plain"):  # "plain": a second plain server, the method's noise floor
        return server
    if mode in ("imports", "instrument"):
        return [sys.executable, "-c", IMPORTS_SERVER if mode == "imports" else INSTRUMENT_SERVER]
    kind, rate = mode.split("@")
    if kind == "alarm":
        return [sys.executable, "-c", ALARM_SERVER, rate]
    if kind == "burn":
        return [sys.executable, "-c", BURN_SERVER, rate]
    env = BEFORE if kind == "before" else VARIANT_ENV[kind]
    return (["env", *env, sys.executable, "-m", "mcpprof", "run", "--quiet", "--rate", rate,
             *VARIANT_FLAGS.get(kind, []), "--out", out_dir, "--"] + server)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", type=int, default=3, help="sets of fresh server processes")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved windows per mode and set")
    ap.add_argument("--seconds", type=float, default=1.5, help="length of one window")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--modes", default="none,sample@100,sample@1000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="append the JSON lines to this file too")
    ap.add_argument("--before", default=None, help="a checkout of mcpprof whose agent the before@R modes run")
    args = ap.parse_args()
    if args.before:
        BEFORE.append(f"PYTHONPATH={args.before}")
    with json_lines(args.out) as emit:
        run(args.modes.split(","), command_for, sets=args.sets, rounds=args.rounds, seconds=args.seconds,
            warmup=args.warmup, concurrency=args.concurrency, seed=args.seed, emit=emit)


if __name__ == "__main__":
    main()
