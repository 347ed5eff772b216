"""``mcpprof.locust`` headless on loopback: MCP users over HTTP and stdio against the bundled
example server, every call reported with sub-millisecond resolution, output converted into the
result schema."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# Never import locust here: importing it monkey-patches the whole pytest process with gevent.
# The tests run Locust in subprocesses.
if importlib.util.find_spec("locust") is None:  # pragma: no cover
    pytest.skip("locust is not installed (pip install 'mcpprof[locust]')", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
EXAMPLE = [sys.executable, "-m", "mcpprof.examples.server", "--max-seconds", "120"]

LOCUSTFILE = textwrap.dedent(f'''
    import sys
    from mcpprof.locust import McpHttpUser, McpStdioUser, Step

    class Http(McpHttpUser):
        steps = [Step("tools/call", "echo", {{"text": "hi {{i}}"}}, weight=3), Step("tools/list")]

    class Stdio(McpStdioUser):
        command = {EXAMPLE!r}
        steps = [Step("tools/call", "echo", {{"text": "s"}}), Step("resources/read", "example://config")]
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_locust_headless_http_and_stdio(tmp_path: Path):
    port = free_port()
    server = subprocess.Popen(EXAMPLE + ["--transport", "http", "--port", str(port)], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
        out = subprocess.run(
            [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "-u", "4", "-r", "4", "-t", "15s",
             "--host", f"http://127.0.0.1:{port}", "--json-file", "stats", "--only-summary", "--stop-timeout", "5"],
            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    finally:
        server.terminate()
        server.wait(15)
    assert out.returncode == 0, out.stderr[-2000:]
    entries = {e["name"]: e for e in json.loads((tmp_path / "stats.json").read_text())}
    assert "resources/read example://config" in entries, (sorted(entries), out.stderr[-3000:])
    for name in ("tools/call echo", "tools/list", "resources/read example://config"):
        assert entries[name]["num_requests"] > 0 and entries[name]["num_failures"] == 0, (name, entries.get(name))
    keys = [float(k) for e in entries.values() for k in e["response_times"]]
    assert any(k != int(k) for k in keys)  # sub-millisecond resolution survived Locust's bucketing

    conv = subprocess.run([sys.executable, "-m", "mcpprof.locust", "result.json", "--json-file", "stats.json"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert conv.returncode == 0, conv.stderr
    from mcpprof.bench import results

    doc = results.load(tmp_path / "result.json")
    run = doc["workloads"][0]["per_run"][0]
    assert doc["client"] == "locust" and run["steps"]["tools/call echo"]["latency_ns"]["p50"] > 0
    assert set(run["steps"]) == {"tools/call echo", "tools/list", "resources/read example://config"}
