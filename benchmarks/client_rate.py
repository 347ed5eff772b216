"""Client CPU per request and the rate one client process drives: mcpprof's lean clients
(:class:`mcpprof.bench.client.StdioClient`, :class:`mcpprof.bench.http_client.HttpClient`, driven by
the bench runner's closed loop) vs the official SDK client (``mcp.ClientSession`` over
``stdio_client`` / ``streamable_http_client``), in the same run, against the bundled example server.

Each cell (client x transport x concurrency) starts a fresh server (HTTP: streamable HTTP with
SSE-framed answers, the example's default; legacy handshake for both clients), does ``--warmup``
calls, then ``--requests`` measured ``tools/call echo`` calls with C in flight. Client CPU =
``time.process_time_ns()`` of this process over the measured window / calls; server CPU = the
server's process CPU clock. Cells are shuffled in every round; the summary gives medians over
rounds and the SDK/lean ratio of client CPU per request paired within each round.

    python benchmarks/client_rate.py [--rounds 3] [--requests 2000] [--warmup 200] [--conc 1,16]

One JSON object per line on stdout (rows, then summaries).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

from mcpprof.bench.client import StdioClient  # noqa: E402
from mcpprof.bench.http_client import HttpClient  # noqa: E402
from mcpprof.bench.openloop import Tally  # noqa: E402
from mcpprof.bench.runner import closed_loop, process_cpu_ns  # noqa: E402
from mcpprof.bench.workload import Step  # noqa: E402

SERVER = [sys.executable, "-m", "mcpprof.examples.server", "--max-seconds", "600"]
ENV = {**os.environ, "PYTHONPATH": ROOT}
STEP = Step("tools/call", "echo", {"text": "hello"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("HTTP server did not start")


async def measure(run, server_pid: int, n: int) -> dict:
    s0, c0, w0 = process_cpu_ns(server_pid)[0], time.process_time_ns(), time.perf_counter_ns()
    done = await run(n)
    w1, c1, s1 = time.perf_counter_ns(), time.process_time_ns(), process_cpu_ns(server_pid)[0]
    return {"calls": done, "rps": round(done / ((w1 - w0) / 1e9), 1),
            "client_cpu_us": round((c1 - c0) / 1e3 / done, 1), "server_cpu_us": round((s1 - s0) / 1e3 / done, 1)}


async def lean_run(client, pid: int, n: int, warmup: int, conc: int) -> dict:
    async def run(k: int) -> int:
        tally = Tally([STEP])
        await closed_loop(client, tally, conc, k, None, 30.0)
        assert sum(tally.errors().values()) == 0, tally.per_step[0].first_errors
        return tally.done

    await run(warmup)
    return await measure(run, pid, n)


async def sdk_run(session, pid: int, n: int, warmup: int, conc: int) -> dict:
    async def run(k: int) -> int:
        left = k

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                r = await session.call_tool("echo", {"text": "hello"})
                assert not r.is_error

        await asyncio.gather(*(worker() for _ in range(conc)))
        return k

    await run(warmup)
    return await measure(run, pid, n)


async def cell(client: str, transport: str, n: int, warmup: int, conc: int) -> dict:
    if transport == "stdio":
        if client == "lean":
            async with StdioClient(SERVER, env=ENV, stderr=subprocess.DEVNULL) as c:
                await c.initialize()
                return await lean_run(c, c.pid, n, warmup, conc)
        from mcp import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client
        import psutil

        params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env={"PYTHONPATH": ROOT})
        with open(os.devnull, "w") as devnull:
            async with stdio_client(params, errlog=devnull) as (r, w), ClientSession(r, w) as s:
                await s.initialize()
                pid = next(p.pid for p in psutil.Process().children(recursive=True)
                           if "mcpprof.examples.server" in " ".join(p.cmdline()))
                return await sdk_run(s, pid, n, warmup, conc)
    port = free_port()
    proc = subprocess.Popen(SERVER + ["--transport", "http", "--port", str(port)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_port(port)
        if client == "lean":
            async with HttpClient(url, protocol="legacy") as c:
                await c.initialize()
                return await lean_run(c, proc.pid, n, warmup, conc)
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async with streamable_http_client(url) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            return await sdk_run(s, proc.pid, n, warmup, conc)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--conc", default="1,16")
    ap.add_argument("--transports", default="stdio,http")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    cells = [(cl, tr, int(c)) for cl in ("lean", "sdk") for tr in a.transports.split(",") for c in a.conc.split(",")]
    rng = random.Random(a.seed)
    rows: dict = {}
    for rnd in range(a.rounds):
        order = cells[:]
        rng.shuffle(order)
        for cl, tr, conc in order:
            row = asyncio.run(cell(cl, tr, a.requests, a.warmup, conc))
            row.update(client=cl, transport=tr, conc=conc, round=rnd, load1=round(os.getloadavg()[0], 2))
            rows.setdefault((cl, tr, conc), []).append(row)
            print(json.dumps(row), flush=True)
    for (cl, tr, conc), rs in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        out = {"summary": f"{cl}-{tr}", "conc": conc, "rounds": len(rs),
               **{k: round(statistics.median(r[k] for r in rs), 1) for k in ("rps", "client_cpu_us", "server_cpu_us")}}
        if cl == "sdk":
            lean = {r["round"]: r["client_cpu_us"] for r in rows.get(("lean", tr, conc), [])}
            ratios = [r["client_cpu_us"] / lean[r["round"]] for r in rs if lean.get(r["round"])]
            if ratios:
                out["sdk_over_lean_client_cpu"] = round(statistics.median(ratios), 2)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
