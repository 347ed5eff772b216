"""Instructions per MCP request spent by mcpprof's per-request hooks, counted by callgrind.

Wall-clock overhead figures on a small shared machine carry several percent of noise; instruction
counts do not (the same total twice, whatever else the machine does). Two transports:

``--transport stdio`` (default): the example server as a real process, driven over stdio by the
lean client with 16 calls in flight, only the server under ``valgrind --tool=callgrind``:

* ``plain``  - the server as it is;
* ``hooks``  - under ``mcpprof run`` with the sampler at 1 Hz (it barely ticks), no recorders, no
  services, no periodic writes: the middleware, request tags, exact CPU metering, the task factory,
  the to_thread wrappers and the agent's latency table and span ring;
* ``agent``  - the default agent (recorders, control channel, periodic writes), sampler at 1 Hz.

``--transport memory``: the server in-process (``mcp.Client`` over the in-memory transport, one
call at a time, client included in the count) as ``plain``, ``tags`` (``mcpprof.instrument``) and
``agent`` (``mcpprof.profile`` at 1 Hz).

Each configuration runs twice, with N and 2N calls; (Ir(2N) - Ir(N)) / N is the per-call count with
start-up cancelled out. Reported: instructions per call and the ratio to ``plain``. Instruction
counts leave out what costs time without instructions (syscalls' kernel time, cache misses).

    python benchmarks/request_instructions.py [--transport stdio|memory] [--calls 200] [--tool echo]

Needs valgrind (Debian's ``valgrind``). Prints one JSON object per line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

CHILD = r'''
import asyncio, sys
import mcp
from mcpprof.examples.server import build_server
mode, calls, tool = sys.argv[1], int(sys.argv[2]), sys.argv[3]
args = {"echo": {"text": "hello"}, "cpu_async": {"n": 12}}[tool]
server = build_server()

async def drive():
    async with mcp.Client(server) as client:
        for _ in range(calls):
            await client.call_tool(tool, args)

if mode == "plain":
    asyncio.run(drive())
elif mode == "tags":
    import mcpprof
    mcpprof.instrument(server)
    asyncio.run(drive())
else:
    import mcpprof
    with mcpprof.profile(rate_hz=1, server=server):
        asyncio.run(drive())
'''

MODES = {"memory": ("plain", "tags", "agent"), "stdio": ("plain", "hooks", "agent")}
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def stdio_instructions(mode: str, calls: int, tool: str) -> int:
    """Drive the example server over stdio (lean client, 16 in flight) with only the server under
    callgrind; returns its instruction count."""
    import asyncio

    sys.path.insert(0, ROOT)
    from mcpprof.bench.client import StdioClient
    from mcpprof.bench.openloop import Tally
    from mcpprof.bench.runner import closed_loop
    from mcpprof.bench.workload import Step

    args = {"echo": {"text": "hello"}, "cpu_async": {"n": 12}}[tool]
    with tempfile.TemporaryDirectory() as tmp:
        server = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", sys.executable, "-m",
                  "mcpprof.examples.server"]
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": ROOT}
        if mode == "plain":
            command = server
        else:
            command = [sys.executable, "-m", "mcpprof", "run", "--quiet", "--rate", "1", "--out", tmp, "--"] + server
            if mode == "hooks":
                env.update(MCPPROF_RECORDERS="", MCPPROF_SERVICES="", MCPPROF_FLUSH="0")

        async def drive() -> bytes:
            async with StdioClient(command, env=env, stderr=subprocess.PIPE, timeout=600) as client:
                await client.initialize(timeout=600)
                tally = Tally([Step("tools/call", tool, args)])
                await closed_loop(client, tally, 16, calls, None, 600)
                if tally.done != calls or sum(tally.errors().values()):
                    raise SystemExit(f"{mode}: {tally.done} of {calls} calls answered, errors {tally.errors()}")
                await client.aclose(grace=120)
                return client.stderr_tail

        stderr = asyncio.run(drive()).decode(errors="replace")
    found = re.search(r"Collected : (\d+)", stderr)
    if not found:
        raise SystemExit(f"valgrind run failed ({mode}, {calls}): {stderr[-800:]}")
    return int(found.group(1))


def instructions(mode: str, calls: int, tool: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "child.py")
        with open(script, "w") as fh:
            fh.write(CHILD)
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", sys.executable, script,
             mode, str(calls), tool],
            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"valgrind run failed ({mode}, {calls}): {proc.stderr[-800:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--transport", default="stdio", choices=("stdio", "memory"))
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--tool", default="echo", choices=("echo", "cpu_async"))
    a = ap.parse_args()
    count = stdio_instructions if a.transport == "stdio" else instructions
    per_call = {}
    for mode in MODES[a.transport]:
        small, large = count(mode, a.calls, a.tool), count(mode, 2 * a.calls, a.tool)
        per_call[mode] = (large - small) / a.calls
        print(json.dumps({"transport": a.transport, "mode": mode, "tool": a.tool, "calls": a.calls,
                          "ir_per_call": round(per_call[mode]),
                          "ratio_to_plain": round(per_call[mode] / per_call["plain"], 4)}), flush=True)


if __name__ == "__main__":
    main()
