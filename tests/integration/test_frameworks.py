"""Every supported framework version, end to end: real servers on mcp 1.x (FastMCP and the low-level
``Server``), fastmcp 2.x and fastmcp 4.x, each in its own venv (built once, see framework_venvs.py),
launched by ``mcpprof run`` or instrumented in code, driven by the lean client with many calls in
flight. Checked: every request tagged, per-tool exact CPU within 3 points of the CPU measured inside
the tools, no failed request, clean stdout, the frameworks recorded with versions, and sync tools
run on the event loop reported with the time they blocked it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, NamedTuple

import pytest

import mcpprof
from mcpprof.analyse.summary import format_text, summarize
from mcpprof.bench.client import CallError, StdioClient
from mcpprof.bench.drive import CallSpec, drive

from . import framework_venvs
from .burn import AGENT_MODES, assert_exact_shares, burn_truth

pytestmark = pytest.mark.slow

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]
SERVERS = Path(__file__).resolve().parent / "framework_servers"
# different, known amounts of CPU per call (fib(25) is ~12 ms here), large enough that the
# framework's own per-request cost (~1.5 ms on mcp 1.x FastMCP) stays well under the 3-point bound
TOOLS = {"cpu_async": 26, "cpu_sync": 25, "spawn": 27}


class Case(NamedTuple):
    venv: str
    script: str
    kinds: tuple  # metadata["frameworks"] kinds, in the order they are noted
    inline: bool  # sync tools run on the event loop

    @property
    def id(self) -> str:
        return f"{self.venv}-{self.script[:-3]}"


CASES = [
    Case("mcp1", "mcp1_fastmcp.py", ("mcp1", "mcp1-fastmcp"), True),
    Case("mcp1", "mcp1_lowlevel.py", ("mcp1",), False),
    Case("fastmcp2", "fastmcp_server.py", ("mcp1", "fastmcp2"), True),
    Case("fastmcp4", "fastmcp_server.py", ("fastmcp4", "mcp2"), False),
]


@pytest.fixture(scope="session")
def framework_pythons() -> Dict[str, object]:
    return framework_venvs.build_all()


def _python(framework_pythons: Dict[str, object], case: Case) -> Path:
    return framework_venvs.python_or_skip(framework_pythons, case.venv)


async def _warm_up(client: StdioClient) -> str:
    """Each non-measured request once (fastmcp 4 spends ~0.5 s CPU on its first tool call); returns
    the name of the thread sync tools run on."""
    await client.initialize()
    await client.call_tool("echo", {"text": "warm"})
    await client.read_resource("test://config")
    await client.get_prompt("greet", {"name": "x"})
    return (await client.call_tool("where", {}))["content"][0]["text"]


def _check_frameworks(profile: mcpprof.Profile, case: Case, python: Path) -> None:
    entries = profile.metadata["frameworks"]
    assert sorted(e["kind"] for e in entries) == sorted(case.kinds), entries
    installed = framework_venvs.versions(python)
    for e in entries:
        assert e["version"] == installed[e["package"]], (e, installed)
    assert any(e["sync_tools"] == "event loop" for e in entries) is case.inline


@pytest.mark.parametrize("mode", list(AGENT_MODES))
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_launched_server_tags_cpu_and_loop_blocking(case: Case, framework_pythons: Dict[str, object],
                                                     tmp_path: Path, mode: str) -> None:
    python = _python(framework_pythons, case)
    report, out = tmp_path / "burn.jsonl", tmp_path / "out"
    options, source = AGENT_MODES[mode]
    command = [PY, "-m", "mcpprof", "run", "--quiet", *options, "--out", str(out), "--",
               str(python), str(SERVERS / case.script), "--burn-report", str(report)]
    calls = [CallSpec("tools/call", name, {"n": n}) for name, n in TOOLS.items()]
    calls.append(CallSpec("tools/call", "echo", {"text": "x"}))

    async def go() -> tuple:
        async with StdioClient(command, stderr=subprocess.DEVNULL, timeout=60) as client:
            thread = await _warm_up(client)
            result = await drive(client, calls, seconds=3.0, concurrency=8)
            assert sum(result.errors.values()) == 0, {s.spec.label: s.first_errors for s in result.stats}
            assert client.invalid_lines == 0, client.invalid_samples
            assert await client.aclose() == 0
            return thread, {s.spec.name_or_uri: s.calls for s in result.stats}

    thread, sent = asyncio.run(go())
    assert (thread == "MainThread") is case.inline, thread
    profile = mcpprof.load(next(out.glob("*.mcpprof")))
    _check_frameworks(profile, case, python)

    # every request tagged, under its own name, none failed
    stats = profile.requests.stats
    for name, n in sent.items():
        extra = 1 if name == "echo" else 0  # the warm-up call
        assert stats[("tools/call", name)].count == n + extra, (name, stats[("tools/call", name)].count, n)
    for key in (("resources/read", "test://config"), ("prompts/get", "greet"), ("tools/call", "where")):
        assert stats[key].count == 1, key
    assert all(st.errors == 0 for st in stats.values())
    mcp1 = "mcp1" in case.kinds
    assert (("initialize", "") in stats) is not mcp1  # mcp 1.x answers initialize inside its session

    # per-tool CPU within 3 points of the truth measured in the tools
    truth = burn_truth(report)
    summary = summarize(profile)
    assert_exact_shares(summary, truth, TOOLS, source=source)
    process_cpu = profile.metadata["process_cpu_ns"]
    for name in TOOLS:
        share = summary.row(f"tools/call {name}").cpu_share
        assert abs(share - truth[name] / process_cpu) < 0.03, (name, share, truth[name] / process_cpu)

    # sync tools on the event loop: how long they blocked it, in the profile and the summary
    blocked = profile.metadata["loop_blocked"]
    row = summary.row("tools/call cpu_sync")
    if case.inline:
        b = blocked["tools/call cpu_sync"]
        assert b["count"] == sent["cpu_sync"]
        assert b["total_ns"] >= truth["cpu_sync"]  # wall time around the tool >= its CPU inside
        assert b["total_ns"] <= stats[("tools/call", "cpu_sync")].total_ns
        assert row.loop_blocked_ns == b["total_ns"] and row.loop_blocked_max_ns == b["max_ns"]
        assert "tools/call cpu_sync blocked the event loop" in format_text(summary)
    else:
        assert blocked == {} and row.loop_blocked_ns is None
        assert "blocked the event loop" not in format_text(summary)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_instrument_in_code(case: Case, framework_pythons: Dict[str, object], tmp_path: Path) -> None:
    """``mcpprof.instrument(server)`` without the launcher: the same tags and framework record."""
    python = _python(framework_pythons, case)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [str(python), str(SERVERS / case.script), "--instrument", str(out)]

    async def go() -> None:
        async with StdioClient(command, env=env, stderr=subprocess.DEVNULL, timeout=60) as client:
            await _warm_up(client)
            await asyncio.gather(*(client.call_tool(name, {"n": 12}) for name in TOOLS for _ in range(3)))
            with pytest.raises(CallError) as failed:
                await client.call_tool("boom", {})
            assert failed.value.kind == "tool"
            assert client.invalid_lines == 0, client.invalid_samples
            assert await client.aclose() == 0

    asyncio.run(go())
    profile = mcpprof.load(next(out.glob("*.mcpprof")))
    _check_frameworks(profile, case, python)
    stats = profile.requests.stats
    for name in TOOLS:
        assert stats[("tools/call", name)].count == 3 and stats[("tools/call", name)].cpu_ns > 0
    assert stats[("resources/read", "test://config")].count == 1
    assert stats[("tools/call", "boom")].error_kinds == {"tool_error": 1}
    assert ("tools/call cpu_sync" in profile.metadata["loop_blocked"]) is case.inline
