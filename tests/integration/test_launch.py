"""`mcpprof run` end to end: real servers, real clients, every exit path and launch form."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest

import mcpprof
from mcpprof.bench.client import StdioClient
from mcpprof.model import labels as L

pytestmark = pytest.mark.slow

PY = sys.executable
RUN = [PY, "-m", "mcpprof", "run", "--quiet", "--flush", "0.5"]

CRASHING_SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("crashy")


@server.tool()
def ping() -> str:
    return "pong"


server.run("stdio")
raise RuntimeError("boom after serving")
"""


def _profiles(out: Path) -> list:
    return sorted(out.glob("*.mcpprof"))


async def _call_some(client: StdioClient, n: int = 20) -> None:
    await client.initialize()
    results = await asyncio.gather(*(client.call_tool("echo", {"text": str(i)}) for i in range(n)))
    assert [r["content"][0]["text"] for r in results] == [str(i) for i in range(n)]


def test_complete_after_stdin_close(tmp_path: Path) -> None:
    async def go() -> int | None:
        async with StdioClient(RUN + ["--out", str(tmp_path), "--", PY, "-m", "mcpprof.examples.server"]) as c:
            await _call_some(c, 50)
            await c.call_tool("cpu_sync", {"n": 18})
            code = await c.aclose()
            assert c.invalid_lines == 0
            return code

    assert asyncio.run(go()) == 0
    [path] = _profiles(tmp_path)
    p = mcpprof.load(path)
    assert p.metadata["complete"] is True and p.metadata["end_reason"] == "exit"
    assert p.requests.stats[("tools/call", "echo")].count == 50
    assert p.requests.stats[("tools/call", "cpu_sync")].cpu_ns > 0
    assert [f["kind"] for f in p.metadata["frameworks"]] == ["mcp2"]


def test_complete_after_sigterm(tmp_path: Path) -> None:
    async def go() -> int | None:
        async with StdioClient(RUN + ["--out", str(tmp_path), "--", PY, "-m", "mcpprof.examples.server"]) as c:
            await _call_some(c)
            os.kill(c.pid, signal.SIGTERM)
            for _ in range(100):
                if c.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            return c.returncode

    code = asyncio.run(go())
    assert code == -signal.SIGTERM
    p = mcpprof.load(_profiles(tmp_path)[0])
    assert p.metadata["complete"] is True
    assert p.metadata["end_reason"] == "signal SIGTERM"
    assert p.requests.stats[("tools/call", "echo")].count == 20


def test_partial_but_loadable_after_sigkill(tmp_path: Path) -> None:
    async def go() -> None:
        async with StdioClient(RUN + ["--out", str(tmp_path), "--", PY, "-m", "mcpprof.examples.server"]) as c:
            await _call_some(c)
            for _ in range(100):  # wait for a periodic flush that includes the calls
                await asyncio.sleep(0.1)
                paths = _profiles(tmp_path)
                try:
                    p = mcpprof.load(paths[0]) if paths else None
                except Exception:
                    p = None
                stats = p.requests.stats.get(("tools/call", "echo")) if p is not None and p.requests else None
                if stats is not None and stats.count == 20:
                    break
            os.kill(c.pid, signal.SIGKILL)
            await asyncio.sleep(0.2)

    asyncio.run(go())
    p = mcpprof.load(_profiles(tmp_path)[0])
    assert p.metadata["complete"] is False
    assert p.requests.stats[("tools/call", "echo")].count == 20


def test_crash_leaves_incomplete_profile(tmp_path: Path) -> None:
    script = tmp_path / "crashy.py"
    script.write_text(CRASHING_SERVER)
    out = tmp_path / "out"

    async def go() -> int | None:
        async with StdioClient(RUN + ["--out", str(out), "--", PY, str(script)], stderr=subprocess.DEVNULL) as c:
            await c.initialize()
            assert (await c.call_tool("ping", {}))["content"][0]["text"] == "pong"
            return await c.aclose()

    assert asyncio.run(go()) == 1
    p = mcpprof.load(_profiles(out)[0])
    assert p.metadata["complete"] is False
    assert p.metadata["end_reason"] == "crash: RuntimeError"


def _site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


