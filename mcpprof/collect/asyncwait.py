"""The async wait view: where each in-flight MCP request is waiting.

A CPU profile shows what runs; a tool that is slow because it waits (on a lock, a subprocess, a
remote call, a worker thread) barely shows up in it. This module samples the await chains of the
tasks serving requests (:func:`mcpprof.mcp.context.inflight`): from each task's
coroutine down through ``cr_await`` (coroutines, generator-based coroutines, async generators)
to the innermost frame, then into the task it is blocked on (``Task._fut_waiter``) if that is a
task too. The chain ends in a marker frame saying what the request is doing:

* ``[running]``: the task is executing right now (CPU);
* ``[ready: waiting for the event loop]``: it could run, but the loop is busy with other work;
* ``[await Future]`` / ``[await <type>]``: suspended on that awaitable (the frames above say
  whose: ``Lock.acquire``, ``sleep``, ``Process.wait``, ``run_sync_in_worker_thread``, ...).

Each sample weighs ``wall/nanoseconds`` since the previous tick, labelled with the request's
method and tool, so the result is a wall-time profile per tool (:class:`AsyncWaitSampler`).
:func:`inflight_requests` gives the same chains once, with each request's age, for ``mcpprof
dump``. Runs inside the server: stdlib only, never raises into it, never prints.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ..model.profile import SAMPLES, WALL, Frame, Profile, ProfileBuilder

RUNNING = "[running]"
READY = "[ready: waiting for the event loop]"
MAX_CHAIN = 200
MAX_TASK_HOPS = 16


def _frame_of(obj: Any) -> Tuple[Any, Any]:
    """(frame, next awaitable) of a coroutine, generator or async generator, else (None, None)."""
    for frame_attr, next_attr in (("cr_frame", "cr_await"), ("gi_frame", "gi_yieldfrom"),
                                  ("ag_frame", "ag_await")):
        if hasattr(obj, frame_attr):
            return getattr(obj, frame_attr, None), getattr(obj, next_attr, None)
    return None, None


def _code_frame(frame: Any) -> Frame:
    code = frame.f_code
    return Frame(getattr(code, "co_qualname", code.co_name), code.co_filename, frame.f_lineno or 0)


def _is_coroutine_like(obj: Any) -> bool:
    return hasattr(obj, "cr_frame") or hasattr(obj, "gi_frame") or hasattr(obj, "ag_frame")


def coroutine_frames(coro: Any) -> Tuple[List[Frame], Any]:
    """Root-first frames of a coroutine's await chain, and the awaitable at its end (or None)."""
    frames: List[Frame] = []
    obj = coro
    while obj is not None and len(frames) < MAX_CHAIN:
        if not _is_coroutine_like(obj):
            return frames, obj
        frame, nxt = _frame_of(obj)
        if frame is None:  # finished, or not started yet
            return frames, None
        frames.append(_code_frame(frame))
        obj = nxt
    return frames, None


def task_chain(task: Any, running: set) -> Tuple[List[Frame], Any]:
    """Root-first frames of ``task`` (following awaited tasks), ending in a marker frame; and the
    last task followed (so callers can skip tasks already shown inside another's chain)."""
    frames: List[Frame] = []
    followed: List[Any] = []
    for _ in range(MAX_TASK_HOPS):
        followed.append(task)
        try:
            coro = task.get_coro()
        except Exception:
            coro = None
        chain, _end = coroutine_frames(coro) if coro is not None else ([], None)
        frames.extend(chain)
        if task in running:
            frames.append(Frame(RUNNING))
            break
        waiter = getattr(task, "_fut_waiter", None)
        if waiter is None:
            frames.append(Frame(READY if not task.done() else "[done]"))
            break
        if isinstance(waiter, asyncio.Task) and waiter not in followed:
            frames.append(Frame(f"[await Task {waiter.get_name()}]"))
            task = waiter
            continue
        frames.append(Frame(f"[await {type(waiter).__name__}]"))
        break
    return frames, followed


def _running_tasks() -> set:
    current = getattr(asyncio.tasks, "_current_tasks", {})
    try:
        return set(current.values())
    except RuntimeError:
        return set()


def _tagged_tasks() -> List[Tuple[Any, Any]]:
    from ..mcp import context

    return [(t, tag) for t, tag in context.inflight() if t is not None and not t.done()]


def request_chains() -> List[Tuple[Any, Any, List[Frame]]]:
    """(task, tag, frames) for each task serving a request that no other such task awaits."""
    items = _tagged_tasks()
    running = _running_tasks()
    chains = []
    inside: set = set()
    for task, tag in items:
        frames, followed = task_chain(task, running)
        inside.update(id(t) for t in followed[1:])
        chains.append((task, tag, frames))
    return [c for c in chains if id(c[0]) not in inside]


