"""The memory job with the ``sampled`` backend, end to end: the bundled example server launched
under the agent, its ``alloc`` tool driven with a seeded leak, the sampled profile attributed to the
tool; and the fallback to tracemalloc where the server cannot load the C extension."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mcpprof.jobs.memory import MemoryJob, run_memory_job, top_sites
from mcpprof.model import INUSE_SPACE
from mcpprof.model import labels as L

pytest.importorskip("mcp")
pytest.importorskip("mcpprof.collect._allocsample", reason="C extension not built")

CHUNK_BYTES = 1025 + 57  # bytearray(1024): its buffer (size + 1) and the object, as tracemalloc counts them


def job(tmp_path: Path, **kw: object) -> MemoryJob:
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"alloc": {"kib": 16, "keep": 16}}))  # every call leaks 16 chunks
    options = dict(command=None, backend="sampled", seconds=2.0, warmup_calls=20, tools=["alloc"],
                   args_file=str(args), concurrency=4, interval=64 * 1024, out_dir=str(tmp_path / "out"))
    options.update(kw)
    return MemoryJob(**options)  # type: ignore[arg-type]


@pytest.mark.slow
def test_sampled_profile_attributes_the_leak_to_the_alloc_tool(tmp_path: Path) -> None:
    result = run_memory_job(job(tmp_path))
    profile = result.profile
    meta = profile.metadata
    assert meta["collector"] == "sampled" and meta["values"] == "estimates" and "backend_fallback" not in meta
    assert meta["interval_bytes"] == 64 * 1024 and meta["samples_taken"] > 0 and "cost_note" in meta
    calls = result.drive.calls
    truth = calls * 16 * CHUNK_BYTES  # retained during the measured window (warm-up calls were not sampled)
    leak = sum(s.values[0] for s, frames in profile.iter_stacks()
               if any(f.function == "make_chunks" for f in frames))
    by_alloc = sum(s.values[0] for s in profile.samples if s.label(L.TOOL) == "alloc")
    # >= 150 samples on the leak for calls >= 600 (relative SD <= 8 %): tolerance 40 %
    assert calls >= 100 and abs(leak / truth - 1) < 0.4, (leak, truth, calls)
    assert by_alloc >= 0.95 * leak, (by_alloc, leak)  # the tool function is on every sampled stack
    top = top_sites(profile, "bytes")[0]
    assert top["tool"] == "alloc" and "make_chunks" in top["site"], top
    assert profile.total(INUSE_SPACE) < 2 * truth
    assert (Path(result.out_dir) / "memory.mcpprof").is_file()
    assert result.report["figures"]["rss"] > 0 and "pymalloc_arenas" in result.report["figures"]
    # what was allocated while the workload ran (freed or not): every call makes 16 chunks, kept or not
    allocated = result.allocated
    assert allocated is not None and allocated.metadata["view"] == "alloc"
    made = sum(s.values[0] for s, frames in allocated.iter_stacks()
               if s.label(L.TOOL) == "alloc" and any(f.function == "make_chunks" for f in frames))
    assert abs(made / truth - 1) < 0.4, (made, truth)
    assert any(r["tool"] == "alloc" and "make_chunks" in r["site"] for r in top_sites(allocated, "bytes", limit=5))
    assert (Path(result.out_dir) / "allocated.mcpprof").is_file() and (Path(result.out_dir) / "allocated.html").is_file()


BLOCKED = ("import sys, runpy; sys.modules['mcpprof.collect._allocsample'] = None; "
           "runpy.run_module('mcpprof.examples.server', run_name='__main__')")


@pytest.mark.slow
def test_a_server_without_the_extension_falls_back_to_tracemalloc(tmp_path: Path) -> None:
    notes: list = []
    result = run_memory_job(job(tmp_path, command=[sys.executable, "-c", BLOCKED], seconds=1.0, nframe=4),
                            progress=notes.append)
    meta = result.profile.metadata
    assert meta["collector"] == "tracemalloc"
    assert meta["backend_fallback"].startswith("sampled -> tracemalloc") and "C extension" in meta["backend_fallback"]
    assert any("falling back to tracemalloc" in n for n in notes), notes
    assert sum(s.values[0] for s in result.profile.samples if s.label(L.TOOL) == "alloc") > 0
