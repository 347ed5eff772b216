"""The bundled example server, run as a real process and reached with real clients: mcpprof's
lean stdio client, the official SDK client over stdio, and the SDK's streamable HTTP client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import example_arguments

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
TOOLS = {"echo", "cpu_async", "cpu_sync", "spawn", "alloc", "sleep_io"}
FIB20 = "6765"


def server_cmd(*args: str, module: str = "mcpprof.examples.server") -> list[str]:
    return [sys.executable, "-m", module, "--max-seconds", "60", *args]


def text_of(result: dict) -> str:
    return result["content"][0]["text"]


def test_lean_client_reaches_every_tool_resource_and_prompt(tmp_path: Path) -> None:
    report = tmp_path / "burn.jsonl"

    async def main() -> tuple[dict, int | None, int]:
        async with StdioClient(server_cmd("--burn-report", str(report)), env=ENV,
                               stderr=subprocess.PIPE) as c:
            init = await c.initialize()
            assert init["serverInfo"]["name"] == "mcpprof-example"
            tools = await c.list_tools()
            assert {t["name"] for t in tools} == TOOLS
            assert all(t["annotations"]["readOnlyHint"] is True for t in tools)
            args = example_arguments()
            assert set(args) == TOOLS
            texts = {t["name"]: text_of(await c.call_tool(t["name"], args[t["name"]])) for t in tools}
            config = await c.read_resource("example://config")
            prompt = await c.get_prompt("greet", {"name": "Ada"})
            invalid = c.invalid_lines
            return {"texts": texts, "config": config, "prompt": prompt}, await c.aclose(), invalid

    got, code, invalid = asyncio.run(main())
    assert code == 0 and invalid == 0
    assert got["texts"] == {"echo": "hello", "cpu_async": FIB20, "cpu_sync": FIB20, "spawn": FIB20,
                            "alloc": str(256 * 1024), "sleep_io": "slept 10 ms"}
    content = got["config"]["contents"][0]
    assert content["uri"] == "example://config"
    assert json.loads(content["text"])["name"] == "mcpprof-example"
    assert "Ada" in got["prompt"]["messages"][0]["content"]["text"]

    # The burn report: CPU measured inside each working tool, and the thread it ran on.
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    by_tool = {line["tool"]: line for line in lines}
    assert sorted(by_tool) == ["alloc", "cpu_async", "cpu_sync", "spawn"] and len(lines) == 4
    assert all(line["cpu_ns"] > 0 for line in lines)
    assert by_tool["cpu_async"]["thread"] == "MainThread"
    assert by_tool["spawn"]["thread"] == "MainThread"
    assert by_tool["cpu_sync"]["thread"] != "MainThread"  # the SDK ran the sync tool on a worker


def test_python_dash_m_mcpprof_examples_runs_the_server() -> None:
    async def main() -> tuple[list[str], int | None]:
        async with StdioClient(server_cmd(module="mcpprof.examples"), env=ENV, stderr=subprocess.DEVNULL) as c:
            await c.initialize()
            names = [t["name"] for t in await c.list_tools()]
            return names, await c.aclose()

    names, code = asyncio.run(main())
    assert set(names) == TOOLS and code == 0


def test_official_sdk_client_over_stdio() -> None:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    cmd = server_cmd()
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env={"PYTHONPATH": ENV["PYTHONPATH"]})

    async def main() -> dict:
        with open(os.devnull, "w") as devnull:
            async with stdio_client(params, errlog=devnull) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = await session.list_tools()
                    echo = await session.call_tool("echo", {"text": "via sdk"})
                    sync = await session.call_tool("cpu_sync", {"n": 15})
                    resource = await session.read_resource("example://config")
                    prompt = await session.get_prompt("greet", {"name": "Grace"})
                    return {"tools": {t.name for t in tools.tools}, "echo": echo.content[0].text,
                            "sync": sync.content[0].text, "resource": resource.contents[0].text,
                            "prompt": prompt.messages[0].content.text}

    got = asyncio.run(main())
    assert got["tools"] == TOOLS
    assert got["echo"] == "via sdk" and got["sync"] == "610"
    assert json.loads(got["resource"])["name"] == "mcpprof-example"
    assert "Grace" in got["prompt"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the HTTP server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the HTTP server did not start listening")


def test_streamable_http_with_the_sdk_client() -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    port = _free_port()
    proc = subprocess.Popen(server_cmd("--transport", "http", "--port", str(port)), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    async def main() -> tuple[str, str]:
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                echo = await session.call_tool("echo", {"text": "over http"})
                spawn = await session.call_tool("spawn", {"n": 10})
                return echo.content[0].text, spawn.content[0].text

    try:
        _wait_port(port, proc)
        assert asyncio.run(main()) == ("over http", "55")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert out == b""  # nothing but the protocol may use stdout, and over HTTP that is nothing


def test_http_refuses_a_non_loopback_host() -> None:
    proc = subprocess.run(server_cmd("--transport", "http", "--host", "0.0.0.0"), env=ENV,
                          capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"loopback" in proc.stderr and proc.stdout == b""


def test_max_seconds_ends_the_server() -> None:
    async def main() -> int | None:
        cmd = [sys.executable, "-m", "mcpprof.examples.server", "--max-seconds", "1"]
        async with StdioClient(cmd, env=ENV, stderr=subprocess.PIPE) as c:
            deadline = time.monotonic() + 15
            while c.returncode is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert b"--max-seconds" in c.stderr_tail
            return c.returncode

    assert asyncio.run(main()) == 0


def test_burn_report_cpu_grows_with_the_work(tmp_path: Path) -> None:
    report = tmp_path / "burn.jsonl"
    tools = ("cpu_async", "cpu_sync", "spawn")

    async def main() -> None:
        async with StdioClient(server_cmd("--burn-report", str(report)), env=ENV, stderr=subprocess.DEVNULL) as c:
            await c.initialize()
            for tool in tools:
                await c.call_tool(tool, {"n": 12})
                await c.call_tool(tool, {"n": 22})

    asyncio.run(main())
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [line["tool"] for line in lines] == [t for t in tools for _ in range(2)]
    for small, large in zip(lines[::2], lines[1::2]):
        assert large["cpu_ns"] > 10 * small["cpu_ns"], (small, large)  # fib(22): ~120x the calls of fib(12)
