"""The lean stdio and streamable-HTTP clients against the official SDK server (the bundled example):
every response matched to its request, nothing lost at high concurrency, errors by kind, clean
shutdown; both protocol eras and both answer framings (SSE and JSON)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcpprof.bench.client import CallError, StdioClient
from mcpprof.bench.http_client import HttpClient, header_value
from mcpprof.bench.openloop import Tally
from mcpprof.bench.runner import closed_loop
from mcpprof.bench.workload import Step

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
EXAMPLE = [sys.executable, "-m", "mcpprof.examples.server", "--max-seconds", "120"]
N = 1000
IN_FLIGHT = 128


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http(framing: str):
    port = free_port()
    extra = ["--json-response"] if framing == "json" else []
    proc = subprocess.Popen(EXAMPLE + ["--transport", "http", "--port", str(port), *extra], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return f"http://127.0.0.1:{port}/mcp", proc


@pytest.fixture
def http_server(request):
    url, proc = start_http(getattr(request, "param", "sse"))
    yield url, proc
    proc.terminate()
    assert proc.wait(15) is not None


async def all_matched(client) -> None:
    """N echo calls, IN_FLIGHT at a time, each answered with its own text."""
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> str:
        async with sem:
            r = await client.call_tool("echo", {"text": f"call-{i}"})
            return r["content"][0]["text"]

    got = await asyncio.gather(*(one(i) for i in range(N)))
    assert got == [f"call-{i}" for i in range(N)]
    assert not client._pending and client.late_responses == 0


async def driven_by_closed_loop(client) -> None:
    tally = Tally([Step("tools/call", "echo", {"text": "n {i}"}), Step("tools/list")])
    await closed_loop(client, tally, IN_FLIGHT, N, None, 30.0)
    assert tally.done == N and tally.errors() == {}
    assert sum(len(t.latencies_ns) for t in tally.per_step) == N


def test_stdio_every_response_matched_and_clean_exit():
    async def main() -> int | None:
        client = StdioClient(EXAMPLE, env=ENV, stderr=subprocess.DEVNULL)
        await client.start()
        await client.initialize()
        await all_matched(client)
        await driven_by_closed_loop(client)
        assert client.invalid_lines == 0
        return await client.aclose()

    assert asyncio.run(main()) == 0  # stdin closed: the SDK server exits by itself, code 0


@pytest.mark.parametrize("http_server,protocol", [("sse", "legacy"), ("json", "legacy"), ("sse", "modern"),
                                                  ("json", "auto")], indirect=["http_server"])
def test_http_every_response_matched(http_server, protocol):
    url, proc = http_server

    async def main() -> None:
        client = HttpClient(url, protocol=protocol)
        await client.start()
        await client.initialize()
        assert client.era == ("legacy" if protocol == "legacy" else "modern")
        assert client.server_info.get("name") == "mcpprof-example"
        if client.era == "legacy":
            assert client.session_id
        else:
            assert client.session_id is None
        await all_matched(client)
        await driven_by_closed_loop(client)
        assert client.connections_opened <= IN_FLIGHT + 2  # + the DELETE's own
        r = await client.request("resources/read", {"uri": "example://config"})
        assert r["contents"][0]["uri"] == "example://config"
        r = await client.request("prompts/get", {"name": "greet", "arguments": {"name": "Zoë"}})
        assert "Zoë" in str(r)
        await client.aclose()
        assert not client._conns and not client._pending

    asyncio.run(main())
    assert proc.poll() is None  # the server is still fine after our DELETE and disconnects


def test_http_errors_by_kind(http_server):
    url, proc = http_server

    async def main() -> None:
        async with HttpClient(url, protocol="legacy", timeout=5.0) as client:
            await client.initialize()
            with pytest.raises(CallError) as info:
                await client.request("no/such/method", {})
            assert info.value.kind == "jsonrpc"
            with pytest.raises(CallError) as info:
                await client.call_tool("sleep_io", {"ms": 3000}, timeout=0.2)
            assert info.value.kind == "timeout"
            assert (await client.call_tool("echo", {"text": "still fine"}))["content"][0]["text"] == "still fine"
            proc.kill()
            proc.wait()
            with pytest.raises(CallError) as info:
                await client.call_tool("echo", {"text": "x"})
            assert info.value.kind == "transport"

    asyncio.run(main())


def test_http_unreachable_is_a_target_error():
    from mcpprof.errors import TargetError

    async def main() -> None:
        await HttpClient(f"http://127.0.0.1:{free_port()}/mcp").start()

    with pytest.raises(TargetError, match="cannot connect"):
        asyncio.run(main())


def test_mcp_name_header_encoding():
    assert header_value("echo") == "echo"
    assert header_value("héllo").startswith("=?base64?") and header_value(" x").startswith("=?base64?")


class _FakeTransport:
    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass


@pytest.mark.parametrize("split", [1, 3, 7, 1000])
def test_http_parser_chunked_sse_at_any_split(split):
    """A chunked SSE answer (a notification event, then the response) parsed whatever the read
    boundaries: the response is delivered once, the notification counted, the connection reused."""
    from mcpprof.bench.http_client import _Conn

    events = (b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n"
              b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\n"
              b"data: \"result\":{\"ok\":true}}\n\n")
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (events[:50], events[50:]))
    wire = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nmcp-session-id: abc\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n")
    got = []

    async def main() -> None:
        client = HttpClient("http://127.0.0.1:1/mcp")
        conn = _Conn(client)
        conn.connection_made(_FakeTransport())
        client._conns.add(conn)
        client._pending[1] = (lambda r, e: got.append((r, e)), time.monotonic() + 10, "tools/call")
        client._write(conn, b"", 1)
        for i in range(0, len(wire), split):
            conn.data_received(wire[i:i + split])
        assert client._idle == [conn] and client.session_id == "abc"

    asyncio.run(main())
    assert got == [({"ok": True}, None)]


# -- the official SDK client (``mcpprof bench --client sdk``) ----------------------------------------

SDK_N = 300


def _workloads():
    from mcpprof.bench.workload import Workload

    steps = [Step("tools/call", "echo", {"text": "n {i}"}, weight=3), Step("tools/list"),
             Step("resources/read", "example://config"), Step("prompts/get", "greet", {"name": "x"})]
    return [Workload("closed", steps, concurrency=16, requests=SDK_N, warmup=5, runs=1),
            Workload("open", steps, rate=400.0, requests=SDK_N // 2, warmup=5, runs=1)]


def _check_every_call_answered(doc, client: str) -> None:
    assert doc["client"] == client
    assert [w["workload_id"] for w in doc["workloads"]] == ["closed", "open"]
    for w, n in zip(doc["workloads"], (SDK_N, SDK_N // 2)):
        run = w["per_run"][0]
        assert run["calls"] == run["ok"] == n, run["errors"]
        assert set(run["steps"]) == {"tools/call echo", "tools/list", "resources/read example://config",
                                     "prompts/get greet"}
        assert run["server_cpu_ns_per_req"] and run["server_cpu_source"] in ("clock", "psutil")


def test_sdk_client_stdio_every_call_answered_and_recorded():
    from mcpprof.bench.runner import bench
    from mcpprof.bench.workload import Target

    doc = asyncio.run(bench(Target(command=EXAMPLE, env=ENV, client="sdk"), _workloads()))
    _check_every_call_answered(doc, "sdk")
    lean = asyncio.run(bench(Target(command=EXAMPLE, env=ENV), _workloads()[:1]))
    assert lean["client"] == "lean"


@pytest.mark.parametrize("protocol", ["legacy", "auto"])
def test_sdk_client_http_every_call_answered_and_recorded(protocol):
    from mcpprof.bench.runner import bench
    from mcpprof.bench.workload import Target

    port = free_port()
    target = Target(command=EXAMPLE + ["--transport", "http", "--port", str(port)], env=ENV,
                    url=f"http://127.0.0.1:{port}/mcp", protocol=protocol, client="sdk")
    doc = asyncio.run(bench(target, _workloads()))
    _check_every_call_answered(doc, "sdk")
    assert doc["target"]["protocol"] == ("legacy" if protocol == "legacy" else "modern")
    assert doc["target"]["server_info"]["name"] == "mcpprof-example"


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_sdk_client_errors_by_kind(transport):
    from mcpprof.bench.sdk_client import SdkClient

    async def main() -> None:
        proc = None
        if transport == "stdio":
            client = SdkClient(EXAMPLE, env=ENV, stderr=subprocess.DEVNULL, timeout=5.0, protocol="legacy")
        else:
            url, proc = start_http("sse")
            client = SdkClient(url=url, timeout=5.0, protocol="legacy")
        async with client:
            await client.initialize()
            assert (await client.call_tool("echo", {"text": "hi"}))["content"][0]["text"] == "hi"
            with pytest.raises(CallError) as info:
                await client.request("no/such/method", {})
            assert info.value.kind == "jsonrpc"
            with pytest.raises(CallError) as info:
                await client.call_tool("fib_task", {"n": "not a number"})
            assert info.value.kind == "tool"
            with pytest.raises(CallError) as info:
                await client.call_tool("sleep_io", {"ms": 3000}, timeout=0.2)
            assert info.value.kind == "timeout"
            got = []
            client.send("tools/call", {"name": "echo", "arguments": {}}, lambda r, e: got.append((r, e)))
            await asyncio.sleep(0.5)
            assert got == [({}, None)]
            if proc is not None:
                proc.kill()
                proc.wait()
            else:
                os.kill(client.pid, 9)
            with pytest.raises(CallError) as info:
                await client.call_tool("echo", {"text": "x"})
            assert info.value.kind == "transport"

    asyncio.run(main())
