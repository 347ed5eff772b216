"""mcpprof's lean stdio client and the closed-loop driver, against real processes: the bundled
example server (real SDK) and small stand-in servers that misbehave on purpose. Plus the pure
helpers that choose what to call (``arguments_from_schema``, ``select_tools``, ``load_args_file``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mcpprof.bench.client import CallError, StdioClient
from mcpprof.bench.drive import CallSpec, arguments_from_schema, drive, load_args_file, select_tools
from mcpprof.errors import TargetError, UsageError

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
EXAMPLE = [sys.executable, "-m", "mcpprof.examples.server", "--max-seconds", "60"]

# A stand-in server: answers every request at once; "misbehave" first prints two non-JSON-RPC
# lines, asks the client a ping, and sends a notification; "check" says whether the ping was
# answered; "fail" answers with isError; "exit" exits with code 3 without answering.
FAKE_SERVER = textwrap.dedent('''
    import json, sys
    out = sys.stdout
    ping_answered = False
    def send(msg):
        out.write(json.dumps(msg) + "\\n"); out.flush()
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("id") == "srv-1" and "result" in msg:
            ping_answered = True
            continue
        method = msg.get("method")
        if "id" not in msg:
            continue
        if method == "misbehave":
            out.write("hello from a stray print\\n\\n"); out.flush()
            send({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
            send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}})
            sys.stderr.write("fake server: misbehaving\\n"); sys.stderr.flush()
        elif method == "exit":
            sys.exit(3)
        result = {"ping_answered": ping_answered} if method == "check" else {"content": []}
        if method == "tools/call" and msg["params"]["name"] == "fail":
            result = {"content": [{"type": "text", "text": "it failed"}], "isError": True}
        send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
''')


@pytest.fixture
def fake_server(tmp_path: Path) -> list[str]:
    path = tmp_path / "fake_server.py"
    path.write_text(FAKE_SERVER)
    return [sys.executable, str(path)]


# -- the example server ---------------------------------------------------------------------------


def test_thousands_of_pipelined_calls_are_all_answered_correctly() -> None:
    async def main() -> None:
        async with StdioClient(EXAMPLE, env=ENV, stderr=subprocess.DEVNULL) as c:
            await c.initialize()
            todo = list(range(3000))
            answered = []

            async def worker() -> None:
                while todo:
                    i = todo.pop()
                    result = await c.call_tool("echo", {"text": f"call-{i}"})
                    assert result["content"][0]["text"] == f"call-{i}"
                    answered.append(i)

            await asyncio.gather(*(worker() for _ in range(32)))
            assert sorted(answered) == list(range(3000))

            # the same through the driver's callback loop, two specs weighted 3:1
            specs = [CallSpec("tools/call", "echo", {"text": "a"}, 3), CallSpec("tools/call", "cpu_async", {"n": 5})]
            result = await drive(c, specs, None, concurrency=32, max_calls=800)
            assert result.ok == 800 and result.errors == {} and result.stopped == "max_calls"
            assert [s.ok for s in result.stats] == [600, 200]
            assert all(isinstance(ns, int) and ns > 0 for s in result.stats for ns in s.latencies_ns)
            assert c.invalid_lines == 0 and c.late_responses == 0
            assert await c.aclose() == 0

    asyncio.run(main())


def test_error_kinds_from_the_example_server() -> None:
    async def main() -> None:
        async with StdioClient(EXAMPLE, env=ENV, stderr=subprocess.DEVNULL) as c:
            await c.initialize()
            with pytest.raises(CallError) as err:
                await c.request("no/such/method")
            assert err.value.kind == "jsonrpc" and err.value.code == -32601
            with pytest.raises(CallError) as err:
                await c.call_tool("no_such_tool")
            assert err.value.kind == "tool" and "no_such_tool" in str(err.value)
            with pytest.raises(CallError) as err:
                await c.call_tool("sleep_io", {"ms": 500}, timeout=0.1)
            assert err.value.kind == "timeout"
            assert (await c.call_tool("echo", {"text": "still fine"}))["content"][0]["text"] == "still fine"
            deadline = time.monotonic() + 10
            while c.late_responses == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert c.late_responses == 1  # the timed-out call's answer came, and was dropped

            # the driver counts errors by kind and goes on
            specs = [CallSpec("tools/call", "echo"), CallSpec("tools/call", "no_such_tool"),
                     CallSpec("no/such/method"), CallSpec("tools/call", "sleep_io", {"ms": 400})]
            result = await drive(c, specs, None, concurrency=4, max_calls=8, timeout=0.1)
            assert [s.ok for s in result.stats] == [2, 0, 0, 0]
            assert [s.errors for s in result.stats] == [{}, {"tool": 2}, {"jsonrpc": 2}, {"timeout": 2}]
            assert result.errors == {"tool": 2, "jsonrpc": 2, "timeout": 2}
            assert "no_such_tool" in result.stats[1].first_errors["tool"]

    asyncio.run(main())


def test_a_server_that_dies_mid_call_gives_transport_errors() -> None:
    async def main() -> None:
        async with StdioClient(EXAMPLE, env=ENV, stderr=subprocess.DEVNULL) as c:
            await c.initialize()
            call = asyncio.ensure_future(c.call_tool("sleep_io", {"ms": 10_000}))
            await asyncio.sleep(0.2)
            os.kill(c.process.pid, signal.SIGKILL)
            with pytest.raises(CallError) as err:
                await asyncio.wait_for(call, 5)
            assert err.value.kind == "transport"
            with pytest.raises(CallError) as err:
                await c.call_tool("echo")
            assert err.value.kind == "transport"
            assert await c.aclose() == -signal.SIGKILL

    asyncio.run(main())


def test_the_driver_stops_when_the_server_goes_away() -> None:
    async def main() -> None:
        async with StdioClient(EXAMPLE, env=ENV, stderr=subprocess.DEVNULL) as c:
            await c.initialize()
            asyncio.get_running_loop().call_later(0.5, os.kill, c.process.pid, signal.SIGKILL)
            started = time.monotonic()
            result = await drive(c, [CallSpec("tools/call", "echo")], seconds=30, concurrency=8)
            assert time.monotonic() - started < 10
            assert result.stopped == "transport" and result.errors.get("transport", 0) >= 1
            assert result.ok > 0

    asyncio.run(main())


# -- stand-in servers -------------------------------------------------------------------------------


def test_invalid_stdout_lines_are_counted_and_server_requests_answered(fake_server: list[str]) -> None:
    async def main() -> None:
        async with StdioClient(fake_server, stderr=subprocess.PIPE) as c:
            await c.initialize()
            await c.request("misbehave")
            assert (await c.request("check")) == {"ping_answered": True}
            assert c.invalid_lines == 2
            assert c.invalid_samples == [b"hello from a stray print", b""]
            assert c.notifications["notifications/message"] == 1
            with pytest.raises(CallError) as err:
                await c.call_tool("fail")
            assert err.value.kind == "tool" and "it failed" in str(err.value)
            assert await c.aclose() == 0
            assert b"misbehaving" in c.stderr_tail

    asyncio.run(main())


def test_a_server_that_exits_before_answering(fake_server: list[str]) -> None:
    async def main() -> None:
        c = StdioClient(fake_server, stderr=subprocess.DEVNULL)
        async with c:
            await c.initialize()
            with pytest.raises(CallError) as err:
                await c.request("exit", timeout=10)
            assert err.value.kind == "transport"
        assert c.returncode == 3

    asyncio.run(main())


def test_a_command_that_cannot_start() -> None:
    async def main() -> None:
        with pytest.raises(TargetError, match="cannot start"):
            async with StdioClient(["/nonexistent/mcp-server"]):
                pass

    asyncio.run(main())


@pytest.mark.parametrize("ignore_term, expected", [(False, -signal.SIGTERM), (True, -signal.SIGKILL)])
def test_aclose_escalates_to_sigterm_then_sigkill(ignore_term: bool, expected: int) -> None:
    code = "import signal, time\n" + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "") + \
        "print('ready', flush=True)\ntime.sleep(60)\n"

    async def main() -> int | None:
        c = StdioClient([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
        await c.start()
        deadline = time.monotonic() + 10
        while not c.invalid_samples and time.monotonic() < deadline:  # 'ready' is not JSON-RPC
            await asyncio.sleep(0.02)
        return await c.aclose(grace=0.3)

    assert asyncio.run(main()) == expected


def test_weighted_round_robin_and_progress(fake_server: list[str]) -> None:
    ticks = []

    async def main():
        async with StdioClient(fake_server, stderr=subprocess.DEVNULL) as c:
            await c.initialize()
            specs = [CallSpec("tools/call", "a", weight=2), CallSpec("resources/read", "x://y", weight=1),
                     CallSpec("prompts/get", "p", weight=0.5), CallSpec("ping", weight=0.5)]
            return await drive(c, specs, seconds=None, concurrency=5, max_calls=400,
                               progress=lambda *a: ticks.append(a), progress_interval=0.01)

    result = asyncio.run(main())
    assert [s.ok for s in result.stats] == [200, 100, 50, 50]
    assert list(result.by_label()) == ["tools/call a", "resources/read x://y", "prompts/get p", "ping"]
    assert ticks[-1][:2] == (400, 0)
    assert result.to_dict()["calls"][0]["ok"] == 200


def test_drive_rejects_an_empty_or_weightless_workload() -> None:
    with pytest.raises(UsageError):
        asyncio.run(drive(object(), [], 1))
    with pytest.raises(UsageError):
        asyncio.run(drive(object(), [CallSpec("ping", weight=0)], 1))


# -- choosing what to call ----------------------------------------------------------------------------


@pytest.mark.parametrize("schema, expected", [
    ({"type": "object", "properties": {"a": {"type": "string"}}}, {}),  # nothing required
    ({"type": "object", "required": ["s", "i", "n", "b", "l", "o"], "properties": {
        "s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"}, "b": {"type": "boolean"},
        "l": {"type": "array", "items": {"type": "string"}},
        "o": {"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}, "y": {}}}}},
     {"s": "mcpprof", "i": 1, "n": 1.0, "b": False, "l": [], "o": {"x": 1}}),
    ({"required": ["d", "e", "en", "c"], "properties": {
        "d": {"type": "integer", "default": 7}, "e": {"type": "string", "examples": ["ex", "ey"]},
        "en": {"enum": ["red", "green"]}, "c": {"const": 42}}},
     {"d": 7, "e": "ex", "en": "red", "c": 42}),
    ({"type": "object", "required": ["lo", "hi", "xlo", "f", "short", "long", "when", "items"], "properties": {
        "lo": {"type": "integer", "minimum": 5}, "hi": {"type": "number", "maximum": 0.25},
        "xlo": {"type": "integer", "exclusiveMinimum": 1}, "f": {"type": "string", "format": "uri"},
        "short": {"type": "string", "maxLength": 3}, "long": {"type": "string", "minLength": 10},
        "when": {"type": "string", "format": "date-time"},
        "items": {"type": "array", "minItems": 2, "items": {"type": "boolean"}}}},
     {"lo": 5, "hi": 0.25, "xlo": 2, "f": "https://example.com/", "short": "mcp", "long": "mcpprofxxx",
      "when": "2024-01-01T00:00:00Z", "items": [False, False]}),
    # pydantic's shapes: $ref into $defs, Optional as anyOf with null, nullable type lists
    ({"$defs": {"Point": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number"}}}},
      "type": "object", "required": ["p", "opt", "nullable"], "properties": {
        "p": {"$ref": "#/$defs/Point"}, "opt": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
        "nullable": {"type": ["null", "string"]}}},
     {"p": {"x": 1.0}, "opt": 1, "nullable": "mcpprof"}),
    ({}, {}),
])
def test_arguments_from_schema(schema: dict, expected: dict) -> None:
    assert arguments_from_schema(schema) == expected


def test_arguments_from_schema_survives_a_recursive_ref() -> None:
    schema = {"$defs": {"Node": {"type": "object", "required": ["next"], "properties": {"next": {"$ref": "#/$defs/Node"}}}},
              "$ref": "#/$defs/Node"}
    args = arguments_from_schema(schema)
    assert isinstance(args, dict) and "next" in args


TOOLS = [
    {"name": "read", "inputSchema": {"type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}},
     "annotations": {"readOnlyHint": True}},
    {"name": "write", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": False}},
    {"name": "plain", "inputSchema": {"type": "object"}},
]


def test_select_tools_defaults_to_read_only_tools() -> None:
    assert select_tools(TOOLS, None, example=False) == [CallSpec("tools/call", "read", {"q": "mcpprof"})]


def test_select_tools_by_name_and_with_given_arguments() -> None:
    specs = select_tools(TOOLS, ["write", "read"], example=False, arguments={"read": {"q": "mine"}})
    assert specs == [CallSpec("tools/call", "read", {"q": "mine"}), CallSpec("tools/call", "write", {})]


def test_select_tools_for_the_example_uses_its_default_arguments() -> None:
    tools = [{"name": n, "inputSchema": {"type": "object"}} for n in ("echo", "cpu_sync", "extra")]
    specs = select_tools(tools, None, example=True)
    assert specs == [CallSpec("tools/call", "echo", {"text": "hello"}), CallSpec("tools/call", "cpu_sync", {"n": 20}),
                     CallSpec("tools/call", "extra", {})]


def test_select_tools_errors_name_the_servers_tools() -> None:
    with pytest.raises(UsageError, match=r"no tool 'nope'.*read, write, plain"):
        select_tools(TOOLS, ["read", "nope"], example=False)
    with pytest.raises(UsageError, match="no tool 'typo'"):
        select_tools(TOOLS, None, example=False, arguments={"typo": {}})
    with pytest.raises(UsageError, match="readOnlyHint.*write, plain"):
        select_tools(TOOLS[1:], None, example=False)


def test_load_args_file(tmp_path: Path) -> None:
    good = tmp_path / "args.json"
    good.write_text('{"read": {"q": "x"}, "write": {}}')
    assert load_args_file(good) == {"read": {"q": "x"}, "write": {}}
    cases = {"missing.json": None, "corrupt.json": '{"read": ', "list.json": "[1]",
             "scalar.json": '{"read": 3}'}
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        with pytest.raises(UsageError) as err:
            load_args_file(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value)
