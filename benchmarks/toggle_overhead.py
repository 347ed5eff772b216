"""Cost of parts of mcpprof, switched inside one running server (same-process A/B).

``overhead.py`` compares separate server processes, so each comparison also carries the luck of
two processes (memory layout, hash seed, which core): about ±1 point on this machine even over
dozens of windows. Here one example server (stdio, the overhead mix, 16 in flight) runs the
whole time, and a signal switches it between *states* (order shuffled per round); every state's
window is compared with the ``off`` window of the same round. States:

* ``off``            - nothing of mcpprof's runs (the baseline; always measured);
* ``null``           - the same as ``off``, under another name: the noise floor of the method;
* ``hooks``          - ``mcpprof.instrument``: the per-request hooks alone (the middleware: request
  tags, the ContextVar, latency; the ``to_thread`` wrappers measuring worker-thread CPU), no agent;
* ``hooks-exact``    - the hooks with exact CPU (metered steps, task factory);
* ``hooks-nothread`` - the hooks without the ``to_thread`` wrappers;
* ``sampler``        - the hooks and an in-process sampler at ``--rate`` (``--timer``) tagging
  requests, no agent;
* ``sampler-only``   - the sampler without the hooks (every sample outside a request);
* ``alarm``          - no mcpprof: an empty SIGALRM handler at ``--rate`` (what the signal timer
  costs by itself);
* ``agent``          - the hooks and the whole default agent of ``mcpprof run`` at ``--rate``
  (sampler, request tables, recorders, control channel, periodic writes), started in the server
  and finished (final write) when the state ends;
* ``agent-exact`` / ``agent-nothread`` / ``agent-norec`` / ``agent-nosvc`` / ``agent-noflush`` -
  the agent with exact CPU, without the ``to_thread`` wrappers, without its recorders, without its
  services (the control channel), without periodic writes.

Reported per state: the median over rounds of the paired throughput ratio to ``off`` (and its
quartiles), and the median paired difference of CPU per call, of the main thread and of the
process's live threads.

    python benchmarks/toggle_overhead.py --states null,hooks,sampler --rounds 40 --out benchmarks/results/toggle_overhead.jsonl
    python benchmarks/toggle_overhead.py --states hooks,hooks-exact,hooks-nothread --rounds 50
    python benchmarks/toggle_overhead.py --states sampler --rate 1000 --rounds 30

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
import tempfile
from typing import Any, Dict, List

from interleave import MIX, json_lines

from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive

STATES = ("off", "null", "alarm", "hooks", "hooks-exact", "hooks-nothread", "sampler", "sampler-only", "agent", "agent-exact",
          "agent-nothread", "agent-norec", "agent-nosvc", "agent-noflush")

#: The server: the bundled example server; SIGUSR1 switches it to the state named in a file.
SERVER = r'''
import os, signal, sys
import mcpprof
from mcpprof.examples.server import build_server
from mcpprof.mcp import context

state_file, rate, timer, out_dir = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
server = build_server()
current = {"state": "off", "sampler": None, "agent": None}
HOOKED = ("hooks", "sampler", "agent")

def leave(state):
    if state == "alarm":
        signal.setitimer(signal.ITIMER_REAL, 0)
    agent = current["agent"]
    if agent is not None:  # finish (final write), then take its sink out: the next agent is new
        agent.finish("state switched")
        if agent._on_requests in context.request_sinks:
            context.request_sinks.remove(agent._on_requests)
        current["agent"] = None
    if state.startswith(HOOKED) and state != "sampler-only":
        mcpprof.uninstall(server)
    if current["sampler"] is not None:
        current["sampler"].stop()
        current["sampler"] = None

def enter(state):
    if state == "alarm":
        signal.signal(signal.SIGALRM, lambda signum, frame: None)
        signal.siginterrupt(signal.SIGALRM, False)
        signal.setitimer(signal.ITIMER_REAL, 1 / rate, 1 / rate)
    if state.startswith(HOOKED) and state != "sampler-only":
        mcpprof.instrument(server, exact_cpu=state.endswith("-exact"))
    if state.startswith("agent"):
        from mcpprof.launch.agent import Agent
        from mcpprof.launch.config import AgentConfig
        os.environ["MCPPROF_TIMER"] = timer
        config = AgentConfig(out_dir=os.path.join(out_dir, state), rate_hz=rate, quiet=True,
                             flush_s=0.0 if state == "agent-noflush" else 1.0,
                             recorders="" if state == "agent-norec" else None,
                             services="" if state == "agent-nosvc" else None,
                             exact_cpu=state == "agent-exact")
        current["agent"] = Agent(config)
        current["agent"].activate()
    if state.endswith("-nothread"):  # without the to_thread wrappers (worker-thread CPU)
        for owner, name, original in context._thread_patches:
            setattr(owner, name, original)
    if state.startswith("sampler"):
        from mcpprof.collect.sampler import Sampler
        current["sampler"] = Sampler(rate, timer=timer).start()

def switch(*_):
    with open(state_file) as fh:
        want = fh.read().strip()
    if want != current["state"]:
        leave(current["state"])
        enter(want)
        current["state"] = want
    with open(state_file + ".ack", "w") as fh:  # switched (an agent's final write is done)
        fh.write(want)

signal.signal(signal.SIGUSR1, switch)
server.run("stdio")
'''


def thread_cpu_ns(pid: int) -> tuple:
    """(main thread CPU ns, CPU ns of the process's live threads) from ``schedstat``."""
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


async def switched(state_file: str, state: str, timeout: float = 30.0) -> None:
    """Wait until the server says it is in ``state``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        try:
            with open(state_file + ".ack") as fh:
                if fh.read() == state:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.01)
    try:
        with open(os.path.join(os.path.dirname(state_file), "server.stderr")) as fh:
            tail = fh.read()[-2000:]
    except OSError:
        tail = ""
    raise SystemExit(f"the server did not switch to {state!r} within {timeout:g} s\n{tail}")


async def measure(states: List[str], args: argparse.Namespace, emit: Any) -> Dict[str, List[tuple]]:
    """Windows of every state, ``args.rounds`` rounds, in one server: {state: [(throughput, main
    CPU us per call, process CPU us per call)]}, rounds in order."""
    mix = MIX if args.mix == "mix" else [CallSpec("tools/call", "echo", {"text": "hello"})]
    rng = random.Random(args.seed)
    rows: Dict[str, List[tuple]] = {s: [] for s in states}
    with tempfile.TemporaryDirectory() as tmp:
        state_file = os.path.join(tmp, "state")
        with open(state_file, "w") as fh:
            fh.write("off")
        command = [sys.executable, "-c", SERVER, state_file, str(args.rate), args.timer, tmp]
        async with StdioClient(command, stderr=open(os.path.join(tmp, "server.stderr"), "wb")) as client:
            await client.initialize()
            await drive(client, mix, seconds=args.warmup, concurrency=args.concurrency)
            pid = client.pid or 0
            for rnd in range(args.rounds):
                order = list(states)
                rng.shuffle(order)
                for state in order:
                    with open(state_file, "w") as fh:
                        fh.write(state)
                    os.kill(pid, signal.SIGUSR1)
                    await switched(state_file, state)
                    await asyncio.sleep(0.05)  # a started thread settles
                    m0, t0 = thread_cpu_ns(pid)
                    result = await drive(client, mix, seconds=args.seconds, concurrency=args.concurrency)
                    m1, t1 = thread_cpu_ns(pid)
                    calls = max(1, result.calls)
                    row = (result.calls / result.wall_s, (m1 - m0) / calls / 1000, (t1 - t0) / calls / 1000)
                    rows[state].append(row)
                    if args.windows:
                        emit({"state": state, "round": rnd, "throughput": row[0],
                              "main_cpu_us_per_call": row[1], "cpu_us_per_call": row[2]})
    return rows


def summarize(state: str, mine: List[tuple], off: List[tuple], args: argparse.Namespace) -> Dict[str, Any]:
    ratios = [a[0] / b[0] for a, b in zip(mine, off)]
    q = statistics.quantiles(ratios, n=4)
    sampler = state.startswith(("sampler", "agent", "alarm"))
    return {"summary": state, "rounds": len(ratios), "mix": args.mix,
            "rate_hz": args.rate if sampler else None, "timer": args.timer if sampler else None,
            "median_paired_ratio": round(statistics.median(ratios), 4), "ratio_q1": round(q[0], 4),
            "ratio_q3": round(q[2], 4), "overhead_pct": round(100 * (1 - statistics.median(ratios)), 2),
            "off_main_cpu_us_per_call": round(statistics.median(r[1] for r in off), 1),
            "main_cpu_us_per_call_delta": round(statistics.median(a[1] - b[1] for a, b in zip(mine, off)), 2),
            "cpu_us_per_call_delta": round(statistics.median(a[2] - b[2] for a, b in zip(mine, off)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--states", default="null,hooks,sampler",
                    help="comma-separated, each compared with off: " + ", ".join(STATES[1:]))
    ap.add_argument("--rounds", type=int, default=40, help="windows of every state")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one window")
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--mix", choices=("mix", "echo"), default="mix", help="the overhead mix, or echo only")
    ap.add_argument("--rate", type=float, default=100.0, help="the sampler's rate (sampler and agent states)")
    ap.add_argument("--timer", choices=("thread", "signal"), default="signal", help="the sampler's timer")
    ap.add_argument("--windows", action="store_true", help="print every window too")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="append the JSON lines to this file too")
    args = ap.parse_args()
    states = [s for s in args.states.split(",") if s and s != "off"]
    unknown = [s for s in states if s not in STATES]
    if unknown or not states:
        ap.error(f"unknown or no states {unknown}: choose from {', '.join(STATES[1:])}")
    with json_lines(args.out) as emit:
        rows = asyncio.run(measure(["off"] + states, args, emit))
        for state in states:
            emit(summarize(state, rows[state], rows["off"], args))


if __name__ == "__main__":
    main()
