"""``mcpprof.profile()``: context manager and decorator around in-process work, including an
in-process MCP server (the bundled example) driven by the SDK's in-process client."""

from __future__ import annotations

import asyncio
import sys

import pytest

import mcpprof
from mcpprof.analyse.summary import summarize
from mcpprof.mcp import context


def spin(seconds: float) -> int:
    import time

    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def test_context_manager_samples_the_block():
    with mcpprof.profile(rate_hz=500) as p:
        spin(0.3)
    prof = p.profile
    assert prof is not None and prof.samples
    assert prof.metadata["collector"] == "sample"
    names = {f.function for f in prof.frames}
    assert "spin" in names
    assert prof.requests is not None and prof.requests.total_count == 0
    assert "done" in repr(p)


def test_decorator_profiles_each_call_and_keeps_the_last():
    @mcpprof.profile(rate_hz=500)
    def work(seconds: float) -> str:
        spin(seconds)
        return "ok"

    assert work(0.2) == "ok"
    assert "spin" in {f.function for f in work.mcpprof.profile.frames}


def test_async_decorator():
    @mcpprof.profile(rate_hz=500)
    async def work() -> int:
        return spin(0.2)

    assert asyncio.run(work()) > 0
    assert work.mcpprof.profile.samples


def test_invalid_rate_and_double_stop():
    with pytest.raises(ValueError):
        mcpprof.profile(rate_hz=0)
    session = mcpprof.profile(rate_hz=100)
    with pytest.raises(RuntimeError):
        session.stop()


def test_memory_keeps_live_allocations():
    import tracemalloc

    assert not tracemalloc.is_tracing()
    keep = []
    with mcpprof.profile(rate_hz=100, memory=True) as p:
        keep.extend(bytearray(4096) for _ in range(300))
    assert not tracemalloc.is_tracing()  # started and stopped by the session
    assert p.memory is not None and p.memory.has_type("inuse_space")
    assert p.memory.total("inuse_space") >= 300 * 4096
    del keep


@pytest.mark.parametrize("exact_cpu", [False, True])
def test_in_process_mcp_server_is_profiled_per_tool(exact_cpu):
    pytest.importorskip("mcp")
    from mcp import Client

    from mcpprof.examples.server import build_server

    server = build_server()

    async def drive() -> None:
        async with Client(server) as client:
            for _ in range(8):
                await client.call_tool("cpu_sync", {"n": 21})
                await client.call_tool("echo", {"text": "<b>hi</b>"})
                await client.call_tool("cpu_async", {"n": 25})  # long enough on the loop to be sampled

    with mcpprof.profile(rate_hz=1000, server=server, exact_cpu=exact_cpu) as p:
        asyncio.run(drive())
    prof = p.profile
    stats = {key: st for key, st in prof.requests.stats.items()}
    assert stats[("tools/call", "cpu_sync")].count == 8
    assert stats[("tools/call", "echo")].count == 8
    summary = summarize(prof)
    assert summary.cpu_source == ("exact" if exact_cpu else "sampled on the loop, measured on workers")
    row = summary.row("tools/call cpu_sync")
    assert row.cpu_ns and row.cpu_ns > summary.row("tools/call echo").cpu_ns
    assert "gen_ai.tool.name" in {k for s in prof.samples for k, _ in s.labels}
    # the session removed its middleware and hooks again
    from mcpprof.mcp.sdk2 import middleware_list

    assert not any(getattr(m, "mcpprof_marker", False) for m in middleware_list(server) or [])
    assert not context._thread_patches and not context.metering and not context.installed
    assert not context.request_sinks or all(s.__name__ != "sink" for s in context.request_sinks)


def test_importing_mcpprof_does_not_import_ipython():
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import mcpprof, sys; mcpprof.profile; "
                          "print('IPython' in sys.modules, 'mcpprof.inprocess' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
