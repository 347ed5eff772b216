"""The in-server memory recorders and the memory control channel, run for real in this process."""

from __future__ import annotations

import asyncio
import gc
import json
import time
import tracemalloc
from pathlib import Path

from mcpprof.launch.recorders import DEFAULT_RECORDERS, RECORDERS, SERVICES
from mcpprof.mcp import context
from mcpprof.memory.control import ControlClient, MemoryControl
from mcpprof.memory.gcpauses import GcPauseRecorder, summarize
from mcpprof.memory.timeline import COLUMNS, MemoryTimeline
from mcpprof.model import Profile
from mcpprof.model.profile import SAMPLES


def test_recorders_are_registered_and_on_by_default() -> None:
    assert {"gc_pauses", "memory_timeline"} <= set(DEFAULT_RECORDERS.split(","))
    assert {"gc_pauses", "memory_timeline"} <= set(RECORDERS) and "memctl" in SERVICES


def test_gc_pauses_record_generation_duration_and_the_request() -> None:
    rec = GcPauseRecorder()
    rec.start()
    try:
        tag = context.tag_for("tools/call", {"name": "crunch"})
        token = context.CURRENT.set(tag)
        try:
            gc.collect(1)
        finally:
            context.CURRENT.reset(token)
        gc.collect(2)
        for name in ("other", "crunch"):  # each collection names its own request, not the last one's
            token = context.CURRENT.set(context.tag_for("tools/call", {"name": name}))
            try:
                gc.collect(0)
            finally:
                context.CURRENT.reset(token)
    finally:
        rec.stop()
    profile = Profile([SAMPLES])
    rec.contribute(profile)
    data = json.loads(json.dumps(profile.extras["gc_pauses"]))
    gens = [e[1] for e in data["events"]]
    assert 1 in gens and 2 in gens
    assert any(e[5] == "tools/call crunch" and e[1] == 1 for e in data["events"])
    names0 = [e[5] for e in data["events"] if e[1] == 0]
    assert "tools/call other" in names0 and "tools/call crunch" in names0[names0.index("tools/call other"):]
    assert all(e[2] > 0 for e in data["events"])
    summary = summarize(data, requests_served=4)
    assert summary["count"] >= 2 and summary["max_ns"] >= summary["p95_ns"] >= summary["p50_ns"] > 0
    assert summary["collections_per_request"] == summary["count"] / 4
    assert {r["request"] for r in summary["by_request"]} >= {"tools/call crunch", "(outside requests)"}
    gc.collect()
    assert len(rec.events) == len(data["events"])  # stopped: no more events


def test_memory_timeline_samples_rss_and_traced_bytes() -> None:
    tl = MemoryTimeline(interval_s=0.01, max_points=16)
    tracemalloc.start(1)
    try:
        tl.start()
        deadline = time.monotonic() + 5
        while len(tl.points) < 20 and time.monotonic() < deadline:  # passes max_points: halves once
            time.sleep(0.01)
        tl.stop()
    finally:
        tracemalloc.stop()
    data = tl.to_dict()
    assert data["columns"] == COLUMNS and len(data["points"]) <= 17
    assert data["interval_s"] >= 0.02
    row = dict(zip(COLUMNS, data["points"][0]))
    assert row["rss"] > 0 and row["traced"] >= 0 and row["requests"] == -1


def test_control_channel_runs_commands_and_reports_errors(tmp_path: Path) -> None:
    server = MemoryControl(folder=str(tmp_path))
    server.start()

    async def session() -> None:
        client = ControlClient(str(tmp_path))
        assert await client.wait_ready(5) == server_pid
        assert (await client.call("ping"))["pid"] == server_pid
        await client.call("tracemalloc_start", nframe=2)
        kept = [bytes(1000) for _ in range(50)]
        reading = await client.call("reading")
        assert len(kept) == 50  # alive at the reading
        assert reading["traced"] > 50_000 and reading["rss"] > 0
        assert any(size >= 50_000 for _frames, size, _count in reading["sites"])
        snap = await client.call("snapshot", path=str(tmp_path / "s.mcpprof"))
        assert snap["metadata"]["collector"] == "tracemalloc"
        await client.call("tracemalloc_stop")
        assert not tracemalloc.is_tracing()
        report = await client.call("report")
        assert "fragmentation" in report["figures"]
        try:
            await client.call("no_such_command", timeout=5)
        except Exception as exc:
            assert "unknown command" in str(exc)
        else:
            raise AssertionError("an unknown command must fail")

    server_pid = __import__("os").getpid()
    try:
        asyncio.run(session())
    finally:
        server.stop()
        tracemalloc.stop()
