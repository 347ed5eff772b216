"""Several server processes (one stdio server per client) merge into one profile with pid labels."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

import mcpprof
from mcpprof.bench.client import StdioClient
from mcpprof.model import labels as L

pytestmark = pytest.mark.slow

PY = sys.executable


def test_two_servers_merge_with_pid_labels(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    command = [PY, "-m", "mcpprof", "run", "--quiet", "--rate", "500", "--out", str(out), "--",
               PY, "-m", "mcpprof.examples.server"]

    async def one(n: int) -> int:
        async with StdioClient(command) as client:
            await client.initialize()
            for _ in range(n):
                await client.call_tool("cpu_async", {"n": 20})
            pid = client.pid or 0
            assert await client.aclose() == 0
            return pid

    async def both() -> list:
        return list(await asyncio.gather(one(10), one(15)))

    pids = asyncio.run(both())
    merged_path = tmp_path / "merged.mcpprof"
    r = subprocess.run([PY, "-m", "mcpprof", "merge", str(out), "-o", str(merged_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    merged = mcpprof.load(merged_path)
    assert {int(v) for v in merged.label_values(L.PROCESS_PID)} == set(pids)
    assert merged.requests.stats[("tools/call", "cpu_async")].count == 25
    again = subprocess.run([PY, "-m", "mcpprof", "merge", str(out), "-o", str(merged_path)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr
