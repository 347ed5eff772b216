"""The sampled-allocation C extension on real allocations: estimates, frees, realloc, threads,
chaining with tracemalloc, restoring the allocator, reentrancy; and its collector's profiles.

Estimates use a fixed seed, so each run on one interpreter is deterministic; the tolerances are
about 4 standard deviations of the estimator for the sizes and counts used (stated per test).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import tracemalloc
from typing import Iterator, List

import pytest

from mcpprof.collect.allocsample_collector import SampledCollector, unavailable
from mcpprof.model import INUSE_OBJECTS, INUSE_SPACE
from mcpprof.model import labels as L

allocsample = pytest.importorskip("mcpprof.collect._allocsample", reason="C extension not built")

KEPT: List[bytearray] = []


@pytest.fixture(autouse=True)
def _stopped() -> Iterator[None]:
    yield
    allocsample.stop()
    if tracemalloc.is_tracing():
        tracemalloc.stop()
    KEPT.clear()


def make_rows(n: int, size: int = 1024) -> List[bytearray]:
    return [bytearray(size) for _ in range(n)]  # ROWS_LINE


ROWS_LINE = make_rows.__code__.co_firstlineno + 1


def at_rows_line(frames: tuple) -> bool:
    return bool(frames) and frames[0][0] == __file__ and frames[0][1] == ROWS_LINE


def test_start_stop_and_arguments() -> None:
    assert not allocsample.is_running()
    allocsample.start(interval_bytes=4096, max_frames=16, seed=1)
    assert allocsample.is_running()
    with pytest.raises(RuntimeError, match="already running"):
        allocsample.start()
    stats = allocsample.stats()
    assert stats["running"] and stats["interval_bytes"] == 4096 and stats["max_frames"] == 16
    assert allocsample.stop() is True and not allocsample.is_running()
    assert allocsample.stop() is False and allocsample.snapshot() == []
    for bad in ({"interval_bytes": 0}, {"max_frames": 0}, {"max_frames": 10_000}):
        with pytest.raises(ValueError):
            allocsample.start(**bad)
    assert not allocsample.is_running() and unavailable() is None


def test_estimate_of_known_allocations_is_close_to_the_truth() -> None:
    n = 20_000
    tracemalloc.start(1)  # the truth: every allocation made on the line, counted by tracemalloc
    rows = make_rows(n)
    truth = [s for s in tracemalloc.take_snapshot().statistics("lineno")
             if s.traceback[0].filename == __file__ and s.traceback[0].lineno == ROWS_LINE][0]
    del rows
    tracemalloc.stop()
    gc.collect()

    allocsample.start(interval_bytes=16384, seed=1234)
    rows = make_rows(n)
    live = [r for r in allocsample.snapshot() if at_rows_line(r[3])]
    est_bytes = sum(r[1] for r in live)
    est_count = sum(r[2] for r in live)
    # ~1 250 samples: relative SD of the byte estimate ~2.8 % (tolerance 12 %); the 57-byte
    # objects are sampled ~70 times, so the count's SD is ~6 % (tolerance 25 %).
    assert len(live) > 800
    assert abs(est_bytes / truth.size - 1) < 0.12, (est_bytes, truth.size)
    assert abs(est_count / truth.count - 1) < 0.25, (est_count, truth.count)
    assert all(r[1] >= r[0] and r[2] >= 1 for r in live)
    names = {fr[2] for r in live for fr in r[3]}
    assert "make_rows" in names or any(name.endswith("make_rows") for name in names)
    del rows


def test_frees_remove_live_samples() -> None:
    allocsample.start(interval_bytes=1, seed=2)  # every allocation is sampled
    rows = make_rows(1000, 256)
    assert sum(1 for r in allocsample.snapshot() if at_rows_line(r[3])) >= 2000  # object + buffer
    freed_before = allocsample.stats()["freed_samples"]
    del rows
    gc.collect()
    assert not any(at_rows_line(r[3]) for r in allocsample.snapshot())
    assert allocsample.stats()["freed_samples"] >= freed_before + 2000


def grow(chunks: int) -> bytearray:
    buf = bytearray()
    for _ in range(chunks):
        buf.extend(b"x" * 1000)  # GROW_LINE: a realloc of the same buffer each time
    return buf


GROW_LINE = grow.__code__.co_firstlineno + 3


def test_realloc_moves_the_sample_to_the_new_block() -> None:
    allocsample.start(interval_bytes=1, seed=3)
    buf = grow(300)
    mine = [r for r in allocsample.snapshot() if r[3] and r[3][0][1] == GROW_LINE and r[3][0][0] == __file__
            and r[0] >= len(buf)]
    assert len(mine) == 1, mine  # the grown buffer: one live sample, its final size
    assert mine[0][0] >= 300_000
    del buf
    assert not any(r[3] and r[3][0][1] == GROW_LINE and r[0] >= 300_000 for r in allocsample.snapshot())


def hoard_in_thread(n: int) -> None:
    KEPT.extend(make_rows(n, 4096))


def test_threads_are_sampled_with_their_own_stacks() -> None:
    allocsample.start(interval_bytes=8192, seed=4)
    threads = [threading.Thread(target=hoard_in_thread, args=(500,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    live = [r for r in allocsample.snapshot() if at_rows_line(r[3])]
    assert any(fr[2] == "hoard_in_thread" for r in live for fr in r[3])
    est = sum(r[1] for r in live)
    truth = 4 * 500 * (4096 + 57)  # ~1 000 samples: relative SD ~3 %, tolerance 15 %
    assert abs(est / truth - 1) < 0.15, (est, truth)


def test_chains_to_tracemalloc_and_restores_it() -> None:
    tracemalloc.start(1)
    allocsample.start(interval_bytes=4096, seed=5)
    rows = make_rows(500)
    assert any(at_rows_line(r[3]) for r in allocsample.snapshot())
    traced = tracemalloc.get_traced_memory()[0]
    assert traced >= 500 * 1024  # tracemalloc, below us in the chain, still sees everything
    assert allocsample.stop() is True  # ours was on top: tracemalloc's hooks are back
    more = make_rows(500)
    assert tracemalloc.get_traced_memory()[0] >= traced + 500 * 1024
    tracemalloc.stop()
    del rows, more


def test_a_hook_installed_later_keeps_ours_in_the_chain_passing_through(capfd: pytest.CaptureFixture) -> None:
    pymalloc_in_use = pymalloc_stats_shown(capfd)
    allocsample.start(interval_bytes=4096, seed=6)
    tracemalloc.start(1)  # on top of ours
    assert allocsample.stop() is False and not allocsample.is_running()
    rows = make_rows(200)
    assert tracemalloc.get_traced_memory()[0] >= 200 * 1024
    tracemalloc.stop()  # puts our (passing-through) hooks back
    allocsample.start(interval_bytes=4096, seed=7)
    more = make_rows(500)
    assert any(at_rows_line(r[3]) for r in allocsample.snapshot())
    assert allocsample.stop() is True
    del rows, more
    assert pymalloc_stats_shown(capfd) or not pymalloc_in_use  # the pass-through layer was skipped


def pymalloc_stats_shown(capfd: pytest.CaptureFixture) -> bool:
    """CPython prints pymalloc's statistics only while the OBJ allocator is pymalloc itself."""
    sys._debugmallocstats()
    return "arenas allocated total" in capfd.readouterr().err


