"""Sampled allocations: estimated live (in-use) bytes and objects per stack, grouped by MCP tool.

Backed by the optional C extension ``mcpprof.collect._allocsample`` (built at install time where a C
compiler exists): it wraps CPython's MEM and OBJ allocators and samples one allocation per
``interval_bytes`` allocated on average (exponential intervals, as tcmalloc, Go and ddtrace's
memalloc do), keeping the full Python stack of each sample. An allocation of ``s`` bytes is sampled
with probability ``p = 1 - exp(-s / interval)`` and stands for ``s / p`` bytes and ``1 / p``
objects, so totals are unbiased *estimates*: a site holding ``B`` live bytes is typically seen
within about ``sqrt(interval / B)`` relative error. Sites holding much less than one interval of
live memory are often missed entirely. Allocations through ``PyMem_RawMalloc`` or ``malloc``
directly (NumPy buffers, most C libraries) are not seen, as with tracemalloc's default domains.

Runs inside the server, stdlib only, nothing at import. :func:`unavailable` says why the
extension cannot be used; callers then fall back to tracemalloc and say so in one line.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..model import labels as L
from ..model.profile import ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE, Frame, Profile, ProfileBuilder
from .tracemalloc_collector import ToolRanges, _module_of, _own_file, site_frame, tool_of, tool_ranges

DEFAULT_INTERVAL = 256 * 1024
DEFAULT_MAX_FRAMES = 128
#: Measured by benchmarks/memory_overhead.py (paired ratios of server CPU per call against no
#: profiler, bundled example server, echo + alloc over stdio); see docs/tasks/leaks.rst.
COST_NOTE = ("sampled allocations (estimates, one sample per interval of bytes): 1.12-1.26x server CPU "
             "per call at 256 KiB on the example server (medians of paired ratios, three runs of "
             "benchmarks/memory_overhead.py on a shared VM; the agent alone 1.04-1.10x), against 2.1-3.7x "
             "for tracemalloc and memray; it sees only allocations made after it started")
SampledFrames = Tuple[Tuple[str, int, str], ...]  # (file, line, function), innermost first


def unavailable() -> Optional[str]:
    """None when the extension imports in this interpreter, else a one-line reason."""
    try:
        from . import _allocsample  # noqa: F401
    except ImportError as exc:
        return (f"the sampled backend's C extension is not built for this Python ({exc}); "
                "reinstall mcpprof where a C compiler is available")
    return None


def _module() -> Any:
    from . import _allocsample

    return _allocsample


def running() -> bool:
    """Allocation sampling runs in this process (the extension is built and started)."""
    return unavailable() is None and _module().is_running()


def _running_module() -> Any:
    if not running():
        raise RuntimeError("allocation sampling is not running: start the collector first")
    return _module()


def _raw(frames: SampledFrames) -> Tuple[Tuple[str, int], ...]:
    return tuple((f, ln) for f, ln, _ in frames)


def _skip(frames: SampledFrames) -> bool:
    """mcpprof's own allocations (its site is mcpprof's code, the import machinery or unknown)."""
    if not frames:
        return False
    return _own_file(frames[0][0]) or _own_file(site_frame(_raw(frames))[0])


def _stack(frames: SampledFrames) -> List[Frame]:
    return [Frame(fn, f, ln, _module_of(f)) for f, ln, fn in reversed(frames)] or [Frame("<no Python frame>")]


def _build(rows: Sequence[Tuple[SampledFrames, float, float]], sample_types: list, ranges: Optional[ToolRanges],
           metadata: Dict[str, Any]) -> Profile:
    """One profile from (frames, estimated bytes, estimated objects) rows, labelled by tool."""
    builder = ProfileBuilder(sample_types, metadata)
    attributed = total = 0.0
    tools: Dict[SampledFrames, str] = {}
    for frames, nbytes, count in rows:
        tool = tools.get(frames)
        if tool is None:
            tool = tools[frames] = tool_of(_raw(frames), ranges) if ranges else ""
        labels = {L.METHOD: "tools/call", L.TOOL: tool} if tool else None
        builder.add(_stack(frames), (round(nbytes), max(1, round(count))), labels)
        total += nbytes
        attributed += nbytes if tool else 0.0
    builder.metadata["attributed_bytes"] = round(attributed)
    builder.metadata["estimated_bytes_in_profile"] = round(total)
    return builder.build()


class SampledCollector:
    """Start/stop allocation sampling and turn its snapshots into profiles.

    ``interval_bytes``: mean bytes between samples (smaller: more precise, costlier);
    ``max_frames``: Python frames kept per sample (the cost is paid per sample only, so deep
    stacks are cheap and attribute allocations to the tool whose function is on the stack)."""

    name = "sampled"

    def __init__(self, interval_bytes: int = DEFAULT_INTERVAL, max_frames: int = DEFAULT_MAX_FRAMES,
                 seed: Optional[int] = None, **_: Any):
        self.interval_bytes = max(1, int(interval_bytes))
        self.max_frames = max(1, min(512, int(max_frames)))
        self.seed = seed
        self.started_here = False
        self.start_ns = 0

    def start(self) -> None:
        """Start sampling (RuntimeError with the reason if the extension is missing)."""
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        mod = _module()
        if not mod.is_running():
            mod.start(interval_bytes=self.interval_bytes, max_frames=self.max_frames, seed=self.seed)
            self.started_here = True
        self.start_ns = time.time_ns()

    def stop(self) -> None:
        if self.started_here and unavailable() is None:
            _module().stop()
        self.started_here = False

    def _metadata(self, kind: str) -> Dict[str, Any]:
        stats = dict(_module().stats())
        return {
            "collector": "sampled", "sampling": "poisson-bytes", "values": "estimates",
            "interval_bytes": int(stats.get("interval_bytes") or self.interval_bytes),
            "max_frames": stats.get("max_frames", self.max_frames), "view": kind, "pid": os.getpid(),
            "samples_taken": stats.get("samples", 0), "live_samples": stats.get("live", 0),
            "bytes_seen": stats.get("bytes_seen", 0),
            "samples_skipped": stats.get("skipped", 0), "sampler_memory": stats.get("own_bytes", 0),
            "estimate_note": ("values are estimates: each sampled allocation of s bytes stands for "
                              "s / (1 - exp(-s / interval_bytes)) bytes"),
            "tracing_since_ns": self.start_ns, "snapshot_ns": time.time_ns(), "cost_note": COST_NOTE,
        }

    def snapshot(self, collect: bool = True, tools: bool = True) -> Profile:
        """Estimated in-use bytes/objects per stack now (``gc.collect()`` first unless ``collect=False``)."""
        mod = _running_module()
        if collect:
            gc.collect()
        t0 = time.perf_counter()
        rows = [(frames, wb, wc) for _size, wb, wc, frames in mod.snapshot() if not _skip(frames)]
        profile = _build(rows, [INUSE_SPACE, INUSE_OBJECTS], tool_ranges() if tools else None,
                         self._metadata("inuse"))
        profile.metadata["snapshot_s"] = round(time.perf_counter() - t0, 4)
        return profile

    def allocated(self, tools: bool = True) -> Profile:
        """Estimated bytes/objects allocated per stack since start (freed or not)."""
        mod = _running_module()
        rows = [(frames, nb, nc) for frames, _n, nb, nc in mod.allocated() if not _skip(frames)]
        return _build(rows, [ALLOC_SPACE, ALLOC_OBJECTS], tool_ranges() if tools else None, self._metadata("alloc"))


__all__ = ["SampledCollector", "unavailable", "running", "DEFAULT_INTERVAL", "DEFAULT_MAX_FRAMES", "COST_NOTE"]
