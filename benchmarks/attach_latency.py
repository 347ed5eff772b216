"""Agent-mode attach latency: from the attach command to the first sample of its window.

A server runs under `mcpprof run` with a steady load. Each round measures
* api: connect to its control socket, ``start`` a window, then ``snapshot`` until the window holds
  a sample (the time a script using ``mcpprof.profile_pid`` waits);
* cli: ``mcpprof attach PID --seconds 0.1`` from process start until it prints that recording began
  (includes the Python start-up of the CLI), and its first sample (api figure added).
Goal: under 1 s. Prints one JSON line per round and medians (a script, not library code).

    python benchmarks/attach_latency.py --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time

from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive
from mcpprof.launch.attach import ControlClient, socket_for

MIX = [CallSpec("tools/call", "cpu_async", {"n": 18}), CallSpec("tools/call", "echo", {"text": "x"})]


def api_round(pid: int) -> float:
    t0 = time.perf_counter()
    path = socket_for(pid)
    assert path, "no control socket"
    with ControlClient(path, pid) as client:
        client.call("start")
        while True:
            profile = client.call("snapshot")["profile"]
            if profile["samples"]:
                break
            time.sleep(0.002)
        elapsed = time.perf_counter() - t0
        client.call("stop")
    return elapsed


def cli_round(pid: int) -> float:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-m", "mcpprof", "attach", str(pid), "--seconds", "0.1",
                                 "-o", f"{tmp}/a.mcpprof"], stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        started = None
        for line in proc.stderr:
            if "recording pid" in line and started is None:
                started = time.perf_counter() - t0
        proc.wait()
    assert started is not None, "attach did not report its start"
    return started


async def main_async(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "mcpprof", "run", "--quiet", "--out", out, "--",
               sys.executable, "-m", "mcpprof.examples.server"]
        async with StdioClient(cmd) as client:
            await client.initialize()
            load = asyncio.create_task(drive(client, MIX, seconds=3600, concurrency=8))
            await asyncio.sleep(1.0)
            loop = asyncio.get_running_loop()
            api, cli = [], []
            for rnd in range(rounds):
                a = await loop.run_in_executor(None, api_round, client.pid)
                c = await loop.run_in_executor(None, cli_round, client.pid)
                api.append(a)
                cli.append(c + a)
                print(json.dumps({"round": rnd, "api_first_sample_s": round(a, 4),
                                  "cli_started_s": round(c, 4), "cli_first_sample_s": round(c + a, 4)}), flush=True)
            load.cancel()
            await client.aclose()
    print(f"\nmedian api: {statistics.median(api) * 1e3:.1f} ms to the first sample (max {max(api) * 1e3:.1f} ms)")
    print(f"median cli: {statistics.median(cli) * 1e3:.0f} ms from the command to the first sample "
          f"(max {max(cli) * 1e3:.0f} ms); goal < 1000 ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    asyncio.run(main_async(args.rounds))


if __name__ == "__main__":
    main()