class AsyncWaitSampler:
    """Samples :func:`request_chains` ``rate_hz`` times a second into a wall-time profile."""

    def __init__(self, rate_hz: float = 50.0, **_: Any):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        self.rate_hz = float(rate_hz)
        self.period = 1.0 / self.rate_hz
        self._lock = threading.Lock()
        self._builder = ProfileBuilder([SAMPLES, WALL])
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._start_ns = 0
        self._start_clock = 0
        self._last = 0
        self._ticks = self._errors = 0
        self._own_ns = 0

    def start(self) -> "AsyncWaitSampler":
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._start_ns, self._start_clock = time.time_ns(), time.perf_counter_ns()
        self._last = self._start_clock
        self._thread = threading.Thread(target=self._run, name="mcpprof-asyncwait", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            t0 = time.thread_time_ns()
            self.sample_once()
            self._own_ns += time.thread_time_ns() - t0

    def sample_once(self) -> None:
        try:
            now = time.perf_counter_ns()
            wall = max(0, now - self._last)
            self._last = now
            chains = request_chains()
            with self._lock:
                self._ticks += 1
                for _task, tag, frames in chains:
                    self._builder.add(frames, (1, wall), tag.labels)
        except Exception:
            self._errors += 1

    def snapshot(self) -> Profile:
        with self._lock:
            profile = self._builder.build()
            ticks, errors = self._ticks, self._errors
        duration = time.perf_counter_ns() - self._start_clock if self._start_clock else 0
        profile.metadata = {
            "collector": "asyncwait", "rate_hz": self.rate_hz, "period_ns": int(self.period * 1e9),
            "start_ns": self._start_ns, "duration_ns": duration, "ticks": ticks, "errors": errors,
            "pid": os.getpid(), "python": sys.version.split()[0],
            "overhead": {"sampler_cpu_ns": self._own_ns,
                         "fraction": self._own_ns / duration if duration else 0.0},
            "view": "wall time of in-flight requests by await chain (not CPU)",
        }
        return profile


def inflight_requests() -> List[Dict[str, Any]]:
    """Every in-flight request: method, target, id, age, and where it is (await chain or thread)."""
    from ..mcp import context

    now = time.perf_counter_ns()
    out: List[Dict[str, Any]] = []
    seen: Dict[int, Dict[str, Any]] = {}
    for task, tag, frames in request_chains():
        row = seen.get(id(tag))
        if row is None:
            row = seen[id(tag)] = _row(tag, now)
            out.append(row)
        row["tasks"].append({"task": task.get_name(), "frames": frames})
    names = {t.ident: t.name for t in threading.enumerate()}
    current = sys._current_frames()
    for ident, tag in context.thread_tag_map().items():
        if ident == threading.get_ident():
            continue
        row = seen.get(id(tag))
        if row is None:
            row = seen[id(tag)] = _row(tag, now)
            out.append(row)
        frames = []
        f = current.get(ident)
        while f is not None and len(frames) < MAX_CHAIN:
            frames.append(_code_frame(f))
            f = f.f_back
        frames.reverse()
        row["threads"].append({"thread": names.get(ident, str(ident)), "frames": frames})
    out.sort(key=lambda r: -r["age_ns"])
    return out


def _row(tag: Any, now: int) -> Dict[str, Any]:
    return {"method": tag.method, "target": tag.target, "request_id": tag.request_id,
            "age_ns": max(0, now - tag.start_ns), "tasks": [], "threads": []}


def thread_stacks() -> List[Dict[str, Any]]:
    """Every thread's current stack (root first), with its name; the caller's thread included."""
    names = {t.ident: (t.name, t.daemon) for t in threading.enumerate()}
    out = []
    for ident, top in sys._current_frames().items():
        frames = []
        f = top
        while f is not None and len(frames) < MAX_CHAIN:
            frames.append(_code_frame(f))
            f = f.f_back
        frames.reverse()
        name, daemon = names.get(ident, ("(unnamed)", None))
        out.append({"thread": name, "ident": ident, "daemon": daemon, "frames": frames})
    return out


class AsyncWaitRecorder:
    """Agent recorder: runs an :class:`AsyncWaitSampler` and puts its profile into
    ``profile.extras["asyncwait"]`` (native layout, see :func:`wait_profile`)."""

    def __init__(self, agent: Any, rate_hz: float = 20.0):
        self.sampler = AsyncWaitSampler(rate_hz)

    def start(self) -> None:
        self.sampler.start()

    def stop(self) -> None:
        self.sampler.stop()

    def contribute(self, profile: Profile, limit: Optional[int] = None) -> None:
        from ..model.io import to_dict

        profile.extras["asyncwait"] = to_dict(self.sampler.snapshot())


def wait_profile(profile: Profile) -> Optional[Profile]:
    """The async wait view carried in ``profile.extras["asyncwait"]``, or None."""
    data = profile.extras.get("asyncwait") if profile.extras else None
    if not data:
        return None
    from ..model.io import from_dict

    return from_dict(data)


__all__ = ["AsyncWaitSampler", "AsyncWaitRecorder", "request_chains", "inflight_requests", "thread_stacks",
           "wait_profile", "coroutine_frames", "task_chain"]


def factory(agent: Any) -> AsyncWaitRecorder:
    """Agent recorder factory (``RECORDERS["asyncwait"]``)."""
    return AsyncWaitRecorder(agent)
