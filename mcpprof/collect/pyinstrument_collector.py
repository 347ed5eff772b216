"""The ``pyinstrument`` collector: a pyinstrument session converted into the model.

pyinstrument sees **one thread**: the one that started it. Here that is the server's event-loop
thread (when started from another thread, e.g. the control channel, start and stop are handed to
the loop with ``call_soon_threadsafe``). Sync tools that the SDK runs on worker threads are
invisible to it, and it has no per-request hook, so tools are attributed by their frames where a
framework's dispatch frame is on the stack (:mod:`mcpprof.collect.toolframes`). The profile's
metadata says so (``threads_seen``, ``limitations``).

Sample type: ``wall/nanoseconds`` (pyinstrument's time on that thread) and ``samples/count``
(time / interval). Needs ``pyinstrument`` in the server's environment
(``pip install 'mcpprof[pyinstrument]'``); imported only when started.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, List, Optional

from ..errors import CollectorUnavailable, TargetError
from ..model import labels as L
from ..model.profile import SAMPLES, WALL, Frame, Profile, ProfileBuilder
from .toolframes import FrameAttributor

SELF_FRAME = "[self]"  # pyinstrument's synthetic node for a frame's own time
LIMITATION = ("pyinstrument sees only the event-loop thread: work in worker threads (sync tools) "
              "is missing, and tools are attributed by frames, not by request")


def pyinstrument_check() -> Optional[str]:
    import importlib.util

    if importlib.util.find_spec("pyinstrument") is None:
        return str(CollectorUnavailable("pyinstrument", "pyinstrument",
                                        "pyinstrument is not installed in the server's environment"))
    return None


def _loop_of_main_thread() -> Any:
    from ..mcp import context

    main = threading.main_thread().ident
    loop = context.loops.get(main) if main is not None else None
    if loop is None:
        for loop in list(context.loops.values()):
            break
    return loop


def _on_loop_thread(fn: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Run ``fn`` on the thread it must run on: here if this is the main thread, else the loop's."""
    if threading.current_thread() is threading.main_thread():
        return fn()
    loop = _loop_of_main_thread()
    if loop is None or loop.is_closed():
        raise TargetError("pyinstrument must start on the server's event-loop thread, and no loop has "
                          "served a request yet: send one request, then try again")
    done = threading.Event()
    box: List[Any] = [None, None]

    def call() -> None:
        try:
            box[0] = fn()
        except BaseException as exc:  # handed back to the caller
            box[1] = exc
        finally:
            done.set()

    loop.call_soon_threadsafe(call)
    if not done.wait(timeout):
        raise TargetError(f"the event loop did not run mcpprof's call within {timeout:g} s (is it blocked?)")
    if box[1] is not None:
        raise box[1]
    return box[0]


class PyinstrumentCollector:
    """Collector protocol around ``pyinstrument.Profiler``; see the module docstring."""

    def __init__(self, rate_hz: float = 1000.0, **_: Any):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        self.rate_hz = float(rate_hz)
        self.interval = 1.0 / self.rate_hz
        self._profiler: Any = None
        self._session: Any = None
        self._thread = ""
        self._start_ns = 0

    def start(self) -> "PyinstrumentCollector":
        try:
            from pyinstrument import Profiler
        except ImportError:
            raise CollectorUnavailable("pyinstrument", "pyinstrument",
                                       "pyinstrument is not installed in the server's environment") from None

        def begin() -> None:
            self._profiler = Profiler(interval=self.interval, async_mode="disabled")
            self._profiler.start()
            self._thread = threading.current_thread().name

        self._start_ns = time.time_ns()
        _on_loop_thread(begin)
        return self

    def stop(self) -> None:
        profiler = self._profiler
        if profiler is None or not profiler.is_running:
            return

        def end() -> None:
            self._session = profiler.stop()

        try:
            _on_loop_thread(end)
        except Exception:
            pass

    def snapshot(self) -> Profile:
        session = self._session
        if session is None and self._profiler is not None and not self._profiler.is_running:
            session = self._profiler.last_session
        if session is None:  # pyinstrument cannot be read while it runs: an empty, marked profile
            profile = ProfileBuilder([SAMPLES, WALL]).build()
            profile.metadata = {"collector": "pyinstrument", "rate_hz": self.rate_hz, "start_ns": self._start_ns,
                                "pid": os.getpid(), "threads_seen": [self._thread or "MainThread"],
                                "limitations": LIMITATION,
                                "pending": "pyinstrument is read when it stops; samples appear in the final profile"}
            return profile
        return convert(session, self.interval, self._thread or "MainThread",
                       {"start_ns": self._start_ns, "pid": os.getpid(), "python": sys.version.split()[0]})


def convert(session: Any, interval: float, thread_name: str, metadata: Optional[dict] = None) -> Profile:
    """A profile from a pyinstrument ``Session`` (self time of each call-tree node as a stack)."""
    builder = ProfileBuilder([SAMPLES, WALL])
    attributor = FrameAttributor()
    root = session.root_frame()
    interval_ns = max(1, int(interval * 1e9))

    def walk(node: Any, frames: List[Frame]) -> None:
        frames.append(Frame(str(node.function or "?"), str(node.file_path or ""), int(node.line_no or 0)))
        children = [c for c in node.children if not str(c.identifier).startswith(SELF_FRAME)]
        child_time = sum(c.time for c in children)  # "[self]" nodes are this node's own time
        self_ns = int(round(max(0.0, node.time - child_time) * 1e9))
        if self_ns > 0:
            labels = [(L.THREAD_NAME, thread_name)] + attributor.labels(frames)
            builder.add(frames, (max(1, round(self_ns / interval_ns)), self_ns), tuple(sorted(labels)))
        for child in children:
            walk(child, frames)
        frames.pop()

    if root is not None and str(root.identifier).startswith("[root]"):  # pyinstrument's dummy root
        for child in root.children:
            walk(child, [])
    elif root is not None:
        walk(root, [])
    profile = builder.build()
    md = {
        "collector": "pyinstrument", "rate_hz": 1.0 / interval, "period_ns": interval_ns,
        "duration_ns": int(getattr(session, "duration", 0) * 1e9),
        "process_cpu_ns_in_session": int((getattr(session, "cpu_time", 0) or 0) * 1e9),
        "threads_seen": [thread_name], "limitations": LIMITATION, "attribution": "frames",
    }
    md.update(metadata or {})
    profile.metadata = md
    return profile


__all__ = ["PyinstrumentCollector", "convert", "pyinstrument_check", "LIMITATION"]
