"""Attaching to real running servers of every framework besides mcp 2.x (test_attach.py covers the
bundled mcp 2.x server): mcp 1.x (FastMCP and the low-level ``Server``), fastmcp 2.x (on mcp 1.x)
and fastmcp 4.x (on mcp 2.x), each in its own venv (framework_venvs.py), under load.

* agent mode (the server launched by ``mcpprof run``, then ``mcpprof.profile_pid``): the window's
  per-tool exact CPU shares are within 3 points of the CPU measured inside the tools during the
  window (the burn report), every sample of a tool carries its tag;
* py-spy mode (the server launched plainly): a valid profile, the tool functions visible, and
  where a framework dispatches tools through a known frame, samples attributed to those tools;
* no request fails while attached, stdout stays clean JSON-RPC.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple

import pytest

import mcpprof
from mcpprof.analyse.summary import summarize
from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive
from mcpprof.export.registry import get_exporter
from mcpprof.launch.attach import socket_for
from mcpprof.model import labels as L

from . import framework_venvs
from .burn import assert_exact_shares, burn_truth

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

PY = sys.executable
SERVERS = Path(__file__).resolve().parent / "framework_servers"
# fib(n): 10-30 ms each, different amounts. A request's exact CPU also holds the framework's own
# work for it (about 2 ms a call here) that the truth, measured around fib, does not: the burns are
# kept large beside it so that it moves no tool's share by more than about a point.
TOOLS = {"cpu_async": 26, "cpu_sync": 25, "spawn": 27}


class Case(NamedTuple):
    venv: str
    script: str
    by_frames: bool  # py-spy can name the tool from the framework's dispatch frame

    @property
    def id(self) -> str:
        return f"{self.venv}-{self.script[:-3]}"


CASES = [
    Case("mcp1", "mcp1_fastmcp.py", True),
    Case("mcp1", "mcp1_lowlevel.py", False),  # the handler calls tools itself: no dispatch frame
    Case("fastmcp2", "fastmcp_server.py", True),
    Case("fastmcp4", "fastmcp_server.py", True),
]


@pytest.fixture(scope="module")
def framework_pythons() -> Dict[str, object]:
    return framework_venvs.build_all()


def _python(framework_pythons: Dict[str, object], case: Case) -> Path:
    return framework_venvs.python_or_skip(framework_pythons, case.venv)


def _calls() -> List[CallSpec]:
    return [CallSpec("tools/call", name, {"n": n}) for name, n in TOOLS.items()] + \
        [CallSpec("tools/call", "echo", {"text": "x"})]


async def _attached(command: List[str], seconds: float, attach: Callable[[int], Any], agent: bool) -> Any:
    """Run ``command`` under load (8 calls in flight) and call ``attach(pid)`` in a thread meanwhile."""
    async with StdioClient(command, stderr=subprocess.DEVNULL, timeout=60) as client:
        await client.initialize()
        await client.call_tool("echo", {"text": "warm"})  # fastmcp 4 spends ~0.5 s on its first call
        for _ in range(200):
            if not agent or socket_for(client.pid):
                break
            await asyncio.sleep(0.05)
        assert not agent or socket_for(client.pid), "the agent opened no control socket"
        load = asyncio.create_task(drive(client, _calls(), seconds=seconds, concurrency=8))
        await asyncio.sleep(0.3)
        result = await asyncio.get_running_loop().run_in_executor(None, attach, client.pid)
        driven = await load
        assert sum(driven.errors.values()) == 0, {s.spec.label: s.first_errors for s in driven.stats}
        assert all(s.calls > 0 for s in driven.stats), [(s.spec.label, s.calls) for s in driven.stats]
        assert client.invalid_lines == 0, client.invalid_samples
        assert await client.aclose() == 0
    return result


# The window's exact CPU counts the requests that ended inside it, the truth every burn between the
# marks: the end mark is taken when the window is asked to stop (taken after the profile came back,
# the truth also held what the tools burnt while the server built and sent it, up to a fifth more).
WINDOW_S = 4.0


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_agent_mode_shares_within_3_points(case: Case, framework_pythons: Dict[str, object],
                                           tmp_path: Path) -> None:
    python = _python(framework_pythons, case)
    report = tmp_path / "burn.jsonl"
    command = [PY, "-m", "mcpprof", "run", "--quiet", "--exact-cpu", "--out", str(tmp_path / "out"), "--",
               str(python), str(SERVERS / case.script), "--burn-report", str(report)]
    marks: Dict[str, int] = {}

    def attach(pid: int) -> Any:
        def started(info: Dict[str, Any]) -> None:
            marks["start"] = report.stat().st_size if report.exists() else 0
            assert info["via"] == "agent", info

        def stopping() -> None:
            marks["end"] = report.stat().st_size

        return mcpprof.profile_pid(pid, WINDOW_S, on_start=started, on_stop=stopping)

    profile = asyncio.run(_attached(command, WINDOW_S + 1.5, attach, agent=True))
    truth = burn_truth(report, marks["start"], marks["end"])
    assert all(truth[name] > 0 for name in TOOLS), truth

    assert profile.metadata["window"]["delta"] is True
    assert profile.metadata["frameworks"], profile.metadata
    summary = summarize(profile)
    assert_exact_shares(summary, truth, TOOLS)
    assert all(st.errors == 0 for st in profile.requests.stats.values())
    tools = {s.label(L.TOOL) for s in profile.samples}
    assert {"cpu_async", "cpu_sync", "spawn"} <= tools, tools
    for s, frames in profile.iter_stacks():  # a fib sample is charged to the tool that ran it
        if any(f.function == "fib" for f in frames):
            assert s.label(L.TOOL) in TOOLS, (s.labels, [f.function for f in frames][-6:])
    for fmt in ("folded", "speedscope", "html"):
        assert get_exporter(fmt).render(profile)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pyspy_mode_tool_functions_visible(case: Case, framework_pythons: Dict[str, object]) -> None:
    python = _python(framework_pythons, case)
    command = [str(python), str(SERVERS / case.script)]
    profile = asyncio.run(_attached(command, 3.0, lambda pid: mcpprof.profile_pid(pid, 1.5), agent=False))
    assert profile.metadata["collector"] == "pyspy"
    assert profile.samples and all(s.label(L.THREAD_NAME) for s in profile.samples)
    functions = {f.function.rsplit(".", 1)[-1] for f in profile.frames}
    assert {"cpu_async", "cpu_sync", "fib"} <= functions, sorted(functions)
    for fmt in ("folded", "speedscope", "html"):
        assert get_exporter(fmt).render(profile)
    if case.by_frames:
        tools = {s.label(L.TOOL) for s in profile.samples} - {None}
        assert {"cpu_async", "cpu_sync"} <= tools, tools
        for s, frames in profile.iter_stacks():  # a tool's label names a function on its own stack
            tool = s.label(L.TOOL)
            if tool is not None:
                assert tool in {f.function.rsplit(".", 1)[-1] for f in frames}, (tool, frames)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_ls_attach_dump(case: Case, framework_pythons: Dict[str, object], tmp_path: Path) -> None:
    """``mcpprof ls`` names the framework, ``mcpprof attach`` records through the agent and
    ``mcpprof dump`` answers, while the server serves."""
    python = _python(framework_pythons, case)
    command = [PY, "-m", "mcpprof", "run", "--quiet", "--out", str(tmp_path / "out"), "--",
               str(python), str(SERVERS / case.script)]
    output = tmp_path / "attached.mcpprof"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-m", "mcpprof", *args], capture_output=True, text=True, timeout=120)

    def use_cli(pid: int) -> Dict[str, Any]:
        return {"pid": pid, "ls": cli("ls", "--json"), "dump": cli("dump", str(pid), "--json"),
                "attach": cli("attach", str(pid), "--seconds", "1", "-o", str(output))}

    out = asyncio.run(_attached(command, 4.0, use_cli, agent=True))
    listed = {s["pid"]: s for s in json.loads(out["ls"].stdout)}
    assert out["pid"] in listed, out["ls"].stderr
    kinds = {f["kind"] for f in listed[out["pid"]]["frameworks"]}
    assert kinds & {"mcp1", "mcp2", "fastmcp2", "fastmcp4"}, listed[out["pid"]]
    assert listed[out["pid"]]["requests"] > 0
    assert out["dump"].returncode == 0 and json.loads(out["dump"].stdout)["via"] == "agent", out["dump"].stderr
    assert out["attach"].returncode == 0 and out["attach"].stdout == "", out["attach"].stderr
    assert "through its mcpprof agent" in out["attach"].stderr
    profile = mcpprof.load(output)
    assert {"cpu_async", "cpu_sync", "spawn"} <= {s.label(L.TOOL) for s in profile.samples}
