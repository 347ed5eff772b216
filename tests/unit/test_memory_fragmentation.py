"""Process memory, allocator readers and the fragmentation figures, read from this real process."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc

import pytest

import mcpprof
from mcpprof.errors import TargetError
from mcpprof.memory import allocators
from mcpprof.memory.fragmentation import DEFINITIONS, MemoryReport, _derive, judge_reuse
from mcpprof.memory.procmem import process_memory


def test_process_memory_of_this_process_has_rss_uss_pss() -> None:
    mem = process_memory()
    assert mem["rss"] > 1 << 20 and 0 < mem["rss_anon"] <= mem["rss"]
    assert 0 < mem["uss"] <= mem["rss"] and 0 < mem["pss"] <= mem["rss"]


def test_process_memory_of_a_dead_pid_is_a_one_line_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(TargetError, match=f"no process with pid {proc.pid}"):
        process_memory(proc.pid)


def test_fragmentation_reads_pymalloc_and_glibc_with_definitions() -> None:
    assert not tracemalloc.is_tracing()
    report = mcpprof.fragmentation()
    f = report.figures
    for key in ("rss", "uss", "gc_objects", "pymalloc_arenas", "pymalloc_used", "glibc_in_use", "glibc_free",
                "heap_used", "heap_free", "fragmentation", "non_heap"):
        assert key in f, key
        assert key in DEFINITIONS
    assert f["pymalloc_used"] <= f["pymalloc_arenas"]
    assert f["heap_free"] == f["pymalloc_free"] + f["glibc_free"]
    assert 0.0 <= f["fragmentation"] < 1.0
    assert set(report.to_dict()["definitions"]) == set(f) & set(DEFINITIONS)


def test_pymalloc_is_reported_unavailable_while_tracemalloc_traces() -> None:
    tracemalloc.start(1)
    try:
        report = mcpprof.fragmentation()
        assert "pymalloc_arenas" not in report.figures
        assert "tracemalloc" in report.unavailable["pymalloc"]
        assert report.figures["traced"] > 0
    finally:
        tracemalloc.stop()


def test_stderr_capture_restores_fd2_and_parses() -> None:
    before = os.fstat(2)
    text = allocators.debugmallocstats_text()
    assert os.fstat(2).st_ino == before.st_ino
    stats = allocators.parse_pymalloc(text)
    assert stats is not None and stats["arena_size"] > 0 and stats["bytes_in_arenas"] > 0


def test_trim_only_on_request_reports_what_it_released() -> None:
    assert "trim_released" not in mcpprof.fragmentation().figures
    junk = [bytearray(200) for _ in range(50_000)]
    del junk
    gc.collect()
    assert mcpprof.fragmentation(trim=True).figures["trim_released"] >= 0


def test_malloc_info_summary_and_allocator_name() -> None:
    assert allocators.c_allocator().startswith("glibc")
    summary = allocators.malloc_info_summary()
    assert summary is not None and summary["heaps"] >= 1 and summary["system_current"] > 0


def test_fragmentation_formula() -> None:
    f = {"rss": 100, "pymalloc_arenas": 40, "pymalloc_used": 30, "pymalloc_free": 10, "glibc_arena": 20,
         "glibc_in_use": 15, "glibc_mmapped": 5, "glibc_free": 5}
    _derive(f)
    assert f["heap_used"] == 50 and f["heap_free"] == 15
    assert f["fragmentation"] == round(15 / 65, 4)
    assert f["pymalloc_free_ratio"] == 0.25 and f["glibc_free_ratio"] == 0.25
    assert f["non_heap"] == 100 - (40 + 20 + 5)


def _reading(rss: int, heap_used: int) -> MemoryReport:
    return MemoryReport({"rss_anon": rss, "heap_used": heap_used})


def test_reuse_verdicts() -> None:
    mib = 1 << 20
    held = [_reading(50 * mib, 30 * mib), _reading(60 * mib, 30 * mib), _reading(60 * mib, 30 * mib),
            _reading(61 * mib, 30 * mib)]
    assert judge_reuse(held)[0] == "reused"
    growing = [_reading(50 * mib, 30 * mib), _reading(55 * mib, 35 * mib), _reading(60 * mib, 40 * mib),
               _reading(65 * mib, 45 * mib)]
    assert judge_reuse(growing)[0] == "growing"
    flat = [_reading(50 * mib, 30 * mib)] * 3
    assert judge_reuse(flat)[0] == "not retained"


def test_fragmentation_of_another_pid_has_proc_figures_only() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        report = mcpprof.fragmentation(proc.pid)
        assert report.figures["rss"] > 0 and "pymalloc_arenas" not in report.figures
        assert "allocators" in report.unavailable
    finally:
        proc.kill()
        proc.wait()
