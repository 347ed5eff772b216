"""GC pause recorder: every collection's generation, duration, objects collected and the MCP
request it landed in, through ``gc.callbacks``. Runs inside the server; stdlib only.

Stored in ``profile.extras["gc_pauses"]`` by the agent (recorder name ``gc_pauses``): the most
recent pauses (bounded), and exact totals per generation and per request name since the start.
:func:`summarize` turns that into p50/p95/max per generation and collections per request.
"""

from __future__ import annotations

import gc
import time
from _thread import get_ident
from collections import deque
from time import perf_counter_ns
from typing import Any, Deque, Dict, List, Optional, Tuple

MAX_EVENTS = 20_000
OUTSIDE = "(outside requests)"


class GcPauseRecorder:
    """Records collections while started. ``events``: (t_ns since start, generation, duration_ns,
    collected, uncollectable, request name), newest ``MAX_EVENTS`` kept."""

    def __init__(self, agent: Any = None, max_events: int = MAX_EVENTS):
        self.agent = agent
        self.events: Deque[Tuple[int, int, int, int, int, str]] = deque(maxlen=max_events)
        self.totals: Dict[int, List[int]] = {}  # generation -> [count, total ns, max ns, collected]
        self.by_request: Dict[str, List[int]] = {}  # request name -> [count, total ns]
        self._starts: Dict[int, int] = {}  # thread ident -> perf_counter_ns at "start"
        self.t0 = 0
        self.started = False
        self._context: Any = None  # mcpprof.mcp.context, imported at start
        self._last_tag: Any = None  # the request of the previous collection, and its name
        self._last_name = OUTSIDE

    def start(self) -> None:
        if self.started:
            return
        try:
            from ..mcp import context
            self._context = context
        except Exception:  # pragma: no cover - every collection is then outside requests
            self._context = None
        self.t0 = time.perf_counter_ns()
        gc.callbacks.append(self._callback)
        self.started = True

    def stop(self) -> None:
        try:
            gc.callbacks.remove(self._callback)
        except ValueError:
            pass
        self.started = False

    def _callback(self, phase: str, info: Dict[str, int]) -> None:
        # On every collection (hundreds a second in a busy server): no import, no formatting, no
        # allocation beyond the event, on the path that runs twice per collection.
        try:
            now = perf_counter_ns()
            ident = get_ident()
            if phase == "start":
                self._starts[ident] = now
                return
            began = self._starts.pop(ident, None)
            if began is None:
                return
            gen, dur = info["generation"], now - began
            collected, uncollectable = info["collected"], info["uncollectable"]
            name = self._name_now(ident)
            self.events.append((began - self.t0, gen, dur, collected, uncollectable, name))
            tot = self.totals.get(gen)
            if tot is None:
                tot = self.totals[gen] = [0, 0, 0, 0]
            tot[0] += 1
            tot[1] += dur
            if dur > tot[2]:
                tot[2] = dur
            tot[3] += collected
            req = self.by_request.get(name)
            if req is None:
                req = self.by_request[name] = [0, 0]
            req[0] += 1
            req[1] += dur
        except Exception:  # never disturb a collection
            pass

    def _name_now(self, ident: int) -> str:
        """The name of the request the collection landed in (of the calling context, else of the
        thread), the previous one's name again when it is the same request."""
        context = self._context
        if context is None:
            return OUTSIDE
        tag = context.CURRENT.get() or context.tag_for_thread(ident)
        if tag is None:
            return OUTSIDE
        if tag is not self._last_tag:
            self._last_tag, self._last_name = tag, tag.name
        return self._last_name

    def to_dict(self, limit: Optional[int] = None) -> Dict[str, Any]:
        """The stored form; ``limit``: only the latest that many events (totals stay exact)."""
        events = list(self.events)
        if limit is not None and len(events) > limit:
            events = events[len(events) - limit:]
        return {"columns": ["t_ns", "generation", "duration_ns", "collected", "uncollectable", "request"],
                "events": [list(e) for e in events],
                "totals": {str(g): {"count": t[0], "total_ns": t[1], "max_ns": t[2], "collected": t[3]}
                           for g, t in sorted(self.totals.items())},
                "by_request": {k: {"count": v[0], "total_ns": v[1]} for k, v in sorted(self.by_request.items())},
                "thresholds": list(gc.get_threshold())}

    def contribute(self, profile: Any, limit: Optional[int] = None) -> None:
        profile.extras["gc_pauses"] = self.to_dict(limit)


def _quantile(sorted_values: List[int], q: float) -> int:
    if not sorted_values:
        return 0
    idx = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[idx]


def summarize(data: Dict[str, Any], requests_served: Optional[int] = None) -> Dict[str, Any]:
    """Pause p50/p95/max per generation (from the kept events), totals, collections per request
    (when ``requests_served`` is given) and the requests pauses landed in, most pause time first."""
    events = data.get("events") or []
    per_gen: Dict[int, List[int]] = {}
    for e in events:
        per_gen.setdefault(int(e[1]), []).append(int(e[2]))
    out: Dict[str, Any] = {"generations": {}}
    for gen, durations in sorted(per_gen.items()):
        durations.sort()
        total = (data.get("totals") or {}).get(str(gen), {})
        out["generations"][gen] = {"count": total.get("count", len(durations)), "p50_ns": _quantile(durations, 0.5),
                                   "p95_ns": _quantile(durations, 0.95), "max_ns": total.get("max_ns", durations[-1])}
    all_durations = sorted(int(e[2]) for e in events)
    count = sum(t.get("count", 0) for t in (data.get("totals") or {}).values())
    out.update(count=count, p50_ns=_quantile(all_durations, 0.5), p95_ns=_quantile(all_durations, 0.95),
               max_ns=all_durations[-1] if all_durations else 0)
    if requests_served:
        out["collections_per_request"] = round(count / requests_served, 4)
    by_req = data.get("by_request") or {}
    out["by_request"] = sorted(({"request": k, **v} for k, v in by_req.items()), key=lambda r: -r["total_ns"])
    return out


def factory(agent: Any) -> GcPauseRecorder:
    return GcPauseRecorder(agent)
