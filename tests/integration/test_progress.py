"""Long commands show progress (elapsed, requests, errors, the server's samples) on a terminal and
nothing of it when stderr is not one: ``mcpprof profile`` run under a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp")


def run_profile(out: Path, tty: bool) -> str:
    """stderr of ``mcpprof profile --seconds 2`` (stdout is always a pipe: the JSON)."""
    return run_cli(["profile", "--seconds", "2", "--json", "--out", str(out)], tty)


def run_cli(args: list, tty: bool) -> str:
    """stderr of ``mcpprof ARGS``, on a pseudo-terminal or a pipe."""
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120")
    env.pop("NO_COLOR", None)
    cmd = [sys.executable, "-m", "mcpprof", *args]
    if not tty:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    proc.stdout.read()
    assert proc.wait(timeout=180) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_on_a_terminal_only(tmp_path: Path):
    shown = run_profile(tmp_path / "tty", tty=True)
    assert " requests " in shown and " errors" in shown and " samples" in shown, shown[-2000:]
    assert "/2 s" in shown  # elapsed of the run's length
    quiet = run_profile(tmp_path / "pipe", tty=False)
    assert " requests " not in quiet and " samples" not in quiet, quiet
    assert "wrote " in quiet  # the one-line messages still come


def test_bench_prints_its_runs_on_a_terminal_only(tmp_path: Path):
    args = ["bench", "-w", "tool-simple", "--runs", "2", "--requests", "10", "--warmup", "2", "--force", "-o"]
    assert "tool-simple: run 2/2" in run_cli(args + [str(tmp_path / "tty.json")], tty=True)
    quiet = run_cli(args + [str(tmp_path / "pipe.json")], tty=False)
    assert ": run " not in quiet and "wrote " in quiet, quiet
