"""Fine-grained interleaved overhead measurement, shared by the overhead benchmarks.

The machine is shared: its speed drifts by ±10 % over tens of seconds, so comparing runs made a
minute apart measures the drift. Here every mode's server runs at the same time; each round drives
them one after the other for a short window (order shuffled per round) while the others are
stopped with SIGSTOP (so an idle server's timer or threads cost the measured one nothing), and the
ratio mode/none is taken within the round. Several *sets* of fresh server processes are used, so
one process's luck (memory layout, hash seed) does not decide the figure. The servers of one set
share a hash seed (``PYTHONHASHSEED``, drawn per set): string hashing decides how often dict
lookups collide, which moves a server's instructions per call by about ±0.5 % from one seed to
another (callgrind, example server), so paired windows compare like with like; the seeds still
vary across sets.

Per window: completed calls per second, and the server's CPU per call from its
process CPU clock (``/proc/<pid>/stat``, which keeps the time of threads that have ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import tempfile
import time
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Sequence

from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive

SERVER_MODULE = "mcpprof.examples.server"
MIX = [CallSpec("tools/call", "echo", {"text": "hello"}, 2.0),
       CallSpec("tools/call", "cpu_async", {"n": 18}),
       CallSpec("tools/call", "cpu_sync", {"n": 18})]

#: ``hook(mode, client) -> awaitable of an optional cleanup`` run around a mode's window (py-spy).
WindowHook = Callable[[str, StdioClient], Awaitable[Optional[Callable[[], Dict[str, Any]]]]]


def server_cpu_ns(pid: int) -> int:
    """CPU time of ``pid`` (ns), threads that have ended included (``/proc/<pid>/stat``, clock ticks:
    summing live threads' schedstat would lose the time of a worker thread that exits mid-window)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // _TICK
    except (OSError, ValueError, IndexError):
        return 0


_TICK = os.sysconf("SC_CLK_TCK")


def _signal(pid: Optional[int], sig: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


async def _window(mode: str, client: StdioClient, seconds: float, concurrency: int,
                  hook: Optional[WindowHook]) -> Dict[str, Any]:
    done = await hook(mode, client) if hook is not None else None
    cpu0 = server_cpu_ns(client.pid or 0)
    result = await drive(client, MIX, seconds=seconds, concurrency=concurrency)
    cpu = server_cpu_ns(client.pid or 0) - cpu0
    row = {"mode": mode, "calls": result.calls, "errors": sum(result.errors.values()),
           "wall_s": result.wall_s, "throughput": result.calls / result.wall_s,
           "server_cpu_us_per_call": cpu / 1000 / max(1, result.calls)}
    if done is not None:
        row.update(done())
    return row


async def run_set(modes: Sequence[str], command_for: Callable[[str, str], List[str]], rounds: int,
                  seconds: float, warmup: float, concurrency: int, rng: random.Random,
                  hook: Optional[WindowHook] = None) -> List[Dict[str, Any]]:
    """One set of fresh servers (one per mode), ``rounds`` interleaved windows each."""
    rows: List[Dict[str, Any]] = []
    env = dict(os.environ, PYTHONHASHSEED=str(rng.randrange(1, 2**32 - 1)))  # one per set: see above
    with tempfile.TemporaryDirectory() as out, contextlib.ExitStack() as dirs:
        clients: Dict[str, StdioClient] = {}
        try:
            for mode in modes:
                folder = dirs.enter_context(tempfile.TemporaryDirectory(dir=out))
                client = clients[mode] = StdioClient(command_for(mode, folder), env=env)
                await client.start()
                await client.initialize()
                await drive(client, MIX, seconds=warmup, concurrency=concurrency)
                _signal(client.pid, signal.SIGSTOP)
            for rnd in range(rounds):
                order = list(modes)
                rng.shuffle(order)
                for mode in order:
                    client = clients[mode]
                    _signal(client.pid, signal.SIGCONT)
                    await asyncio.sleep(0.05)  # let a woken timer or thread settle
                    row = await _window(mode, client, seconds, concurrency, hook)
                    _signal(client.pid, signal.SIGSTOP)
                    row.update(round=rnd, time=time.time())
                    rows.append(row)
        finally:
            for client in clients.values():
                _signal(client.pid, signal.SIGCONT)
                with contextlib.suppress(Exception):
                    await client.aclose()
    return rows


def summarize(rows: List[Dict[str, Any]], modes: Sequence[str], base: str = "none") -> List[Dict[str, Any]]:
    """Per mode: median throughput, median paired ratio to ``base`` (same set and round) with its
    quartiles, and the median paired ratio of server CPU per call."""
    key = lambda r: (r["set"], r["round"])  # noqa: E731
    base_rows = {key(r): r for r in rows if r["mode"] == base}
    out = []
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode and key(r) in base_rows]
        if not mine:
            continue
        tput = [r["throughput"] / base_rows[key(r)]["throughput"] for r in mine]
        cpu = [r["server_cpu_us_per_call"] / base_rows[key(r)]["server_cpu_us_per_call"] for r in mine
               if base_rows[key(r)]["server_cpu_us_per_call"] > 0]
        q = statistics.quantiles(tput, n=4) if len(tput) >= 2 else [tput[0]] * 3
        ratio = statistics.median(tput)
        out.append({"summary": mode, "windows": len(mine),
                    "median_throughput": round(statistics.median(r["throughput"] for r in mine), 1),
                    "median_paired_ratio": round(ratio, 4), "ratio_q1": round(q[0], 4), "ratio_q3": round(q[2], 4),
                    "overhead_pct": round(100 * (1 - ratio), 2),
                    "cpu_per_call_ratio": round(statistics.median(cpu), 4) if cpu else None,
                    "median_server_cpu_us_per_call": round(statistics.median(r["server_cpu_us_per_call"]
                                                                             for r in mine), 1),
                    "errors": sum(r["errors"] for r in mine)})
    return out


def run(modes: Sequence[str], command_for: Callable[[str, str], List[str]], *, sets: int, rounds: int,
        seconds: float, warmup: float, concurrency: int, seed: int, emit: Callable[[Dict[str, Any]], None],
        hook: Optional[WindowHook] = None) -> List[Dict[str, Any]]:
    """Every set, every round; ``emit`` gets each window's row, then each summary row."""
    rng = random.Random(seed)
    rows: List[Dict[str, Any]] = []
    for s in range(sets):
        for row in asyncio.run(run_set(modes, command_for, rounds, seconds, warmup, concurrency, rng, hook)):
            row["set"] = s
            rows.append(row)
            emit(row)
    summary = summarize(rows, modes)
    for row in summary:
        emit(row)
    return summary


@contextlib.contextmanager
def json_lines(out: Optional[str]) -> Iterator[Callable[[Dict[str, Any]], None]]:
    """``emit(row)``: print ``row`` as a JSON line on stdout and append it to ``out`` if given."""
    sink = open(out, "a") if out else None

    def emit(row: Dict[str, Any]) -> None:
        line = json.dumps(row)
        print(line, flush=True)  # a benchmark script's output, not library code
        if sink:
            sink.write(line + "\n")
            sink.flush()
    try:
        yield emit
    finally:
        if sink:
            sink.close()
