"""Memory per HTTP session (slope over session counts, what stays after DELETE) and per stdio
server process (USS/PSS), on the bundled example server."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

from mcpprof.bench.sessions import http_session_memory, slope, stdio_process_memory
from mcpprof.bench.workload import Target

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
EXAMPLE = [sys.executable, "-m", "mcpprof.examples.server", "--max-seconds", "120"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slope_and_r2():
    assert slope([0, 1, 2, 3], [10, 12, 14, 16]) == (2.0, 1.0)
    b, r2 = slope([0, 1, 2, 3], [10, 13, 13, 16])
    assert b == pytest.approx(1.8) and 0 < r2 < 1


@pytest.mark.slow
def test_http_memory_per_session():
    port = free_port()
    target = Target(command=EXAMPLE + ["--transport", "http", "--port", str(port)],
                    url=f"http://127.0.0.1:{port}/mcp", env=ENV)
    report = asyncio.run(http_session_memory(target, counts=(0, 40, 80, 120), settle_s=0.3))
    assert report["counts"] == [0, 40, 80, 120]
    anon = report["per_session"]["rss_anon_bytes"]
    assert anon["bytes_per_session"] > 0 and 0 <= anon["r2"] <= 1
    assert set(report["retained_per_closed_session_bytes"]) >= {"rss_anon_bytes", "uss_bytes"}


def test_stdio_memory_per_process():
    report = asyncio.run(stdio_process_memory(Target(command=EXAMPLE, env=ENV), processes=2, calls=5))
    med = report["per_process_median"]
    assert len(report["readings"]) == 2
    assert med["uss_bytes"] > 1 << 20 and med["pss_bytes"] >= med["uss_bytes"] and med["rss_bytes"] >= med["pss_bytes"]
