"""Instructions per MCP request spent by mcpprof's per-request hooks, counted by callgrind.

Wall-clock overhead figures on a small shared machine carry several percent of noise; instruction
counts do not (the same total twice, whatever else the machine does). This drives the bundled
example server in-process (``mcp.Client`` over the in-memory transport, one call at a time, no
sampler thread) under ``valgrind --tool=callgrind`` in three configurations:

* ``plain``      - the server as it is;
* ``tags``       - ``mcpprof.instrument(server)``: the middleware, request tags, exact CPU metering;
* ``agent``      - the above plus the agent's request sinks (latency table, span ring, slowest
  requests), as ``mcpprof run`` installs them, with the sampler at 1 Hz (so it barely ticks).

Each configuration runs twice, with N and 2N calls; (Ir(2N) - Ir(N)) / N is the per-call count with
start-up cancelled out. Reported: instructions per call and the ratio to ``plain``.

    python benchmarks/request_instructions.py [--calls 300] [--tool echo]

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

MODES = ("plain", "tags", "agent")


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
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--tool", default="echo", choices=("echo", "cpu_async"))
    a = ap.parse_args()
    per_call = {}
    for mode in MODES:
        small, large = instructions(mode, a.calls, a.tool), instructions(mode, 2 * a.calls, a.tool)
        per_call[mode] = (large - small) / a.calls
        print(json.dumps({"mode": mode, "tool": a.tool, "calls": a.calls, "ir_per_call": round(per_call[mode]),
                          "ratio_to_plain": round(per_call[mode] / per_call["plain"], 4)}), flush=True)


if __name__ == "__main__":
    main()
