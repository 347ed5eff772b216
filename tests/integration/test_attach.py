"""Attaching to real running servers: through the agent (tags, exact CPU), and with py-spy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

import pytest

import mcpprof
from mcpprof.analyse.summary import summarize
from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive
from mcpprof.launch.attach import socket_for
from mcpprof.model import labels as L

from .burn import AGENT_MODES, assert_exact_shares, burn_truth

pytestmark = pytest.mark.slow

PY = sys.executable
SERVER = [PY, "-m", "mcpprof.examples.server"]
TOOLS = {"cpu_async": 23, "cpu_sync": 22, "spawn": 24}  # as in test_attribution.py


def _calls() -> List[CallSpec]:
    return [CallSpec("tools/call", name, {"n": n}) for name, n in TOOLS.items()] + \
        [CallSpec("tools/call", "sleep_io", {"ms": 30})]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "mcpprof", *args], capture_output=True, text=True, timeout=120)


async def _attached(command: List[str], seconds: float, attach: Any, long_wait_ms: int = 0) -> Any:
    """Run ``command`` under load and call ``attach(pid)`` in a thread meanwhile (with
    ``long_wait_ms``, one ``sleep_io`` call of that length is in flight too)."""
    async with StdioClient(command) as client:
        await client.initialize()
        for _ in range(100):
            if "run" not in command or socket_for(client.pid):
                break
            await asyncio.sleep(0.05)
        load = asyncio.create_task(drive(client, _calls(), seconds=seconds, concurrency=8))
        waiting = asyncio.create_task(client.call_tool("sleep_io", {"ms": long_wait_ms})) if long_wait_ms else None
        await asyncio.sleep(0.3)
        result = await asyncio.get_running_loop().run_in_executor(None, attach, client.pid)
        driven = await load
        if waiting is not None:  # still in flight (it outlasts the attaches): abandon it
            waiting.cancel()
        assert sum(driven.errors.values()) == 0, driven.errors  # no request failed while attached
        assert client.invalid_lines == 0
        await client.aclose()
    return result


@pytest.mark.parametrize("mode", list(AGENT_MODES))
def test_agent_mode_per_tool_shares_within_3_points(tmp_path: Path, mode: str) -> None:
    report = tmp_path / "burn.jsonl"
    options, source = AGENT_MODES[mode]
    command = [PY, "-m", "mcpprof", "run", "--quiet", *options, "--out", str(tmp_path / "out"), "--", *SERVER,
               "--burn-report", str(report)]
    marks: Dict[str, int] = {}

    def attach(pid: int) -> Any:
        def started(info: Dict[str, Any]) -> None:
            marks["start"] = report.stat().st_size if report.exists() else 0
            assert info["via"] == "agent"

        profile = mcpprof.profile_pid(pid, 3.0, on_start=started)
        marks["end"] = report.stat().st_size
        return profile

    profile = asyncio.run(_attached(command, 4.5, attach))
    truth = burn_truth(report, marks["start"], marks["end"])
    assert profile.metadata["window"]["delta"] is True
    assert_exact_shares(summarize(profile), truth, TOOLS, source=source)
    # samples carry the tool labels, the slowest requests and the async wait view are there
    tools = {dict(s.labels).get(L.TOOL) for s in profile.samples}
    assert {"cpu_async", "cpu_sync", "spawn"} <= tools
    assert profile.extras.get("slowest", {}).get("requests")


def test_pyspy_mode_on_a_server_without_agent(tmp_path: Path) -> None:
    profile = asyncio.run(_attached(SERVER, 3.0, lambda pid: mcpprof.profile_pid(pid, 1.5)))
    assert profile.metadata["collector"] == "pyspy"
    functions = {f.function for f in profile.frames}
    assert {"cpu_async", "cpu_sync", "fib"} <= functions
    by_tool: Dict[str, set] = defaultdict(set)
    for s in profile.samples:
        d = dict(s.labels)
        if d.get(L.TOOL):
            by_tool[d[L.TOOL]].add(d[L.THREAD_NAME])
    assert "MainThread" in by_tool["cpu_async"]
    assert any(t != "MainThread" for t in by_tool["cpu_sync"])
    for s, frames in profile.iter_stacks():  # a spawned task has no dispatch frame: not guessed
        if any(f.function == "fib_task" for f in frames):
            assert s.label(L.TOOL) is None


def test_cli_attach_ls_dump(tmp_path: Path) -> None:
    command = [PY, "-m", "mcpprof", "run", "--quiet", "--out", str(tmp_path / "out"), "--", *SERVER]
    html = tmp_path / "attached.html"

    def use_cli(pid: int) -> Dict[str, Any]:
        out: Dict[str, Any] = {"pid": pid}
        out["dump"] = _cli("dump", str(pid), "--json")
        out["exact"] = _cli("attach", str(pid), "--seconds", "1", "--mode", "exact", "-o",
                            str(tmp_path / "exact.mcpprof"))
        out["attach"] = _cli("attach", str(pid), "--seconds", "1", "--wait", "-o", str(html))
        out["ls"] = _cli("ls", "--json")
        out["dump_text"] = _cli("dump", str(pid))
        return out

    out = asyncio.run(_attached(command, 7.0, use_cli, long_wait_ms=60000))
    ls = {s["pid"]: s for s in json.loads(out["ls"].stdout)}
    assert out["pid"] in ls, (out["ls"].stdout, out["ls"].stderr)
    mine = ls[out["pid"]]
    assert mine.get("mode") == "sample" and mine.get("requests", 0) > 0, mine
    dump = json.loads(out["dump"].stdout)
    assert dump["via"] == "agent" and any(t["thread"] == "MainThread" for t in dump["threads"])
    waiting = [r for r in dump["requests"] if r["target"] == "sleep_io"]
    assert waiting, dump["requests"]
    frames = [f[0] for t in waiting[0]["tasks"] for f in t["frames"]]
    assert "sleep_io" in frames and "sleep" in frames and "[await Future]" in frames
    assert "in flight" in out["dump_text"].stderr
    assert out["attach"].returncode == 0, out["attach"].stderr
    assert out["attach"].stdout == ""
    assert html.read_bytes().startswith(b"<!DOCTYPE html") or b"<html" in html.read_bytes()[:500]
    wait = mcpprof.load(tmp_path / "attached.wait.mcpprof")
    assert any(f.function == "[await Future]" for f in wait.frames), [(s.labels, [f.function for f in fr][-3:]) for s, fr in wait.iter_stacks()]
    assert out["exact"].returncode == 0, out["exact"].stderr
    exact = mcpprof.load(tmp_path / "exact.mcpprof")
    assert exact.metadata["collector"] == "exact"
    assert {dict(s.labels).get(L.TOOL) for s in exact.samples} - {None}  # calls carry their request's tool


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    r = _cli("attach", str(2 ** 22 + 4321), "--seconds", "1")
    assert r.returncode == 2 and "no process" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(30)"])
    try:
        r = _cli("attach", str(proc.pid), "--mode", "exact", "--seconds", "1")
        assert r.returncode == 2 and "runs no mcpprof agent" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    finally:
        proc.kill()
        proc.wait()