def test_stop_restores_the_original_allocator(capfd: pytest.CaptureFixture) -> None:
    if not pymalloc_stats_shown(capfd):
        pytest.skip("this Python does not use pymalloc")
    allocsample.start()
    assert not pymalloc_stats_shown(capfd)
    allocsample.stop()
    assert pymalloc_stats_shown(capfd)


def deep(n: int, out: list) -> None:
    if n:
        deep(n - 1, out)
        return
    for i in range(300):
        try:
            raise KeyError(i)  # tracebacks materialise frame objects inside allocations
        except KeyError as exc:
            out.append((exc.args[0], sys._getframe(1).f_code.co_name, [j for j in range(i % 7)]))
        gen = (x * 2 for x in range(3))  # generator frames (incomplete while being created)
        out.append(sum(gen))


def test_allocations_while_capturing_pass_through_and_state_is_kept() -> None:
    assert gc.isenabled()
    allocsample.start(interval_bytes=1, max_frames=8, seed=8)  # sample everything, shallow stacks
    out: list = []
    deep(60, out)
    cycles = []
    for _ in range(2000):  # cyclic garbage: the collector must still run normally around samples
        a: list = []
        a.append(a)
        cycles.append(len(a))
    snap = allocsample.snapshot()
    stats = allocsample.stats()
    assert allocsample.stop() is True
    assert gc.isenabled() and sys.exc_info() == (None, None, None)
    assert [o for o in out if isinstance(o, tuple)][:3] == [(0, "deep", []), (1, "deep", [0]), (2, "deep", [0, 1])]
    assert stats["samples"] > 5000 and stats["skipped"] == 0
    assert snap and max(len(r[3]) for r in snap) <= 8


def hoard(n: int = 10) -> int:
    """A tool that keeps what it allocates."""
    KEPT.extend(make_rows(n, 2048))
    return len(KEPT)


async def ahoard(n: int = 10) -> int:
    return hoard(n)


def test_collector_profile_is_labelled_with_the_tool() -> None:
    pytest.importorskip("mcp")
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("t")
    server.tool()(ahoard)
    collector = SampledCollector(interval_bytes=16384, seed=9)
    collector.start()
    try:
        asyncio.run(ahoard(2000))
        profile = collector.snapshot(tools=True)
        allocated = collector.allocated(tools=True)
    finally:
        collector.stop()
    assert not allocsample.is_running()
    assert profile.sample_types == [INUSE_SPACE, INUSE_OBJECTS]
    meta = profile.metadata
    assert meta["collector"] == "sampled" and meta["values"] == "estimates" and meta["interval_bytes"] == 16384
    assert "cost_note" in meta and meta["samples_taken"] > 0
    by_tool = sum(s.values[0] for s in profile.samples if s.label(L.TOOL) == "ahoard")
    truth = 2000 * (2048 + 57)  # ~250 samples: relative SD ~6 %, tolerance 25 %
    assert abs(by_tool / truth - 1) < 0.25, (by_tool, truth)
    assert meta["attributed_bytes"] >= by_tool * 0.99
    assert sum(s.values[0] for s in allocated.samples if s.label(L.TOOL) == "ahoard") >= by_tool * 0.99
    frames = {f.function for s, fr in profile.iter_stacks() for f in fr}
    assert "make_rows" in frames and "hoard" in frames  # real function names from the code objects
    assert not any("/mcpprof/" in fr[-1].file and "/tests/" not in fr[-1].file for _, fr in profile.iter_stacks())


def test_memory_snapshot_api_uses_sampling_when_it_runs_here() -> None:
    import mcpprof

    allocsample.start(interval_bytes=8192, seed=10)
    rows = make_rows(1000)
    profile = mcpprof.memory_snapshot()
    assert profile.metadata["collector"] == "sampled" and profile.total(INUSE_SPACE) > 500 * 1024
    assert "rss" in profile.extras["process_memory"]["figures"]
    del rows
