"""Attribution accuracy: per-tool CPU shares in the profile against the truth measured in the tools."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import mcpprof
from mcpprof.analyse.summary import summarize
from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive

from .burn import AGENT_MODES

pytestmark = pytest.mark.slow

PY = sys.executable
TOOLS = {"cpu_async": 23, "cpu_sync": 22, "spawn": 24}  # different, known amounts of CPU per call


@pytest.mark.parametrize("mode", list(AGENT_MODES))
def test_per_tool_cpu_shares_within_3_points(tmp_path: Path, mode: str) -> None:
    report = tmp_path / "burn.jsonl"
    out = tmp_path / "out"
    options, source = AGENT_MODES[mode]
    command = [PY, "-m", "mcpprof", "run", "--quiet", *options, "--out", str(out), "--", PY, "-m",
               "mcpprof.examples.server", "--burn-report", str(report)]
    calls = [CallSpec("tools/call", name, {"n": n}) for name, n in TOOLS.items()]
    calls.append(CallSpec("tools/call", "echo", {"text": "x"}))

    async def go() -> None:
        async with StdioClient(command) as client:
            await client.initialize()
            result = await drive(client, calls, seconds=4.0, concurrency=16)
            assert result.errors == {} or sum(result.errors.values()) == 0
            assert await client.aclose() == 0

    asyncio.run(go())
    truth: dict = defaultdict(int)
    for line in report.read_text().splitlines():
        row = json.loads(line)
        truth[row["tool"]] += row["cpu_ns"]
    profile = mcpprof.load(next(out.glob("*.mcpprof")))
    summary = summarize(profile)
    assert summary.cpu_source == source
    measured = {name: summary.row(f"tools/call {name}").cpu_ns for name in TOOLS}
    t_total, m_total = sum(truth[n] for n in TOOLS), sum(measured.values())
    for name in TOOLS:
        t_share, m_share = truth[name] / t_total, measured[name] / m_total
        assert abs(t_share - m_share) < 0.03, (name, t_share, m_share, truth, measured)
    # and each tool's share of the whole server's CPU is close to what it burned / process CPU, plus
    # the SDK's work in its requests' context (validation, dispatch, the answer), which a request's
    # CPU holds and the tool's own measure leaves out: the example's echo burns nothing, so its CPU
    # per call stands for that work
    process_cpu = profile.metadata["process_cpu_ns"]
    echo = summary.row("tools/call echo")
    sdk_per_call = (echo.cpu_ns or 0) / max(1, echo.calls or 0)
    for name in TOOLS:
        row = summary.row(f"tools/call {name}")
        expected = (truth[name] + sdk_per_call * (row.calls or 0)) / process_cpu
        assert abs(row.cpu_share - expected) < 0.03, (name, row.cpu_share, expected, sdk_per_call)
