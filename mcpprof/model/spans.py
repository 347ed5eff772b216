"""Recent request spans, bounded: when each MCP request started and how long it took.

The agent keeps the last :data:`MAX_SPANS` finished requests in a ring and writes them into
``profile.extras["requests_spans"]`` (:data:`EXTRA_KEY`); the trace exporter draws them. Older
profiles, and collectors without the agent, simply lack the key. The stored form is JSON-ready and
columnar (about 40 bytes a span, so periodic flushes of a full ring stay cheap)::

    {"version": 2, "total": N, "dropped": N - len(spans), "base_ns": <epoch ns of the first start>,
     "names": [[method, target, target_key], ...],     # interned
     "sessions": ["", "<session id>", ...],             # interned
     "errors": ["", "<error kind>", ...],               # interned
     "columns": {"start": [ns after base_ns], "duration": [ns], "name": [index into names],
                 "request_id": [str], "session": [index], "error": [index], "cpu_ns": [ns]}}

Spans are oldest first; the agent's periodic writes keep only the latest 500 (its final write
has the whole ring). Version 1 (one list per span, ``fields`` naming its items) is still read.

Request and session ids are unbounded values; they live here, in a bounded ring, and never in
the sample labels. Stdlib only: this runs inside profiled servers.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Deque, Dict, List, NamedTuple, Optional

EXTRA_KEY = "requests_spans"
MAX_SPANS = 10_000
VERSION = 2
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
    carry) and stores it as epoch time, using the offset between the two clocks taken once;
    ``add_tags`` keeps the ended request tags themselves (read when the ring is stored)."""

    def __init__(self, maxlen: int = MAX_SPANS):
        self.spans: Deque[Any] = deque(maxlen=maxlen)  # Span-shaped tuples, or ended request tags
        self.total = 0
        self._offset = time.time_ns() - time.perf_counter_ns()

    def add(self, perf_start_ns: int, duration_ns: int, method: str, target: str = "", target_key: str = "",
            request_id: str = "", session_id: str = "", error: Optional[str] = None, cpu_ns: int = 0) -> None:
        self.total += 1
        self.spans.append((perf_start_ns + self._offset, duration_ns, method, target, target_key,
                           request_id, session_id, error or "", cpu_ns))

    def add_tags(self, tags: List[Any]) -> None:
        """:meth:`add` for a batch of ended request tags (what a request sink gets): the tags are
        kept as they are and read when the ring is stored."""
        self.total += len(tags)
        self.spans.extend(tags)

    def _rows(self, items: List[Any]) -> List[tuple]:
        offset = self._offset
        return [r if type(r) is tuple else (r.start_ns + offset, r.duration_ns, r.method, r.target, r.target_key,
                                            r.request_id, r.session_id, r.error or "", r.cpu_ns) for r in items]

    def copy(self) -> "SpanRing":
        """A copy to encode without holding up the requests that add spans."""
        other = SpanRing.__new__(SpanRing)
        other.spans, other.total, other._offset = self.spans.copy(), self.total, self._offset
        return other

    def to_extra(self, limit: Optional[int] = None) -> Dict[str, Any]:
        """The stored form; ``limit``: only the latest that many spans (the rest count as dropped)."""
        rows = list(self.spans)
        if limit is not None and len(rows) > limit:
            rows = rows[len(rows) - limit:]
        rows = self._rows(rows)
        extra: Dict[str, Any] = {"version": VERSION, "total": self.total, "dropped": self.total - len(rows)}
        if not rows:
            extra.update(base_ns=0, names=[], sessions=[""], errors=[""],
                         columns={c: [] for c in _COLUMNS})
            return extra
        start, duration, method, target, key, request_id, session, error, cpu = zip(*rows)
        base = start[0]
        names: Dict[tuple, int] = {}
        sessions: Dict[str, int] = {"": 0}
        errors: Dict[str, int] = {"": 0}
        extra.update(base_ns=base, columns={
            "start": [t - base for t in start], "duration": list(duration),
            "name": [names.setdefault(n, len(names)) for n in zip(method, target, key)],
            "request_id": list(request_id),
            "session": [sessions.setdefault(x, len(sessions)) for x in session],
            "error": [errors.setdefault(x, len(errors)) for x in error], "cpu_ns": list(cpu)})
        extra.update(names=[list(n) for n in names], sessions=list(sessions), errors=list(errors))
        return extra


_COLUMNS = ("start", "duration", "name", "request_id", "session", "error", "cpu_ns")


def spans_from_extra(extra: Any) -> List[Span]:
    """Spans stored by :meth:`SpanRing.to_extra`, version 2 or 1 (anything else gives none)."""
    if not isinstance(extra, dict):
        return []
    if extra.get("version") == 1:
        return _spans_v1(extra)
    if extra.get("version") != VERSION:
        return []
    try:
        cols, base = extra["columns"], int(extra.get("base_ns") or 0)
        names, sessions, errors = extra["names"], extra["sessions"], extra["errors"]
        out: List[Span] = []
        for t, d, n, rid, ses, err, cpu in zip(*(cols[c] for c in _COLUMNS)):
            method, target, key = names[n]
            out.append(Span(base + int(t), int(d), str(method), str(target or ""), str(key or ""),
                            str(rid or ""), str(sessions[ses] or ""), str(errors[err] or ""), int(cpu or 0)))
        return out
    except (KeyError, IndexError, TypeError, ValueError):
        return []


def _spans_v1(extra: Dict[str, Any]) -> List[Span]:
    names = list(extra.get("fields") or FIELDS)
    out: List[Span] = []
    for row in extra.get("spans") or []:
        d = dict(zip(names, row))
        out.append(Span(int(d.get("start_ns", 0)), int(d.get("duration_ns", 0)), str(d.get("method", "")),
                        str(d.get("target") or ""), str(d.get("target_key") or ""),
                        str(d.get("request_id") or ""), str(d.get("session_id") or ""),
                        str(d.get("error") or ""), int(d.get("cpu_ns") or 0)))
    return out
