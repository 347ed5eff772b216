"""tracemalloc collector: live (in-use) bytes and objects per allocation stack, grouped by MCP tool.

Runs inside the server, stdlib only, nothing at import. Start it after warm-up (imports and first
calls would otherwise fill its tables: 45 MiB and 24 s diffs when started at process start, research
§2.4). Its cost is tracemalloc's: it hooks *every* allocation, so a request slows down by ~2.4-2.6x
at 1 frame and 16-18x at 25 frames over stdio (research §2.1), growing with the number of frames.
CPython 3.11 has no sampling hook in the standard library (a per-allocation callback would have to
be C: ``PyMem_SetAllocator``), so this collector cannot be made cheap by sampling; see
``benchmarks/memory_overhead.py`` for the figures measured here.

Per-tool grouping: a trace is labelled with the MCP tool whose registered function (code lines of
the tool the SDK holds) appears in its traceback; with a shallow traceback only allocations made in
or near the tool body are attributed, the rest stays unlabelled (``attributed`` in the metadata
says how much was).
"""

from __future__ import annotations

import ast
import gc
import os
import time
import tracemalloc
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..model import labels as L
from ..model.profile import INUSE_OBJECTS, INUSE_SPACE, Frame, Profile, ProfileBuilder

COST_NOTE = ("tracemalloc traces every allocation: about 2.4-2.6x slower requests at 1 frame and "
             "16-18x at 25 frames over stdio (research/memory-profilers.md section 2.1); it sees only "
             "allocations made after it started")
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RawFrames = Tuple[Tuple[str, int], ...]  # innermost first, as tracemalloc stores them


_EXAMPLES_DIR = os.path.join(_PKG_DIR, "examples") + os.sep  # the bundled example server is not mcpprof's own


def _own_file(filename: str) -> bool:
    return ((filename.startswith(_PKG_DIR + os.sep) and not filename.startswith(_EXAMPLES_DIR))
            or filename == tracemalloc.__file__
            or filename.startswith("<frozen importlib") or filename == "<unknown>")


def site_frame(frames: RawFrames) -> Tuple[str, int]:
    """The allocation site: the innermost frame in a real source file (code generated with ``exec``,
    such as a dataclass's ``__init__``, shows as ``<string>``: its caller is the site)."""
    for frame in frames:
        if not frame[0].startswith("<"):
            return frame
    return frames[0] if frames else ("<unknown>", 0)


def grouped_traces(snapshot: "tracemalloc.Snapshot", skip_own: bool = True) -> Dict[RawFrames, List[int]]:
    """Traces grouped by traceback: {frames innermost first: [bytes, count]}. Traces whose site
    (:func:`site_frame`) is mcpprof's own code, tracemalloc or the import machinery are left out."""
    out: Dict[RawFrames, List[int]] = {}
    for trace in snapshot.traces._traces:  # (domain, size, frames innermost first, total_nframe)
        frames = trace[2]
        if skip_own and frames and (_own_file(frames[0][0]) or _own_file(site_frame(frames)[0])):
            continue
        acc = out.get(frames)
        if acc is None:
            out[frames] = [trace[1], 1]
        else:
            acc[0] += trace[1]
            acc[1] += 1
    return out


# -- function names for (file, line) ------------------------------------------------------------

_scopes: Dict[str, List[Tuple[int, int, str]]] = {}


