"""Memory per HTTP session (slope over session counts, what stays after DELETE, split into leak and
allocator retention through the agent's traced bytes) and per stdio server process (USS/PSS), on
the bundled example server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mcpprof.bench.sessions import http_session_memory, slope, stdio_process_memory
from mcpprof.bench.workload import Step, Target

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


def http_target() -> Target:
    port = free_port()
    return Target(command=EXAMPLE + ["--transport", "http", "--port", str(port)], url=f"http://127.0.0.1:{port}/mcp",
                  env=ENV)


def test_http_memory_per_session_cli_json(tmp_path, capsys):
    """``mcpprof bench --memory --json``: per-session cost from outside and traced, what stays after
    close split into leak and allocator retention, with the verdict and the definitions. The example
    server keeps no Python objects per closed session: never a leak."""
    target = http_target()
    out = subprocess.run([sys.executable, "-m", "mcpprof", "bench", "--memory", "--memory-counts", "0,30,60,90",
                          "-w", "tool-simple", "--runs", "1", "--requests", "20", "--warmup", "2", "--json",
                          "-o", str(tmp_path / "r.json"), "--url", target.url, "--", *target.command],
                         env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)["memory"]
    assert report["counts"] == [0, 30, 60, 90] and report["traced"] is True
    cost = report["per_session"]
    assert cost["rss_anon_bytes"]["bytes_per_session"] > 0 and 0 <= cost["rss_anon_bytes"]["r2"] <= 1
    traced = cost["traced_bytes"]
    assert 4096 < traced["bytes_per_session"] < 1 << 20 and traced["r2"] > 0.9  # ~40 KiB of session state
    assert cost["gc_objects"]["objects_per_session"] > 10
    kept = report["retained_per_closed_session_bytes"]
    assert {"rss_anon_bytes", "uss_bytes", "traced_bytes"} <= set(kept)
    assert kept["traced_bytes"] < traced["bytes_per_session"] / 4  # the sessions' objects are gone
    assert report["verdict"] in ("allocator retention", "returned"), report["reason"]
    assert report["leak_bytes_per_session"] == 0
    assert report["top_growth_sites"] and {"leak", "allocator_retention"} <= set(report["definitions"])
    from mcpprof.cli.bench import print_memory

    print_memory(report)
    text = capsys.readouterr().err
    assert "verdict: " in text and "definitions:" in text and "allocator_retention:" in text


LEAKY_HTTP = """
import sys
from mcp.server.mcpserver import MCPServer

KEPT = []
server = MCPServer("leaky-sessions")


@server.tool()
async def remember(n: int = 4) -> int:
    KEPT.extend(bytearray(1024) for _ in range(n))  # SEEDED LEAK: n KiB kept per call
    return len(KEPT)


server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
"""


def test_http_memory_per_session_seeded_leak(tmp_path):
    """Every session's one call keeps 4 KiB: traced bytes stay in both rounds, a leak, with the
    allocation site named."""
    script = tmp_path / "leaky_http.py"
    script.write_text(LEAKY_HTTP)
    port = free_port()
    target = Target(command=[sys.executable, str(script), str(port)], url=f"http://127.0.0.1:{port}/mcp", env=ENV)
    report = asyncio.run(http_session_memory(target, counts=(0, 30, 60), call=Step("tools/call", "remember", {"n": 4}),
                                             settle_s=0.3))
    assert report["verdict"] in ("leak", "leak + allocator retention"), report["reason"]
    assert 4096 <= report["leak_bytes_per_session"] < 4 * 4096
    assert report["sites_kept_in_second_round"][0]["site"].endswith("leaky_http.py:11")


def test_stdio_memory_per_process():
    report = asyncio.run(stdio_process_memory(Target(command=EXAMPLE, env=ENV), processes=2, calls=5))
    med = report["per_process_median"]
    assert len(report["readings"]) == 2
    assert med["uss_bytes"] > 1 << 20 and med["pss_bytes"] >= med["uss_bytes"] and med["rss_bytes"] >= med["pss_bytes"]
