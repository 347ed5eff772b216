"""Request spans as Chrome Trace Event JSON, for the Perfetto UI (ui.perfetto.dev) and chrome://tracing.

One complete (``"ph": "X"``) event per MCP request, named like the other views (``tools/call echo``),
with ``args`` holding the method, the target (``gen_ai.tool.name``, ...), the JSON-RPC request id,
the session id, the error kind and the request's CPU time when measured.

Concurrent requests overlap in time, and Perfetto drops or mis-nests overlapping events on one
track (research/formats-and-viewers.md §4). So every request goes on a *lane*: a synthetic thread
(small integer ``tid`` 1, 2, ...) chosen by greedy interval partitioning — requests in start
order, each on the lowest-numbered lane that is free strictly before it starts — so no two events
on one track ever overlap and the number of lanes is the peak concurrency. ``M`` metadata events
name the process and the lanes (``requests lane 1``) and fix their order.

The spans come from ``profile.extras["requests_spans"]`` (the agent's ring of the last 10 000
requests, :mod:`mcpprof.model.spans`); a merged profile's sources each become one process. A
profile without them falls back to the request table's slowest requests per tool (then the
process is named ``... (slowest requests only)``). Times are microseconds from the first span;
the epoch start is in ``otherData``.
"""

from __future__ import annotations

import heapq
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .._version import __version__
from ..model import Profile
from ..model import labels as L
from ..model.spans import EXTRA_KEY, Span, spans_from_extra

_TARGET_KEY_BY_METHOD = {"tools/call": L.TOOL, "prompts/get": L.PROMPT}


def assign_lanes(spans: Sequence[Tuple[int, int]]) -> List[int]:
    """Lane (0, 1, ...) for each ``(start, duration)``: the lowest-numbered lane whose last span
    ended strictly before this one starts; spans are taken in start order (longest first on ties)."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], -spans[i][1], i))
    lanes = [0] * len(spans)
    busy: List[Tuple[int, int]] = []  # (end, lane) of lanes in use
    free: List[int] = []  # lane numbers, a heap
    count = 0
    for i in order:
        start, duration = spans[i]
        while busy and busy[0][0] < start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, count = count, count + 1
        lanes[i] = lane
        heapq.heappush(busy, (start + max(duration, 0), lane))
    return lanes


def _sources(profile: Profile) -> List[Tuple[Dict[str, Any], List[Span], bool]]:
    """(metadata, spans, complete) per process: the profile itself, or a merged profile's sources."""
    spans = spans_from_extra(profile.extras.get(EXTRA_KEY))
    if spans:
        return [(profile.metadata, spans, True)]
    extras = profile.extras.get("sources")
    metas = profile.metadata.get("sources")
    if isinstance(extras, list) and isinstance(metas, list) and len(extras) == len(metas):
        out = [(m, spans_from_extra(e.get(EXTRA_KEY)), True) for m, e in zip(metas, extras) if isinstance(e, dict)]
        out = [o for o in out if o[1]]
        if out:
            return out
    return [(profile.metadata, _slowest(profile), False)]


def _slowest(profile: Profile) -> List[Span]:
    """The request table's slowest requests (start times on the server's monotonic clock)."""
    table = profile.requests
    if table is None:
        return []
    out = []
    for (method, target), st in sorted(table.stats.items()):
        key = _TARGET_KEY_BY_METHOD.get(method, L.RESOURCE_URI if method.startswith("resources/") else "")
        for r in st.slowest:
            out.append(Span(r.start_ns, r.duration_ns, method, target, key if target else "", r.request_id,
                            "", r.error or ""))
    return out


def _name(span: Span) -> str:
    return f"{span.method} {span.target}" if span.target else (span.method or "request")


def _args(span: Span) -> Dict[str, Any]:
    args: Dict[str, Any] = {L.METHOD: span.method}
    if span.target:
        args[span.target_key or "target"] = span.target
    if span.request_id:
        args[L.REQUEST_ID] = span.request_id
    if span.session_id:
        args[L.SESSION_ID] = span.session_id
    if span.error:
        args["error"] = span.error
    if span.cpu_ns:
        args["cpu_ms"] = round(span.cpu_ns / 1e6, 3)
    args["duration_ms"] = round(span.duration_ns / 1e6, 3)
    return args


def _us(ns: int) -> float:
    return round(ns / 1000, 3)


def trace_events(profile: Profile) -> Dict[str, Any]:
    """The trace document (``traceEvents``, ``displayTimeUnit``, ``otherData``)."""
    sources = _sources(profile)
    starts = [s.start_ns for _, spans, _ in sources for s in spans]
    t0 = min(starts) if starts else 0
    events: List[Dict[str, Any]] = []
    slices: List[Dict[str, Any]] = []
    used: set = set()
    for n, (meta, spans, complete) in enumerate(sources):
        pid = _pid(meta.get("pid"), n)
        if pid in used:
            pid = max(used) + 1
        used.add(pid)
        name = f"MCP server (pid {meta['pid']})" if meta.get("pid") else "MCP server"
        if not complete:
            name += " (slowest requests only)"
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": n}})
        lanes = assign_lanes([(s.start_ns, s.duration_ns) for s in spans])
        for lane in range(max(lanes) + 1 if lanes else 0):
            tid = lane + 1
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                           "args": {"name": f"requests lane {tid}"}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                           "args": {"sort_index": tid}})
        for span, lane in zip(spans, lanes):
            slices.append({"ph": "X", "name": _name(span), "cat": "mcp,error" if span.error else "mcp",
                           "ts": _us(span.start_ns - t0), "dur": _us(max(span.duration_ns, 0)),
                           "pid": pid, "tid": lane + 1, "args": _args(span)})
    slices.sort(key=lambda e: (e["pid"], e["tid"], e["ts"]))
    other: Dict[str, Any] = {"generator": f"mcpprof {__version__}", "start_ns": t0,
                             "requests": len(slices)}
    stored = [profile.extras.get(EXTRA_KEY)] + [e.get(EXTRA_KEY) for e in profile.extras.get("sources") or []
                                                if isinstance(e, dict)]
    dropped = sum(int(x.get("dropped") or 0) for x in stored if isinstance(x, dict))
    if dropped:
        other["dropped_older_requests"] = dropped
    return {"traceEvents": events + slices, "displayTimeUnit": "ms", "otherData": other}


def _pid(value: Any, index: int) -> int:
    try:
        pid = int(value)
    except (TypeError, ValueError):
        return index + 1
    return pid if 0 < pid < 1 << 31 else index + 1


def render(profile: Profile, full_paths: bool = False, indent: Optional[int] = None) -> bytes:
    """The trace as UTF-8 JSON. ``full_paths`` is accepted for a uniform CLI and has no effect
    (spans carry no file paths)."""
    doc = trace_events(profile)
    if indent is None:
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    return json.dumps(doc, ensure_ascii=False, indent=indent).encode("utf-8", "replace")
