"""Threads as the sampler sees them: names (the sampler's book of threads), per-thread CPU clocks,
which leaf frames mean "waiting", and the default tagger (the MCP request running on a thread).
Stdlib only."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..model.profile import LabelSet

UNNAMED_THREAD = "(unnamed)"
OWN_THREAD_PREFIX = "mcpprof-"  # mcpprof's own threads (flush, control, recorders) are not sampled

#: Leaf frames (file name, function) of a thread that is waiting, not running: the CPU a thread used
#: since its previous sample is not charged to such a stack but carried to its next running one.
IDLE_LEAVES = frozenset({
    ("selectors.py", "select"), ("selectors.py", "EpollSelector.select"),
    ("selectors.py", "PollSelector.select"), ("selectors.py", "KqueueSelector.select"),
    ("selectors.py", "SelectSelector.select"), ("selectors.py", "DevpollSelector.select"),
    ("threading.py", "wait"), ("threading.py", "Condition.wait"), ("threading.py", "Event.wait"),
    ("threading.py", "_wait_for_tstate_lock"), ("threading.py", "Thread._wait_for_tstate_lock"),
    ("queue.py", "get"), ("queue.py", "Queue.get"), ("socket.py", "accept"), ("socket.py", "socket.accept"),
})


def is_idle_leaf(filename: str, qualname: str, name: str) -> bool:
    """Whether a leaf frame in ``filename`` running ``qualname`` (``name``) means "waiting"."""
    base = filename.rsplit("/", 1)[-1]
    return (base, qualname) in IDLE_LEAVES or (base, name) in IDLE_LEAVES


def is_idle_code(code: Any) -> bool:
    return is_idle_leaf(code.co_filename, getattr(code, "co_qualname", code.co_name), code.co_name)


class ThreadCpuClocks:
    """``clocks(ident)``: CPU ns of that thread or None. The ``pthread_getcpuclockid`` is looked up
    once per ident, while the thread is known to be alive; ``forget(ident)`` drops it."""

    def __init__(self) -> None:
        self.ids: Dict[int, Any] = {}  # ident -> clock id, or False (read by the sampler's C tick)
        self._getid = getattr(time, "pthread_getcpuclockid", None)
        self._gettime = getattr(time, "clock_gettime_ns", None)
        self.available = self._getid is not None and self._gettime is not None

    def __call__(self, ident: int) -> Optional[int]:
        clk = self.ids.get(ident)
        if clk is None and self.available:
            try:
                clk = self.ids[ident] = self._getid(ident)  # type: ignore[misc]
            except Exception:
                clk = self.ids[ident] = False
        if clk is None or clk is False:
            return None
        try:
            return self._gettime(clk)  # type: ignore[misc]
        except Exception:  # the thread is gone, or its ident was reused: look it up next time
            self.ids.pop(ident, None)
            return None

    def forget(self, ident: int) -> None:
        self.ids.pop(ident, None)


class ThreadBookMixin:
    """The sampler's book of threads: names, native ids, mcpprof's own threads (not sampled)."""

    _threads_fn: Callable[[], Dict[int, Tuple[str, Optional[int]]]]
    _names: Dict[int, str]
    _native: Dict[int, Optional[int]]
    _own_threads: set
    _tstate: Dict[int, list]
    _forget: Any
    _note_error: Callable[[BaseException], None]

    def _name_of(self, ident: int) -> str:
        self._refresh_threads()  # not a threading thread if still unknown: remember that
        return self._names.setdefault(ident, UNNAMED_THREAD)

    def _refresh_threads(self) -> None:
        try:
            info = self._threads_fn()
        except Exception as exc:
            return self._note_error(exc)
        for ident, (name, nid) in info.items():
            old = self._native.get(ident)
            if old is not None and nid is not None and old != nid and ident in self._tstate:
                self._drop_thread(ident)  # the ident now belongs to another thread
            self._native[ident] = nid
            self._names[ident] = str(name)
        self._own_threads.clear()
        self._own_threads.update(i for i, (name, _) in info.items() if str(name).startswith(OWN_THREAD_PREFIX))

    def _drop_thread(self, ident: int) -> None:
        self._tstate.pop(ident, None)
        self._names.pop(ident, None)
        self._native.pop(ident, None)
        try:
            if self._forget is not None:
                self._forget(ident)
        except Exception:
            pass


def python_threads() -> Dict[int, Tuple[str, Optional[int]]]:
    """``{ident: (name, native id)}`` of the threads the ``threading`` module knows."""
    active = getattr(threading, "_active", None)
    if isinstance(active, dict):
        return {ident: (t.name, getattr(t, "native_id", None)) for ident, t in list(active.items())}
    return {t.ident: (t.name, getattr(t, "native_id", None)) for t in threading.enumerate() if t.ident}


def request_tagger() -> Callable[[int], Optional[LabelSet]]:
    """The default tagger: labels of the MCP request running on a thread (mcpprof.mcp.context).

    Its ``capture(frames_fn)`` returns the tick's frames and keeps the thread -> request map as it
    was at that moment (read from every thread's context, in the same C call as the frames where
    the hooks extension is built), so a worker whose request ends while the tick runs is still
    labelled with the request its captured stack shows. ``tag_of(ident)`` gives the request tag
    itself, from the same capture."""
    from ..mcp import context
    from ..model import labels as L

    tag_for_loop = context.tag_for_loop if context._C is None else None  # pure Python: loop threads
    startup: LabelSet = ((L.PHASE, L.STARTUP),)
    captured: List[Any] = [{}]  # the thread -> tag map the current tick reads
    frames_and_tags = getattr(context._C, "frames_and_tags", None)

    def tag_of(ident: int) -> Any:
        tag = captured[0].get(ident)
        if tag is None and tag_for_loop is not None:
            tag = tag_for_loop(ident)
        return tag

    def untagged() -> Optional[LabelSet]:  # the labels of a thread outside any request
        return None if context.serving else startup

    def tagger(ident: int) -> Optional[LabelSet]:
        tag = tag_of(ident)
        return tag.labels if tag is not None else untagged()

    def frames_tags(frames_fn: Callable[[], Dict[int, Any]]) -> Tuple[Dict[int, Any], Dict[int, Any]]:
        if frames_and_tags is not None and frames_fn is sys._current_frames:
            frames, tags = frames_and_tags()
        else:
            frames, tags = frames_fn(), context.thread_tag_map()
        captured[0] = tags
        return frames, tags

    def capture(frames_fn: Callable[[], Dict[int, Any]]) -> Dict[int, Any]:
        return frames_tags(frames_fn)[0]

    tagger.capture = capture  # type: ignore[attr-defined]
    tagger.tag_of = tag_of  # type: ignore[attr-defined]
    tagger.watch_worker_calls = context.watch_worker_calls  # type: ignore[attr-defined]
    tagger.take_worker_calls = context.take_worker_calls  # type: ignore[attr-defined]
    if tag_for_loop is None:  # the sampler's C tick reads the captured map itself
        def capture_now(frames_fn: Callable[[], Dict[int, Any]]) -> Tuple[Dict[int, Any], Dict[int, Any],
                                                                        Optional[LabelSet]]:
            """``capture`` for the C tick, in one call: the frames, the thread -> request map taken
            with them, and the labels of a thread outside any request."""
            frames, tags = frames_tags(frames_fn)
            return frames, tags, (None if context.serving else startup)

        tagger.capture_now = capture_now  # type: ignore[attr-defined]
    return tagger
