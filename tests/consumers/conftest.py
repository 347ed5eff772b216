"""Fixtures for checking exports with their real consumers.

The npm tools (the speedscope app and its schema, puppeteer-core) come from ``npm ci --prefix
tests/js``; Chromium is Debian's ``chromium`` package. A test skips, saying which, only when one of
them is genuinely missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from mcpprof.model import CPU, SAMPLES, WALL, Frame, Profile, ProfileBuilder
from mcpprof.model import labels as L

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "js"
NODE_MODULES = JS_DIR / "node_modules"
SPEEDSCOPE_DIST = NODE_MODULES / "speedscope" / "dist" / "release"
SPEEDSCOPE_SCHEMA = SPEEDSCOPE_DIST / "file-format-schema.json"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

NPM_HINT = "run `npm ci --prefix tests/js` (scripts/test.sh does)"


@pytest.fixture(scope="session")
def speedscope_schema() -> Dict[str, Any]:
    if not SPEEDSCOPE_SCHEMA.is_file():
        pytest.skip(f"speedscope's schema is missing ({SPEEDSCOPE_SCHEMA}): {NPM_HINT}")
    return json.loads(SPEEDSCOPE_SCHEMA.read_text())


@pytest.fixture(scope="session")
def browser_tools() -> Dict[str, str]:
    """node, the npm packages and Chromium, or a skip naming what is missing."""
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed (apt-get install nodejs npm)")
    for pkg in ("puppeteer-core", "speedscope"):
        if not (NODE_MODULES / pkg / "package.json").is_file():
            pytest.skip(f"npm package {pkg} is missing: {NPM_HINT}")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return {"node": node, "chromium": CHROMIUM}


def run_node(tools: Dict[str, str], script: str, *args: str, timeout: float = 240) -> List[Dict[str, Any]]:
    """Run a driver in tests/js; its stdout is JSON lines."""
    env = dict(os.environ, CHROMIUM=tools["chromium"])
    proc = subprocess.run([tools["node"], str(JS_DIR / script), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(JS_DIR))
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def node_driver(browser_tools):
    def run(script: str, *args: str, timeout: float = 240) -> List[Dict[str, Any]]:
        return run_node(browser_tools, script, *args, timeout=timeout)

    return run


# -- a realistic small workload ------------------------------------------------------------------

STDLIB = "/usr/lib/python3.11"
SITE = "/srv/app/.venv/lib/python3.11/site-packages"
APP = "/home/dev/weather_server"


def _f(function: str, file: str, line: int) -> Frame:
    return Frame(function, file, line)


LOOP = [
    _f("<module>", f"{APP}/server.py", 88),
    _f("run", f"{SITE}/mcp/server/fastmcp/server.py", 240),
    _f("run", f"{STDLIB}/asyncio/runners.py", 190),
    _f("Runner.run", f"{STDLIB}/asyncio/runners.py", 118),
    _f("BaseEventLoop.run_until_complete", f"{STDLIB}/asyncio/base_events.py", 640),
    _f("BaseEventLoop.run_forever", f"{STDLIB}/asyncio/base_events.py", 607),
    _f("BaseEventLoop._run_once", f"{STDLIB}/asyncio/base_events.py", 1922),
    _f("Handle._run", f"{STDLIB}/asyncio/events.py", 80),
]
DISPATCH = LOOP + [
    _f("Server._handle_message", f"{SITE}/mcp/server/lowlevel/server.py", 662),
    _f("Server._handle_request", f"{SITE}/mcp/server/lowlevel/server.py", 701),
]
TOOL_CALL = DISPATCH + [
    _f("FastMCP.call_tool", f"{SITE}/mcp/server/fastmcp/server.py", 315),
    _f("Tool.run", f"{SITE}/mcp/server/fastmcp/tools/base.py", 92),
]
WORKER = [
    _f("Thread._bootstrap", f"{STDLIB}/threading.py", 995),
    _f("Thread._bootstrap_inner", f"{STDLIB}/threading.py", 1038),
    _f("WorkerThread.run", f"{SITE}/anyio/_backends/_asyncio.py", 967),
    _f("Context.run", f"{SITE}/anyio/_backends/_asyncio.py", 975),
]


def workload_profile() -> Profile:
    """A weather MCP server's profile: three tools, a sync tool on an AnyIO worker thread, the
    transport, absolute paths under sys.path, and one tool whose name is hostile markup."""
    b = ProfileBuilder([SAMPLES, CPU, WALL], metadata={
        "collector": "sampler", "period_ns": 1_000_000,
        "sys_path": [STDLIB, SITE, APP], "stdlib_dirs": [STDLIB], "site_dirs": [SITE],
    })
    ms = 1_000_000

    def add(frames, n, cpu_share, tool=None, thread="MainThread"):
        labels = {L.THREAD_NAME: thread}
        if tool:
            labels.update({L.METHOD: "tools/call", L.TOOL: tool})
        b.add(frames, [n, int(n * ms * cpu_share), n * ms], labels)

    forecast = TOOL_CALL + [_f("get_forecast", f"{APP}/server.py", 41)]
    add(forecast + [_f("parse_grid", f"{APP}/grid.py", 17), _f("loads", f"{STDLIB}/json/__init__.py", 346),
                    _f("JSONDecoder.decode", f"{STDLIB}/json/decoder.py", 337)], 420, 1.0, "get_forecast")
    add(forecast + [_f("parse_grid", f"{APP}/grid.py", 21)], 160, 1.0, "get_forecast")
    add(forecast + [_f("smooth", f"{APP}/grid.py", 55), _f("mean", f"{STDLIB}/statistics.py", 430),
                    _f("_sum", f"{STDLIB}/statistics.py", 192)], 240, 1.0, "get_forecast")
    add(forecast + [_f("fetch_station", f"{APP}/stations.py", 30), _f("sleep", f"{STDLIB}/asyncio/tasks.py", 649)],
        300, 0.02, "get_forecast")
    add(forecast, 25, 1.0, "get_forecast")
    alerts = TOOL_CALL + [_f("get_alerts", f"{APP}/server.py", 63)]
    add(alerts + [_f("format_alert", f"{APP}/server.py", 70), _f("str.join", "<built-in>", 0)], 90, 1.0, "get_alerts")
    add(alerts + [_f("fetch_alerts", f"{APP}/alerts.py", 12), _f("sleep", f"{STDLIB}/asyncio/tasks.py", 649)],
        150, 0.01, "get_alerts")
    # a sync tool run by anyio.to_thread on a worker thread
    add(WORKER + [_f("render_map", f"{APP}/maps.py", 8), _f("rasterise", f"{APP}/maps.py", 33)], 380, 0.97,
        "render_map", "AnyIO worker thread")
    add(WORKER + [_f("render_map", f"{APP}/maps.py", 8), _f("compress", f"{SITE}/PIL/Image.py", 2410)], 110, 1.0,
        "render_map", "AnyIO worker thread")
    # hostile names must render as text everywhere
    add(TOOL_CALL + [_f("<script>alert(1)</script>", f"{APP}/server.py", 99)], 60, 1.0,
        "<script>alert(1)</script>")
    # the transport and dispatch outside any request
    add(LOOP + [_f("stdio_server.stdin_reader", f"{SITE}/mcp/server/stdio.py", 61),
                _f("StreamReader.readline", f"{STDLIB}/asyncio/streams.py", 546)], 70, 0.3)
    add(DISPATCH + [_f("JSONRPCMessage.model_validate_json", f"{SITE}/pydantic/main.py", 744)], 45, 1.0)
    add(LOOP + [_f("Server.run", f"{SITE}/mcp/server/lowlevel/server.py", 620),
                _f("BaseSelectorEventLoop._write_to_self", f"{STDLIB}/asyncio/selector_events.py", 140)], 3, 1.0)
    return b.build()


@pytest.fixture
def workload() -> Profile:
    return workload_profile()
