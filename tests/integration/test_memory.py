"""``mcpprof memory`` end to end with tracemalloc, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mcpprof
from mcpprof.collect.memray_collector import preflight, read_capture
from mcpprof.errors import UsageError

MCPPROF = [sys.executable, "-m", "mcpprof"]
SERVER = Path(__file__).parent / "leaky_servers" / "server.py"


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(MCPPROF + list(args), capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.slow
def test_memory_of_a_launched_server_per_tool_with_process_figures(tmp_path: Path) -> None:
    out = tmp_path / "m"
    proc = cli("memory", "--seconds", "2", "--warmup", "40", "--frames", "3", "--json", "--out", str(out), "--",
               sys.executable, str(SERVER), "leak")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    top = data["top_by_bytes"][0]
    assert top["tool"] == "leaky" and "leaky" in top["site"]  # the seeded leak holds the most live bytes
    figures = data["process_memory"]["figures"]
    assert figures["rss"] > 0 and "fragmentation" in figures and "pymalloc_arenas" in figures
    profile = mcpprof.load(out / "memory.mcpprof")
    assert "gen_ai.tool.name" in {k for s in profile.samples for k, _ in s.labels}
    assert profile.extras["gc_pauses"]["totals"] and profile.extras["memory_timeline"]["points"]
    assert profile.requests is not None and profile.requests.total_count > 0
    speedscope = json.loads((out / "memory.speedscope.json").read_text())
    assert speedscope["profiles"][0]["unit"] == "bytes"
    assert (out / "memory.html").stat().st_size > 0


def test_dead_pid_is_a_one_line_error() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert_one_line_error(cli("memory", str(dead.pid)), str(dead.pid), "no process")


def test_corrupt_capture_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "capture.bin"
    bad.write_bytes(b"not a memray capture" * 100)
    with pytest.raises(UsageError, match="not a readable memray capture") as info:
        read_capture(str(bad))
    assert "\n" not in str(info.value)


def test_memray_missing_in_the_target_is_named(tmp_path: Path) -> None:
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    target = subprocess.Popen([str(base), "-c", "import time; time.sleep(60)"])
    try:
        problems = preflight(target.pid)
    finally:
        target.kill()
        target.wait()
    assert problems == [p for p in problems if "memray is not installed in the target" in p] and problems


def test_no_ptrace_rights_is_named() -> None:
    import os
    import shutil

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the check as an unprivileged user")
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        code = ("import sys; from mcpprof.collect.memray_collector import preflight; "
                f"sys.stderr.write(' | '.join(preflight({target.pid})))")
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                               sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              cwd="/", env={**os.environ, "PYTHONPATH": str(Path(mcpprof.__file__).parents[1])})
    finally:
        target.kill()
        target.wait()
    assert "no ptrace rights" in proc.stderr and "uid 0" in proc.stderr, proc.stderr
