"""The tracemalloc collector on real allocations, and tool attribution through a real MCP server."""

from __future__ import annotations

import tracemalloc

import pytest

from mcpprof.collect.tracemalloc_collector import TracemallocCollector, function_at, tool_ranges
from mcpprof.model import INUSE_OBJECTS, INUSE_SPACE
from mcpprof.model import labels as L

KEPT: list = []


def make_rows(n: int) -> list:
    return [bytearray(512) for _ in range(n)]


async def hoard(n: int = 10) -> int:
    """A tool that keeps what it allocates."""
    KEPT.extend(make_rows(n))
    return len(KEPT)


def test_snapshot_gives_inuse_bytes_and_objects_per_stack() -> None:
    collector = TracemallocCollector(nframe=4)
    collector.start()
    try:
        rows = make_rows(200)
        profile = collector.snapshot(tools=False)
    finally:
        collector.stop()
    assert not tracemalloc.is_tracing()
    assert profile.sample_types == [INUSE_SPACE, INUSE_OBJECTS]
    here = [(s, fr) for s, fr in profile.iter_stacks() if fr[-1].file == __file__ and "make_rows" in fr[-1].function]
    assert here, [fr[-1] for _, fr in profile.iter_stacks()][:5]
    assert sum(s.values[0] for s, _ in here) >= 200 * 512 and sum(s.values[1] for s, _ in here) >= 200
    assert profile.metadata["nframe"] == 4 and "cost_note" in profile.metadata
    assert not any("mcpprof/" in fr[-1].file and "tests" not in fr[-1].file for _, fr in profile.iter_stacks())
    del rows


def test_function_names_come_from_the_source() -> None:
    line = make_rows.__code__.co_firstlineno + 1
    assert function_at(__file__, line) == "make_rows"
    assert function_at(__file__, 1) == "<module>"


def test_allocations_in_a_tool_are_labelled_with_the_tool() -> None:
    pytest.importorskip("mcp")
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("t")
    server.tool()(hoard)
    ranges = tool_ranges([server])
    assert any(name == "hoard" for spans in ranges.values() for *_, name in spans)
    import asyncio

    collector = TracemallocCollector(nframe=3)
    collector.start()
    try:
        asyncio.run(hoard(100))
        profile = collector.snapshot(tools=True)
    finally:
        collector.stop()
        KEPT.clear()
    tools = {s.label(L.TOOL) for s in profile.samples if s.values[0] >= 100 * 512}
    assert "hoard" in tools
    assert profile.metadata["attributed_bytes"] >= 100 * 512


def test_memory_snapshot_api_on_this_process() -> None:
    import mcpprof
    from mcpprof.errors import UsageError

    with pytest.raises(UsageError, match="tracemalloc is not tracing"):
        mcpprof.memory_snapshot()
    tracemalloc.start(2)
    try:
        rows = make_rows(100)
        profile = mcpprof.memory_snapshot()
    finally:
        tracemalloc.stop()
    assert profile.total(INUSE_SPACE) >= 100 * 512 and len(rows) == 100
    assert "rss" in profile.extras["process_memory"]["figures"]
