"""The ``exact`` collector: yappi (deterministic) with every call attributed to its MCP request.

yappi records every function call on every thread (the event loop and worker threads alike). A
tag callback reads the running request (:data:`mcpprof.mcp.context.CURRENT`, set by the framework
adapter and seen by the request's tasks and ``to_thread`` workers; ``thread_tags`` as a fallback
for threads started otherwise) and gives each request kind (method and target) its own yappi tag,
so call counts and times are split per tool. Request ids stay out (unbounded).

yappi keeps a call graph, not stacks. :func:`convert` turns the graph of each (request, thread)
into stacks gprof-style: from each root, a callee's time is split among its callers in proportion
to the time each call edge took; recursive edges fold into the first frame of the function; a
subtree smaller than ``min_ns`` stops there (its time stays on its top frame, totals are kept).
Sample types: ``calls/count`` and ``cpu/nanoseconds`` (``clock="cpu"``) or ``wall/nanoseconds``
(``clock="wall"``; coroutines then include the time they were suspended).

Costs a lot (research/cpu-profilers.md 3.2: 2.7x wall clock, 7x CPU clock on a call-heavy mix):
for finding what a request calls and how often, not for production. Needs ``yappi`` in the
server's environment (``pip install 'mcpprof[yappi]'``); it is imported only when started.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Set

from ..errors import CollectorUnavailable
from ..model import labels as L
from ..model.profile import CALLS, CPU, WALL, Frame, LabelSet, Profile, ProfileBuilder
from .threads import OWN_THREAD_PREFIX
MAX_DEPTH = 128
MAX_STACKS = 20_000


def yappi_check() -> Optional[str]:
    import importlib.util

    if importlib.util.find_spec("yappi") is None:
        return str(CollectorUnavailable("exact", "yappi", "yappi is not installed in the server's environment"))
    return None


def _import_yappi() -> Any:
    try:
        import yappi
    except ImportError:
        raise CollectorUnavailable("exact", "yappi", "yappi is not installed in the server's environment") from None
    return yappi


class ExactCollector:
    """Collector protocol around yappi; see the module docstring."""

    def __init__(self, rate_hz: float = 100.0, *, clock: str = "cpu", min_ns: int = 20_000,
                 builtins: bool = False, **_: Any):
        if clock not in ("cpu", "wall"):
            raise ValueError(f"clock must be 'cpu' or 'wall', got {clock!r}")
        self.clock, self.min_ns, self.builtins = clock, int(min_ns), bool(builtins)
        self.rate_hz = float(rate_hz)  # unused: yappi sees every call
        self._yappi: Any = None
        self._tag_ids: Dict[LabelSet, int] = {}
        self._tag_labels: Dict[int, LabelSet] = {0: ()}
        self._names: Dict[int, str] = {}
        self._start_ns = 0
        self._start_clock = 0
        self._end_clock: Optional[int] = None

    # -- tags -----------------------------------------------------------------------------------
    def _make_callback(self) -> Any:
        from ..mcp import context

        get, thread_tags, ident = context.CURRENT.get, context.thread_tags, threading.get_ident
        ids, labels, lock = self._tag_ids, self._tag_labels, threading.Lock()

        def tag_callback() -> int:
            tag = get()
            if tag is None:
                tag = thread_tags.get(ident())
                if tag is None:
                    return 0
            key = tag.labels
            i = ids.get(key)
            if i is None:
                with lock:
                    i = ids.get(key)
                    if i is None:
                        i = len(ids) + 1
                        labels[i] = key
                        ids[key] = i
            return i

        return tag_callback

    # -- control --------------------------------------------------------------------------------
    def start(self) -> "ExactCollector":
        yappi = self._yappi = _import_yappi()
        if yappi.is_running():
            raise CollectorUnavailable("exact", "", "yappi is already running in this process")
        yappi.clear_stats()
        yappi.set_clock_type(self.clock)
        yappi.set_tag_callback(self._make_callback())
        self._remember_threads()
        self._start_ns, self._start_clock, self._end_clock = time.time_ns(), time.perf_counter_ns(), None
        yappi.start(builtins=self.builtins, profile_threads=True)
        return self

    def stop(self) -> None:
        yappi = self._yappi
        if yappi is None or not yappi.is_running():
            return
        self._remember_threads()
        yappi.stop()
        self._end_clock = time.perf_counter_ns()
        try:
            yappi.set_tag_callback(None)
        except Exception:
            pass

    def _remember_threads(self) -> None:
        for t in threading.enumerate():
            if t.ident is not None:
                self._names[t.ident] = t.name

    # -- results --------------------------------------------------------------------------------
    def snapshot(self) -> Profile:
        yappi = self._yappi or _import_yappi()
        self._remember_threads()
        value_type = CPU if self.clock == "cpu" else WALL
        builder = ProfileBuilder([CALLS, value_type])
        stacks = 0
        threads = []
        for ts in yappi.get_thread_stats():
            name = self._names.get(ts.tid) or str(ts.name)
            if name.startswith(OWN_THREAD_PREFIX):
                continue
            threads.append(name)
            for tag_id, tag_labels in list(self._tag_labels.items()):
                stats = yappi.get_func_stats(filter={"tag": tag_id, "ctx_id": ts.id})
                if not len(stats):
                    continue
                labels = tuple(sorted(tag_labels + ((L.THREAD_NAME, name),)))
                stacks += convert(list(stats), builder, labels, self.min_ns, MAX_STACKS - stacks)
        profile = builder.build()
        end = self._end_clock if self._end_clock is not None else time.perf_counter_ns()
        profile.metadata = {
            "collector": "exact", "clock": self.clock, "start_ns": self._start_ns,
            "duration_ns": max(0, end - self._start_clock), "pid": os.getpid(),
            "python": sys.version.split()[0], "threads": sorted(set(threads)),
            "attribution": "tags (every call, per request kind)",
            "stacks_from": "call graph (gprof-style split among callers)",
        }
        return profile


def _frame(st: Any) -> Frame:
    return Frame(str(st.name), str(st.module), int(st.lineno or 0))


def convert(stats: List[Any], builder: ProfileBuilder, labels: LabelSet, min_ns: int,
            budget: int = MAX_STACKS) -> int:
    """Add the stacks of one yappi call graph (``YFuncStat`` items of one tag and thread) to
    ``builder``; returns how many stack entries were added (at most ``budget``)."""
    by_index: Dict[int, Any] = {st.index: st for st in stats}
    called: Set[int] = set()
    for st in stats:
        for child in st.children:
            if child.index != st.index:
                called.add(child.index)
    roots = [st for st in stats if st.index not in called]
    added = 0

    def walk(st: Any, frac: float, path: List[int], frames: List[Frame]) -> None:
        nonlocal added
        frames.append(_frame(st))
        path.append(st.index)
        total_ns = frac * st.ttot * 1e9
        children = [] if len(path) >= MAX_DEPTH or added >= budget else [
            c for c in st.children if c.index not in path and c.index in by_index]
        self_ns = frac * st.tsub * 1e9
        kept = []
        for c in children:
            child = by_index[c.index]
            share = min(1.0, c.ttot / child.ttot) if child.ttot > 0 else 0.0
            cfrac = frac * share
            if cfrac * child.ttot * 1e9 < min_ns:
                self_ns += cfrac * child.ttot * 1e9  # too small to split further: stays here
            else:
                kept.append((child, cfrac))
        if not children and total_ns > self_ns:
            self_ns = total_ns  # cut at the depth or stack budget: keep the subtree's time here
        builder.add(frames, (int(round(frac * st.ncall)), int(round(self_ns))), labels)
        added += 1
        for child, cfrac in kept:
            walk(child, cfrac, path, frames)
        path.pop()
        frames.pop()

    for root in roots:
        if added >= budget:
            break
        walk(root, 1.0, [], [])
    return added


__all__ = ["ExactCollector", "convert", "yappi_check"]
