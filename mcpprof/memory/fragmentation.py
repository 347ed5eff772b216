"""Process memory and fragmentation of the *current* process, each figure with its definition.

"Fragmentation" here means exactly: **memory the allocators hold but no live object uses**,

    heap_used = pymalloc_used + glibc_in_use + glibc_mmapped      (bytes handed out)
    heap_free = (pymalloc_arenas - pymalloc_used) + glibc_free    (bytes held, not handed out)
    fragmentation = heap_free / (heap_used + heap_free)

with its two parts ``pymalloc_free_ratio = 1 - pymalloc_used / pymalloc_arenas`` (free blocks and
pools inside arenas that a single live block keeps mapped) and ``glibc_free_ratio = glibc_free /
glibc_arena``. ``rss - traced`` is *not* fragmentation (it also holds code, libraries, stacks and
allocations made before tracing). Whether held memory is reused is what :func:`reuse_test`
measures. Stdlib only; ``malloc_trim`` runs only when asked (``trim=True``).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

from . import allocators
from .procmem import DEFINITIONS as PROC_DEFINITIONS
from .procmem import process_memory

DEFINITIONS: Dict[str, str] = {
    **PROC_DEFINITIONS,
    "traced": "bytes of live allocations tracemalloc traces (only allocations made since it started)",
    "gc_objects": "objects tracked by the cyclic garbage collector (containers; not str/bytes/int)",
    "gc_gen0": "allocations minus deallocations of tracked objects since the last collection",
    "pymalloc_arenas": "bytes of the arenas pymalloc has mapped (arenas x arena size)",
    "pymalloc_used": "bytes in pymalloc blocks handed out to live small objects (<= 512 B)",
    "pymalloc_free": "pymalloc_arenas - pymalloc_used: free blocks and empty pools inside mapped arenas",
    "glibc_arena": "bytes glibc obtained with brk/thread heaps (mallinfo2.arena)",
    "glibc_in_use": "bytes in chunks glibc handed out and not yet freed (mallinfo2.uordblks)",
    "glibc_mmapped": "bytes in large chunks glibc mapped one by one (mallinfo2.hblkhd)",
    "glibc_free": "bytes in free chunks glibc keeps (mallinfo2.fordblks); malloc_trim returns whole pages",
    "glibc_top_releasable": "the free chunk at the top of the main heap (mallinfo2.keepcost)",
    "heap_used": "pymalloc_used + glibc_in_use + glibc_mmapped",
    "heap_free": "pymalloc_free + glibc_free: memory the allocators hold but no live object uses",
    "fragmentation": "heap_free / (heap_used + heap_free)",
    "pymalloc_free_ratio": "pymalloc_free / pymalloc_arenas (1 - arena utilisation)",
    "glibc_free_ratio": "glibc_free / glibc_arena",
    "non_heap": "rss - (pymalloc_arenas + glibc_arena + glibc_mmapped): code, libraries, stacks, "
                "interpreter state (not fragmentation)",
    "trim_released": "RSS given back by gc.collect() + malloc_trim(0) (only when trim was requested)",
}


@dataclass
class MemoryReport:
    """Figures (bytes, counts or ratios) with their definitions; ``unavailable`` says why a group
    of figures is missing (another allocator, tracemalloc tracing, ...)."""

    figures: Dict[str, Any] = field(default_factory=dict)
    unavailable: Dict[str, str] = field(default_factory=dict)
    pid: int = 0
    time_ns: int = 0

    def __getitem__(self, key: str) -> Any:
        return self.figures[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.figures.get(key, default)

    def to_dict(self) -> Dict[str, Any]:
        return {"pid": self.pid, "time_ns": self.time_ns, "figures": dict(self.figures),
                "unavailable": dict(self.unavailable),
                "definitions": {k: DEFINITIONS[k] for k in self.figures if k in DEFINITIONS}}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "MemoryReport":
        return cls(dict(data.get("figures") or {}), dict(data.get("unavailable") or {}),
                   int(data.get("pid") or 0), int(data.get("time_ns") or 0))

    def __repr__(self) -> str:
        frag = self.figures.get("fragmentation")
        rss = self.figures.get("rss")
        return f"<MemoryReport pid={self.pid} rss={rss} fragmentation={frag}>"


def measure(trim: bool = False, collect: bool = True, count_objects: bool = True) -> MemoryReport:
    """Read every figure of this process now. ``collect``: ``gc.collect()`` first (so uncollected
    cycles do not count as used); ``trim``: then ``malloc_trim(0)`` and report what it released."""
    import os

    report = MemoryReport(pid=os.getpid(), time_ns=time.time_ns())
    f = report.figures
    if collect:
        gc.collect()
    if trim:
        before = process_memory().get("rss", 0)
        if allocators.malloc_trim(0) is None:
            report.unavailable["trim"] = allocators.glibc_unavailable() or "malloc_trim unavailable"
        f["trim_released"] = max(0, before - process_memory().get("rss", 0))
    f.update(process_memory())
    if tracemalloc.is_tracing():
        f["traced"] = tracemalloc.get_traced_memory()[0]
    f["gc_gen0"] = gc.get_count()[0]
    if count_objects:
        f["gc_objects"] = len(gc.get_objects())
    _add_pymalloc(report)
    _add_glibc(report)
    _derive(f)
    return report


def _add_pymalloc(report: MemoryReport) -> None:
    reason = allocators.pymalloc_unavailable()
    stats = None if reason else allocators.pymalloc_stats()
    if not stats or "bytes_in_arenas" not in stats:
        report.unavailable["pymalloc"] = reason or "no pymalloc section in sys._debugmallocstats()"
        return
    f = report.figures
    f["pymalloc_arenas"] = stats["bytes_in_arenas"]
    f["pymalloc_used"] = stats.get("bytes_allocated_blocks", 0)
    f["pymalloc_free"] = f["pymalloc_arenas"] - f["pymalloc_used"]


def _add_glibc(report: MemoryReport) -> None:
    info = allocators.mallinfo2()
    if info is None:
        report.unavailable["glibc"] = allocators.glibc_unavailable() or "mallinfo2 unavailable"
        return
    f = report.figures
    f.update(glibc_arena=info["arena"], glibc_in_use=info["uordblks"], glibc_mmapped=info["hblkhd"],
             glibc_free=info["fordblks"], glibc_top_releasable=info["keepcost"])


def _derive(f: Dict[str, Any]) -> None:
    has_py, has_c = "pymalloc_arenas" in f, "glibc_arena" in f
    if not (has_py or has_c):
        return
    used = f.get("pymalloc_used", 0) + f.get("glibc_in_use", 0) + f.get("glibc_mmapped", 0)
    free = f.get("pymalloc_free", 0) + f.get("glibc_free", 0)
    f["heap_used"], f["heap_free"] = used, free
    f["fragmentation"] = round(free / (used + free), 4) if used + free else 0.0
    if has_py and f["pymalloc_arenas"]:
        f["pymalloc_free_ratio"] = round(f["pymalloc_free"] / f["pymalloc_arenas"], 4)
    if has_c and f["glibc_arena"]:
        f["glibc_free_ratio"] = round(f["glibc_free"] / f["glibc_arena"], 4)
    if has_py and has_c and "rss" in f:
        f["non_heap"] = f["rss"] - (f["pymalloc_arenas"] + f["glibc_arena"] + f["glibc_mmapped"])


# -- the reuse test ------------------------------------------------------------------------------

LIVE_KEYS = ("heap_used", "gc_objects", "traced")


@dataclass
class ReuseResult:
    """Readings before the workload and after each repetition, and what they mean.

    ``verdict``: ``reused`` (live memory back near base, a repetition adds far less RSS than the
    first run: the allocators keep memory and reuse it), ``growing`` (live memory grows with every
    repetition: objects stay alive), ``not retained`` (RSS returned too) or ``unclear``."""

    readings: List[MemoryReport]
    verdict: str
    explanation: str

    def to_dict(self) -> Dict[str, Any]:
        return {"verdict": self.verdict, "explanation": self.explanation,
                "readings": [r.to_dict() for r in self.readings]}


def reuse_test(workload: Callable[[], Any], repeats: int = 3, tolerance: float = 0.25) -> ReuseResult:
    """Run ``workload`` ``repeats`` times in this process, reading memory (after ``gc.collect()``)
    before and after each run; tell held-and-reused memory from growth of live memory."""
    readings = [measure(count_objects=True)]
    for _ in range(max(2, repeats)):
        workload()
        readings.append(measure(count_objects=True))
    return ReuseResult(readings, *judge_reuse(readings, tolerance))


def judge_reuse(readings: List[MemoryReport], tolerance: float = 0.25) -> "tuple[str, str]":
    base, first, last = readings[0].figures, readings[1].figures, readings[-1].figures
    key = "rss_anon" if "rss_anon" in base else "rss"
    first_rss = first.get(key, 0) - base.get(key, 0)
    later_rss = last.get(key, 0) - first.get(key, 0)
    live = next((k for k in LIVE_KEYS if k in base and k in last), None)
    live_growth = [r.figures.get(live, 0) - readings[i].figures.get(live, 0)
                   for i, r in enumerate(readings[1:])] if live else []
    steady = live_growth[1:] if len(live_growth) > 1 else live_growth
    mib = 1 << 20
    if live and steady and all(g > 64 * 1024 for g in steady) and min(steady) > 0.5 * max(steady):
        return "growing", (f"live memory ({live}) grew by about {steady[-1] / mib:.2f} MiB with every "
                           "repetition: objects stay alive")
    if first_rss <= 256 * 1024:
        return "not retained", f"the first run left {first_rss / mib:.2f} MiB of {key}: nothing held"
    if later_rss <= tolerance * first_rss:
        return "reused", (f"the first run left {first_rss / mib:.2f} MiB of {key}, the next "
                          f"{len(readings) - 2} together {later_rss / mib:.2f} MiB while live memory stayed flat: "
                          "the allocators keep freed memory and reuse it (retention, not a leak)")
    return "unclear", (f"{key} grew {first_rss / mib:.2f} MiB in the first run and {later_rss / mib:.2f} MiB "
                       "in the repetitions without growth of live memory")
