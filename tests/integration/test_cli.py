"""The CLI as a user runs it: the main job end to end, and one-line errors with exit code 2."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mcpprof
from mcpprof.model.folded import profile_from_folded

MCPPROF = [sys.executable, "-m", "mcpprof"]


def mcpprof_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(MCPPROF + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert proc.stdout == ""


@pytest.mark.slow
def test_profile_bundled_example_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = mcpprof_cli("profile", "--seconds", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # the table and messages go to stderr
    for name in ("profile.mcpprof", "cpu.folded", "cpu.speedscope.json", "flamegraph.html", "bench.json"):
        assert (out / name).stat().st_size > 0, name
    for tool in ("tools/call cpu_sync", "tools/call echo", "resources/read example://config", "prompts/get greet",
                 "(transport & dispatch)"):
        assert tool in proc.stderr
    p = mcpprof.load(out / "profile.mcpprof")
    assert p.metadata["complete"] is True
    assert p.requests.stats[("tools/call", "cpu_sync")].count > 0

    summary = mcpprof_cli("summary", "--json", str(out / "profile.mcpprof"))
    assert summary.returncode == 0, summary.stderr
    doc = json.loads(summary.stdout)
    names = {row["name"] for row in doc["rows"]}
    assert {"tools/call cpu_async", "tools/call spawn", "tools/call sleep_io"} <= names

    again = mcpprof_cli("profile", "--seconds", "1", "--out", str(out))
    assert_user_error(again, "--force")


@pytest.mark.slow
def test_profile_json_and_named_tools(tmp_path: Path) -> None:
    proc = mcpprof_cli("profile", "--seconds", "1", "--tool", "echo", "--json", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)["rows"]}
    assert rows["tools/call echo"]["calls"] > 0
    assert "tools/call cpu_sync" not in rows


@pytest.mark.slow
def test_profile_unknown_tool(tmp_path: Path) -> None:
    assert_user_error(mcpprof_cli("profile", "--seconds", "1", "--tool", "nope", "--out", str(tmp_path / "o")),
                      "nope")


def test_run_missing_command(tmp_path: Path) -> None:
    assert_user_error(mcpprof_cli("run", "--out", str(tmp_path), "--", "no-such-server-xyz"), "no-such-server-xyz")


def test_profile_missing_command(tmp_path: Path) -> None:
    assert_user_error(mcpprof_cli("profile", "--out", str(tmp_path / "o"), "--", "/no/such/server"), "not found")


@pytest.mark.slow
def test_profile_server_that_exits_at_once(tmp_path: Path) -> None:
    proc = mcpprof_cli("profile", "--out", str(tmp_path / "o"), "--", sys.executable, "-c",
                       "import sys; sys.stderr.write('cannot start: no config\\n'); sys.exit(3)")
    assert_user_error(proc, "exited", "code 3", "no config")


def _write_profile(path: Path) -> None:
    mcpprof.save(profile_from_folded("main;handle;tool_a 3\nmain;handle;tool_b 1\n"), path)


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "corrupt", "future", "folder"])
def test_summary_bad_files(tmp_path: Path, case: str) -> None:
    path = tmp_path / "p.mcpprof"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        _write_profile(path)
        path.write_bytes(path.read_bytes()[:40])
    elif case == "corrupt":
        path.write_bytes(b"this is not a profile at all")
    elif case == "future":
        path.write_bytes(gzip.compress(json.dumps({"format": "mcpprof", "version": 99}).encode()))
    elif case == "folder":
        path.mkdir()
    proc = mcpprof_cli("summary", str(path))
    assert_user_error(proc, str(path))
    if case == "future":
        assert "upgrade mcpprof" in proc.stderr


def test_export_each_format_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "p.mcpprof"
    _write_profile(path)
    for fmt, ext in (("folded", ".folded"), ("speedscope", ".speedscope.json"), ("html", ".html")):
        proc = mcpprof_cli("export", str(path), "--to", fmt)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / f"p{ext}").stat().st_size > 0
        assert_user_error(mcpprof_cli("export", str(path), "--to", fmt), "--force")
        assert mcpprof_cli("export", str(path), "--to", fmt, "--force").returncode == 0
    proc = mcpprof_cli("export", str(path), "--to", "folded", "-o", "-")
    assert proc.stdout.splitlines() == ["main;handle;tool_a 3", "main;handle;tool_b 1"]


def test_export_pprof_for_pyroscope(tmp_path: Path) -> None:
    path = tmp_path / "p.mcpprof"
    _write_profile(path)
    proc = mcpprof_cli("export", str(path), "--to", "pprof", "--pyroscope")
    assert proc.returncode == 0, proc.stderr
    assert gzip.decompress((tmp_path / "p.pb.gz").read_bytes())
    assert_user_error(mcpprof_cli("export", str(path), "--to", "folded", "--pyroscope", "-o", "-"), "--pyroscope")


def test_diff_json_gives_the_changes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mcpprof", tmp_path / "b.mcpprof"
    mcpprof.save(profile_from_folded("main;handle;tool_a 3\nmain;handle;tool_b 1\n"), a)
    mcpprof.save(profile_from_folded("main;handle;tool_a 1\nmain;handle;tool_b 3\n"), b)
    proc = mcpprof_cli("diff", str(a), str(b), "-o", str(tmp_path / "d.folded"), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["total_a"], doc["total_b"]) == (4, 4)
    top = {(c["function"].split(" ")[0], c["a"], c["b"], c["share_b"]) for c in doc["changes"][:2]}
    assert top == {("tool_a", 3, 1, 0.25), ("tool_b", 1, 3, 0.75)}
    assert [ln.split(";", 1)[1] for ln in (tmp_path / "d.folded").read_text().splitlines()] == [
        "main;handle;tool_a 3 1", "main;handle;tool_b 1 3"]  # two counts per stack


def test_export_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "p.mcpprof"
    _write_profile(path)
    proc = mcpprof_cli("export", str(path), "--to", "svg")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_version_and_help() -> None:
    assert mcpprof_cli("--version").returncode == 0
    helptext = mcpprof_cli("--help").stdout
    for verb in ("profile", "run", "summary", "export"):
        assert verb in helptext
