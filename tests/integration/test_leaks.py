"""The leak detector against real servers with known memory behaviour (tests/integration/leaky_servers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcpprof.jobs.leaks import LeakJob, run_leak_job

SERVER = Path(__file__).parent / "leaky_servers" / "server.py"
SEEDED_LINE = next(i for i, line in enumerate(SERVER.read_text().splitlines(), 1) if "# SEEDED LEAK" in line)


@pytest.mark.slow
def test_seeded_leak_is_flagged_with_its_tool_and_line_and_the_cli_fails_on_it(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mcpprof", "leaks", "--json", "--fail-on-leak", "--out",
                           str(tmp_path / "out"), "--", sys.executable, str(SERVER), "leak"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    by_tool = {t["tool"]: t for t in report["tools"]}
    leaky, fine = by_tool["leaky"], by_tool["fine"]
    assert leaky["verdict"] == "leak"
    assert leaky["site"]["where"] == f"{SERVER}:{SEEDED_LINE}"
    assert leaky["site"]["function"] == "leaky"
    assert leaky["flagged_after"] <= 50
    assert 256 <= leaky["rates"][-1] <= 400  # bytes(256) plus its object header and list slot
    assert fine["verdict"] == "no leak"
    assert "leaky" in proc.stderr and "SEEDED" not in proc.stdout
    for name in ("leaks.json", "leaks.mcpprof", "leaks.speedscope.json", "leaks.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("kind, tool, verdict", [
    ("clean", "echo", "no leak"), ("clean", "work", "no leak"), ("warmup", "lookup", "no leak"),
    ("retention", "churn", "no leak"), ("cache", "cached", "filling"),
])
def test_servers_without_a_leak_are_not_flagged(kind: str, tool: str, verdict: str, tmp_path: Path,
                                                 _results: dict) -> None:
    if kind not in _results:
        job = LeakJob(command=[sys.executable, str(SERVER), kind], out_dir=str(tmp_path / kind))
        _results[kind] = {r.tool: r for r in run_leak_job(job).results}
    result = _results[kind][tool]
    assert result.verdict == verdict, result.evidence
    if verdict == "filling":
        assert result.site is not None and result.site.function == "cached"


@pytest.fixture(scope="module")
def _results() -> dict:
    return {}


LONG_NAME_SERVER = '''
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("long-name", log_level="WARNING")


async def echo_with_a_rather_long_tool_name(text: str = "hello") -> str:
    return text


server.tool(annotations=ToolAnnotations(readOnlyHint=True))(echo_with_a_rather_long_tool_name)
server.run("stdio")
'''


@pytest.mark.slow
def test_a_clean_tool_with_a_long_name_is_not_flagged(tmp_path: Path) -> None:
    """The agent keeps the last requests' spans, each holding the tool-name string the SDK's JSON
    parser allocated: with a name of 15+ characters that is >= 64 B per call, steady, at a pydantic
    site. Growth with only library frames on its traceback is never called a leak."""
    script = tmp_path / "long_name_server.py"
    script.write_text(LONG_NAME_SERVER)
    job = LeakJob(command=[sys.executable, str(script)], out_dir=str(tmp_path / "out"))
    (result,) = run_leak_job(job).results
    assert result.verdict in ("no leak", "inconclusive"), result.evidence
    if result.verdict == "inconclusive":
        assert result.site is not None and not result.site.own
        assert any("only library frames" in line for line in result.evidence), result.evidence
