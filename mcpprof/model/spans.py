"""Recent request spans, bounded: when each MCP request started and how long it took.

The agent keeps the last :data:`MAX_SPANS` finished requests in a ring and writes them into
``profile.extras["requests_spans"]`` (:data:`EXTRA_KEY`); the trace exporter draws them. Older
profiles, and collectors without the agent, simply lack the key. The stored form is JSON-ready::

    {"version": 1, "total": N, "dropped": N - len(spans),
     "fields": ["start_ns", "duration_ns", "method", "target", "target_key",
                "request_id", "session_id", "error", "cpu_ns"],
     "spans": [[...], ...]}          # oldest first; start_ns is Unix-epoch nanoseconds

Request and session ids are unbounded values; they live here, in a bounded ring, and never in
the sample labels. Stdlib only: this runs inside profiled servers.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Deque, Dict, List, NamedTuple, Optional

EXTRA_KEY = "requests_spans"
MAX_SPANS = 10_000
VERSION = 1
FIELDS = ("start_ns", "duration_ns", "method", "target", "target_key", "request_id", "session_id",
          "error", "cpu_ns")


class Span(NamedTuple):
    start_ns: int  # Unix epoch
    duration_ns: int
    method: str
    target: str = ""
    target_key: str = ""  # the label key naming the target (gen_ai.tool.name, ...)
    request_id: str = ""
    session_id: str = ""
    error: str = ""
    cpu_ns: int = 0


class SpanRing:
    """The last ``maxlen`` spans. ``add`` takes a ``perf_counter_ns`` start (what request tags
    carry) and stores it as epoch time, using the offset between the two clocks taken once."""

    def __init__(self, maxlen: int = MAX_SPANS):
        self.spans: Deque[Span] = deque(maxlen=maxlen)
        self.total = 0
        self._offset = time.time_ns() - time.perf_counter_ns()

    def add(self, perf_start_ns: int, duration_ns: int, method: str, target: str = "", target_key: str = "",
            request_id: str = "", session_id: str = "", error: Optional[str] = None, cpu_ns: int = 0) -> None:
        self.total += 1
        self.spans.append(Span(perf_start_ns + self._offset, duration_ns, method, target, target_key,
                               request_id, session_id, error or "", cpu_ns))

    def to_extra(self) -> Dict[str, Any]:
        spans = [list(s) for s in list(self.spans)]
        return {"version": VERSION, "total": self.total, "dropped": self.total - len(spans),
                "fields": list(FIELDS), "spans": spans}


def spans_from_extra(extra: Any) -> List[Span]:
    """Spans stored by :meth:`SpanRing.to_extra` (an unknown version or shape gives none)."""
    if not isinstance(extra, dict) or extra.get("version") != VERSION:
        return []
    names = list(extra.get("fields") or FIELDS)
    out: List[Span] = []
    for row in extra.get("spans") or []:
        d = dict(zip(names, row))
        out.append(Span(int(d.get("start_ns", 0)), int(d.get("duration_ns", 0)), str(d.get("method", "")),
                        str(d.get("target") or ""), str(d.get("target_key") or ""),
                        str(d.get("request_id") or ""), str(d.get("session_id") or ""),
                        str(d.get("error") or ""), int(d.get("cpu_ns") or 0)))
    return out