@pytest.mark.parametrize("form", ["script", "module", "console-script", "foreign-venv"])
def test_launch_forms(tmp_path: Path, form: str) -> None:
    """A script, ``-m module``, an installed console script, and a Python where mcpprof is not installed."""
    pkg = tmp_path / "src" / "demo_mcp_server"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from mcp.server.mcpserver import MCPServer

        server = MCPServer("demo")


        @server.tool()
        async def hello(name: str = "x") -> str:
            return "hello " + name


        def main() -> None:
            server.run("stdio")
    """))
    (pkg / "__main__.py").write_text("from demo_mcp_server import main\nmain()\n")
    env = dict(os.environ)
    if form == "script":
        command = [PY, str(pkg / "__main__.py")]
        env["PYTHONPATH"] = str(tmp_path / "src")
    elif form == "module":
        command = [PY, "-m", "demo_mcp_server"]
        env["PYTHONPATH"] = str(tmp_path / "src")
    elif form == "console-script":
        (tmp_path / "src" / "pyproject.toml").write_text(textwrap.dedent("""
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "demo-mcp-server"
            version = "0.1"
            [project.scripts]
            demo-mcp-server = "demo_mcp_server:main"
        """))
        target = tmp_path / "target"
        subprocess.run([PY, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                        str(target), str(tmp_path / "src")], check=True, capture_output=True)
        command = [str(target / "bin" / "demo-mcp-server")]
        env["PYTHONPATH"] = str(target)
    else:  # a venv that can import the MCP SDK but not mcpprof (its editable finder is not loaded)
        venv = tmp_path / "venv"
        subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True)
        vpy = venv / "bin" / "python"
        purelib = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        Path(purelib, "sdk.pth").write_text(_site_packages() + "\n" + str(tmp_path / "src") + "\n")
        probe = subprocess.run([str(vpy), "-c", "import mcpprof"], capture_output=True, cwd=tmp_path)
        assert probe.returncode != 0, "mcpprof should not be importable in the foreign venv"
        command = [str(vpy), "-m", "demo_mcp_server"]
    out = tmp_path / "out"

    async def go() -> None:
        async with StdioClient(RUN + ["--out", str(out), "--"] + command, env=env, cwd=str(tmp_path)) as c:
            await c.initialize()
            for _ in range(3):
                r = await c.call_tool("hello", {"name": "mcp"})
                assert r["content"][0]["text"] == "hello mcp"
            assert await c.aclose() == 0
            assert c.invalid_lines == 0

    asyncio.run(go())
    [path] = _profiles(out)
    p = mcpprof.load(path)
    assert p.requests.stats[("tools/call", "hello")].count == 3
    assert p.metadata["complete"] is True


def test_streamable_http_server(tmp_path: Path) -> None:
    """The agent tags requests of a streamable-HTTP server too (driven by the official SDK client)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    proc = subprocess.Popen(RUN + ["--out", str(out), "--", PY, "-m", "mcpprof.examples.server",
                                   "--transport", "http", "--port", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async def go() -> None:
            from mcp import Client

            for _ in range(100):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    await asyncio.sleep(0.1)
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                for i in range(5):
                    r = await client.call_tool("cpu_async", {"n": 15})
                    assert not r.is_error

        asyncio.run(go())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    p = mcpprof.load(_profiles(out)[0])
    assert p.requests.stats[("tools/call", "cpu_async")].count == 5
    assert p.metadata["complete"] is True


def test_stdio_integrity_thousands_of_calls(tmp_path: Path) -> None:
    """Every line the client reads through `mcpprof run` is JSON-RPC, and every answer is right."""
    n = 3000

    async def go() -> None:
        async with StdioClient(RUN + ["--rate", "1000", "--out", str(tmp_path), "--", PY, "-m",
                                      "mcpprof.examples.server"]) as c:
            await c.initialize()
            sem = asyncio.Semaphore(32)

            async def one(i: int) -> None:
                async with sem:
                    r = await c.call_tool("echo", {"text": f"m{i}"})
                    assert r["content"][0]["text"] == f"m{i}"

            await asyncio.gather(*(one(i) for i in range(n)))
            assert c.invalid_lines == 0
            assert await c.aclose() == 0

    asyncio.run(go())
    p = mcpprof.load(_profiles(tmp_path)[0])
    assert p.requests.stats[("tools/call", "echo")].count == n


def test_stdio_integrity_official_sdk_client(tmp_path: Path) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    errors: list = []

    async def go() -> None:
        params = StdioServerParameters(command=PY, args=RUN[1:] + ["--out", str(tmp_path), "--", PY, "-m",
                                                                   "mcpprof.examples.server"],
                                       env={"PATH": os.environ.get("PATH", "")})
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                sem = asyncio.Semaphore(16)

                async def one(i: int) -> None:
                    async with sem:
                        r = await session.call_tool("echo", {"text": f"s{i}"})
                        if r.content[0].text != f"s{i}":
                            errors.append(i)

                await asyncio.gather(*(one(i) for i in range(1000)))

    asyncio.run(go())
    assert errors == []
    time.sleep(0.5)
    p = mcpprof.load(_profiles(tmp_path)[0])
    assert p.requests.stats[("tools/call", "echo")].count == 1000
    assert p.metadata["complete"] is True


def test_agent_records_labels_on_samples(tmp_path: Path) -> None:
    """Samples taken while a long tool runs carry its MCP labels (loop thread and worker thread)."""
    async def go() -> None:
        async with StdioClient(RUN + ["--rate", "500", "--out", str(tmp_path), "--", PY, "-m",
                                      "mcpprof.examples.server"]) as c:
            await c.initialize()
            await asyncio.gather(c.call_tool("cpu_async", {"n": 27}), c.call_tool("cpu_sync", {"n": 27}))
            await c.aclose()

    asyncio.run(go())
    p = mcpprof.load(_profiles(tmp_path)[0])
    tools = {}
    for s in p.samples:
        d = dict(s.labels)
        if d.get(L.TOOL):
            tools.setdefault(d[L.TOOL], set()).add(d[L.THREAD_NAME])
    assert "MainThread" in tools.get("cpu_async", set())
    assert any(t != "MainThread" for t in tools.get("cpu_sync", set()))