def _file_scopes(filename: str) -> List[Tuple[int, int, str]]:
    scopes = _scopes.get(filename)
    if scopes is not None:
        return scopes
    scopes = []
    try:
        with open(filename, "rb") as fh:
            tree = ast.parse(fh.read(), filename)

        def visit(node: Any, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    scopes.append((start, child.end_lineno or child.lineno, name))
                    visit(child, name + ".")
                else:
                    visit(child, prefix)

        visit(tree, "")
    except (OSError, SyntaxError, ValueError):
        pass
    _scopes[filename] = scopes
    return scopes


def function_at(filename: str, line: int) -> str:
    """The qualified name of the innermost function or class around ``filename:line``."""
    best, size = "<module>", None
    for start, end, name in _file_scopes(filename):
        if start <= line <= end and (size is None or end - start < size):
            best, size = name, end - start
    return best


def _module_of(filename: str) -> str:
    base = os.path.basename(filename)
    return base[:-3] if base.endswith(".py") else base


# -- tools -----------------------------------------------------------------------------------------

ToolRanges = Dict[str, List[Tuple[int, int, str]]]  # file -> [(first line, last line, tool name)]


def tool_ranges(servers: Optional[Iterable[Any]] = None) -> ToolRanges:
    """The source lines of every tool function registered with an MCP server in this process
    (``MCPServer`` / FastMCP tool managers). Walks the gc heap once when ``servers`` is not given."""
    if servers is None:
        servers = [o for o in gc.get_objects() if type(o).__name__ in ("MCPServer", "FastMCP")]
    out: ToolRanges = {}
    for server in servers:
        tools = getattr(getattr(server, "_tool_manager", None), "_tools", None)
        if not isinstance(tools, dict):
            continue
        for name, tool in tools.items():
            fn = getattr(tool, "fn", None)
            fn = getattr(fn, "__wrapped__", fn)
            code = getattr(fn, "__code__", None)
            if code is None:
                continue
            lines = [ln for _, _, ln in code.co_lines() if ln is not None] or [code.co_firstlineno]
            out.setdefault(code.co_filename, []).append((code.co_firstlineno, max(lines), str(name)))
    return out


def tool_of(frames: RawFrames, ranges: ToolRanges) -> str:
    """The tool whose function holds the innermost matching frame, or ``""``."""
    for filename, line in frames:
        for first, last, name in ranges.get(filename, ()):
            if first <= line <= last:
                return name
    return ""


def to_profile(groups: Dict[RawFrames, List[int]], ranges: Optional[ToolRanges] = None,
               metadata: Optional[Dict[str, Any]] = None) -> Profile:
    """A profile with ``inuse_space/bytes`` and ``inuse_objects/count`` per stack (root first),
    labelled ``tools/call <tool>`` where a tool function is on the traceback."""
    builder = ProfileBuilder([INUSE_SPACE, INUSE_OBJECTS], metadata)
    attributed = total = 0
    for frames, (size, count) in groups.items():
        stack = [Frame(function_at(f, ln), f, ln, _module_of(f)) for f, ln in reversed(frames)]
        tool = tool_of(frames, ranges) if ranges else ""
        labels = {L.METHOD: "tools/call", L.TOOL: tool} if tool else None
        builder.add(stack or [Frame("<unknown>")], (size, count), labels)
        total += size
        attributed += size if tool else 0
    builder.metadata["attributed_bytes"] = attributed
    builder.metadata["traced_bytes_in_profile"] = total
    return builder.build()


class TracemallocCollector:
    """Start/stop tracemalloc and turn its snapshots into profiles.

    ``nframe``: frames kept per allocation (cost grows with it; 1 is the cheapest, deeper tracebacks
    attribute more allocations to tools). Stopping clears tracemalloc's traces only if this
    collector started it."""

    name = "tracemalloc"

    def __init__(self, nframe: int = 1, **_: Any):
        self.nframe = max(1, int(nframe))
        self.started_here = False
        self.start_ns = 0

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.nframe)
            self.started_here = True
        self.start_ns = time.time_ns()

    def stop(self) -> None:
        if self.started_here and tracemalloc.is_tracing():
            tracemalloc.stop()
        self.started_here = False

    def snapshot(self, collect: bool = True, tools: bool = True) -> Profile:
        """In-use bytes/objects per stack now (``gc.collect()`` first unless ``collect=False``)."""
        if not tracemalloc.is_tracing():
            raise RuntimeError("tracemalloc is not tracing: start the collector first")
        if collect:
            gc.collect()
        t0 = time.perf_counter()
        snap = tracemalloc.take_snapshot()
        traced, peak = tracemalloc.get_traced_memory()
        groups = grouped_traces(snap)
        metadata = {
            "collector": "tracemalloc", "nframe": tracemalloc.get_traceback_limit(), "pid": os.getpid(),
            "traced_bytes": traced, "traced_peak_bytes": peak,
            "tracemalloc_memory": tracemalloc.get_tracemalloc_memory(),
            "tracing_since_ns": self.start_ns, "snapshot_ns": time.time_ns(), "cost_note": COST_NOTE,
        }
        profile = to_profile(groups, tool_ranges() if tools else None, metadata)
        profile.metadata["snapshot_s"] = round(time.perf_counter() - t0, 4)
        return profile


def site_readings(collect: bool = True, limit: int = 0) -> Dict[str, Any]:
    """A compact, JSON-able reading for the leak detector: traced totals and every traceback's
    bytes and count (innermost frame first), after ``gc.collect()``."""
    if collect:
        gc.collect()
    traced = tracemalloc.get_traced_memory()[0]  # before the snapshot, which is traced itself
    snap = tracemalloc.take_snapshot()
    groups = grouped_traces(snap)
    del snap
    items: Sequence[Tuple[RawFrames, List[int]]] = sorted(groups.items(), key=lambda kv: -kv[1][0])
    if limit:
        items = items[:limit]
    return {"traced": traced,
            "sites": [[[list(f) for f in frames], v[0], v[1]] for frames, v in items]}
