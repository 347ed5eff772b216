"""Client CPU per request: mcpprof's lean stdio client vs the official MCP SDK client.

Each run starts a fresh bundled example server over stdio (``python -m mcpprof.examples.server``),
does the legacy ``initialize``, ``--warmup`` calls, then ``--requests`` measured ``tools/call echo``
calls in a closed loop with C calls in flight. Clients:

* ``lean-drive``  :class:`mcpprof.bench.client.StdioClient` driven by :func:`mcpprof.bench.drive.drive`
  (the callback closed loop ``mcpprof profile`` uses);
* ``lean-await``  the same client, C tasks each ``await client.call_tool(...)``;
* ``sdk``         ``mcp.ClientSession`` over ``mcp.client.stdio.stdio_client``, C tasks each
  ``await session.call_tool(...)``;
* ``lean-noop``   ``lean-drive`` against a stand-in that answers every line at once (a few lines
  of Python, not MCP): the client's floor when replies arrive in batches rather than one per
  wake-up, which is the case with a real server on a small machine.

Client CPU = ``time.process_time_ns()`` of this process (all threads) over the measured window /
requests; server CPU = the server's process CPU clock (``clock_gettime`` on its pid's clock id).
The cells are shuffled in every round (interleaved runs); medians over the rounds are printed at
the end, with each client's CPU ratio to ``lean-drive`` (the median of the per-round ratios). One JSON object per line on stdout.

    python benchmarks/client_cost.py [--runs 5] [--requests 2000] [--warmup 200] [--conc 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from mcpprof.bench.client import StdioClient  # noqa: E402
from mcpprof.bench.drive import CallSpec, drive  # noqa: E402

SERVER = [sys.executable, "-m", "mcpprof.examples.server", "--max-seconds", "300"]
ENV = {**os.environ, "PYTHONPATH": os.path.abspath(ROOT)}
ARGS = {"text": "hello"}
CLIENTS = ("lean-drive", "lean-await", "sdk", "lean-noop")
NOOP_SERVER = [sys.executable, "-c", """
import sys
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    i = line.find(b'"id":')
    if i >= 0:
        rid = line[i + 5:line.index(b',', i)]
        out.write(b'{"jsonrpc":"2.0","id":' + rid + b',"result":{"content":[{"type":"text","text":"hello"}]}}\\n')
        out.flush()
"""]

_libc = ctypes.CDLL(None, use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def proc_cpu_ns(pid: int) -> int:
    """CPU time (ns) used so far by process ``pid``, all threads (its CPUCLOCK_SCHED clock id)."""
    ts = _Timespec()
    if _libc.clock_gettime(ctypes.c_int(((~pid) << 3) | 2), ctypes.byref(ts)) != 0:
        raise OSError(ctypes.get_errno(), "clock_gettime")
    return ts.tv_sec * 1_000_000_000 + ts.tv_nsec


async def closed_loop(call, n: int, conc: int) -> list[int]:
    lat: list[int] = []
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter_ns()
            await call()
            lat.append(time.perf_counter_ns() - t0)

    await asyncio.gather(*(worker() for _ in range(conc)))
    return lat


async def measure(run, server_pid: int, n: int) -> dict:
    c0, s0, w0 = time.process_time_ns(), proc_cpu_ns(server_pid), time.perf_counter_ns()
    lat = await run(n)
    c1, s1, w1 = time.process_time_ns(), proc_cpu_ns(server_pid), time.perf_counter_ns()
    lat.sort()
    return {"requests": len(lat), "rps": round(len(lat) / ((w1 - w0) / 1e9), 1),
            "p50_us": round(lat[len(lat) // 2] / 1e3, 1),
            "client_cpu_us": round((c1 - c0) / 1e3 / len(lat), 1),
            "server_cpu_us": round((s1 - s0) / 1e3 / len(lat), 1)}


async def run_lean(client_kind: str, n: int, warmup: int, conc: int) -> dict:
    async with StdioClient(NOOP_SERVER if client_kind == "lean-noop" else SERVER, env=ENV,
                           stderr=subprocess.DEVNULL) as c:
        await c.initialize()
        if client_kind in ("lean-drive", "lean-noop"):
            specs = [CallSpec("tools/call", "echo", ARGS)]

            async def run(k: int) -> list[int]:
                result = await drive(c, specs, None, conc, max_calls=k)
                assert result.ok == k, result.errors
                return result.stats[0].latencies_ns
        else:
            async def run(k: int) -> list[int]:
                return await closed_loop(lambda: c.call_tool("echo", ARGS), k, conc)
        await run(warmup)
        row = await measure(run, c.pid, n)
        assert c.invalid_lines == 0
        return row


def _server_child_pid() -> int:
    import psutil

    for child in psutil.Process().children(recursive=True):
        if "mcpprof.examples.server" in " ".join(child.cmdline()):
            return child.pid
    raise RuntimeError("the SDK client's server process was not found")


async def run_sdk(n: int, warmup: int, conc: int) -> dict:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env={"PYTHONPATH": ENV["PYTHONPATH"]})
    with open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()

                async def run(k: int) -> list[int]:
                    return await closed_loop(lambda: s.call_tool("echo", ARGS), k, conc)
                await run(warmup)
                return await measure(run, _server_child_pid(), n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--conc", default="1,16")
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    cells = [(cl, int(c)) for cl in a.clients.split(",") for c in a.conc.split(",")]
    rng = random.Random(a.seed)
    rows: dict[tuple[str, int], list[dict]] = {}
    for rnd in range(a.runs):
        order = cells[:]
        rng.shuffle(order)
        for cl, conc in order:
            if cl == "sdk":
                row = asyncio.run(run_sdk(a.requests, a.warmup, conc))
            else:
                row = asyncio.run(run_lean(cl, a.requests, a.warmup, conc))
            row.update(client=cl, conc=conc, round=rnd, load1=round(os.getloadavg()[0], 2))
            rows.setdefault((cl, conc), []).append(row)
            print(json.dumps(row), flush=True)
    keys = ("rps", "p50_us", "client_cpu_us", "server_cpu_us")
    medians = {cell: {k: round(statistics.median(r[k] for r in rs), 1) for k in keys} for cell, rs in rows.items()}
    for (cl, conc), m in sorted(medians.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        out = {"summary": cl, "conc": conc, "runs": len(rows[(cl, conc)]), **m}
        lean = {r["round"]: r["client_cpu_us"] for r in rows.get(("lean-drive", conc), [])}
        ratios = [r["client_cpu_us"] / lean[r["round"]] for r in rows[(cl, conc)] if lean.get(r["round"])]
        if cl != "lean-drive" and ratios:  # paired within each round, then the median
            out["client_cpu_vs_lean_drive"] = round(statistics.median(ratios), 2)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
