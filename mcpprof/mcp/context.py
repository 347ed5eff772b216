"""Which MCP request is running where: the tag registry shared by adapters and samplers.

A framework adapter runs every request through :func:`request` (or calls :func:`enter_request` /
:func:`exit_request` around it; request tags themselves are made in :mod:`mcpprof.mcp.tags`). That
sets a ContextVar, seen by the request's task, tasks it spawns and ``to_thread`` workers (they run
in copies of its context), and records the request's latency and error kind.

Samplers ask :func:`thread_tag_map` / :func:`tag_for_thread` which request each thread runs. Where
the C extension :mod:`mcpprof.mcp._hooks` is built, that reads every thread's *current context*
(``PyThreadState.context``) with the GIL held, so nothing but the ContextVar has to be kept per
request: a request costs its tag, the ContextVar set and reset, and a place in the in-flight list
(:func:`inflight`). The pure-Python path (``MCPPROF_PURE_PYTHON=1``, or no compiler) cannot read
another thread's context, so it also fills two maps:

* ``task_tags``: asyncio task -> tag, for the event-loop thread (the running task is found in
  ``asyncio.tasks._current_tasks``); tasks spawned inside a request inherit its tag through a task
  factory installed on the loop;
* ``thread_tags``: thread ident -> tag, set where a request's sync code starts running on a
  worker thread (``anyio.to_thread.run_sync`` and ``asyncio.to_thread`` are wrapped).

CPU per request. By default the sampler gives it for code on the event-loop thread (that thread's
CPU split by the samples that found each request running, :mod:`mcpprof.analyse.loopcpu`; the
SIGALRM ticks are evenly spaced), and :func:`tagged` measures it exactly for sync code on worker
threads: the ``to_thread`` wrappers run a request's callable under two thread-CPU clock reads (a
sampler only sees a short sync call after it gave the GIL back, so sampling alone would charge its
CPU to a later sample). :data:`loop_threads` names the threads requests run on, so a summary knows
which samples to split. Exact CPU everywhere is
opt-in (:data:`exact_cpu`, ``mcpprof run --exact-cpu``): the request's handler runs through
:func:`metered`, which reads the thread CPU clock around each step of it (each ``send`` into the
coroutine), so only the request's own steps are charged however requests interleave on the loop,
and tasks spawned inside a request are metered the same way by the task factory. That costs two
clock reads (system calls) per step and the factory on every task the loop makes.

Finished requests go to the sinks in batches (:mod:`mcpprof.mcp.finished`: :data:`finished`,
:func:`drain`, :data:`request_sinks`, re-exported here); the pure-Python metered awaitable is in
:mod:`mcpprof.mcp.metered`.

Stdlib only, nothing happens at import, and every hook is reversible (:func:`uninstall_thread_hooks`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..model import labels as L

from .finished import DRAIN_AT, drain, finished, request_sinks  # noqa: F401 (part of this module's API)
from .workercalls import take_worker_calls, watch_worker_calls, worker_calls  # noqa: F401 (likewise)
from . import workercalls
from .metered import _Metered
from .tags import (_TARGETS, TOOL_ERROR, LabelSet, PyRequestTag, RequestTag, _C, _label_cache,  # noqa: F401
                   _label_entry, error_kind, is_tool_error, tag_for)


CURRENT: "contextvars.ContextVar[Optional[RequestTag]]" = contextvars.ContextVar("mcpprof_request", default=None)

task_tags: Dict[Any, RequestTag] = {}
thread_tags: Dict[int, RequestTag] = {}
loops: Dict[int, Any] = {}  # thread ident -> the event loop that thread runs (pure-Python path)
#: thread ident -> name of each thread requests were entered on (the event-loop threads)
loop_threads: Dict[int, str] = {}

_current_tasks: Dict[Any, Any] = getattr(asyncio.tasks, "_current_tasks", {})
_thread_cpu = time.thread_time_ns
#: Measure exact CPU per request (metered steps, spawned tasks and worker threads) when the thread
#: hooks are installed; set by the agent (``MCPPROF_EXACT_CPU=1``) or ``instrument(exact_cpu=True)``.
exact_cpu = False
installed = False  # install_thread_hooks() ran (and uninstall_thread_hooks() did not since)
metering = False  # True while exact CPU is measured: adapters meter request steps
serving = False  # becomes True with the first request (samples before it are start-up)
serving_since_cpu_ns = 0  # process CPU time when the first request arrived
_factory_loops: "Dict[Any, Any]" = {}  # loop -> the factory it had before ours


def tag_for_thread(ident: int) -> Optional[RequestTag]:
    """The request running on thread ``ident`` right now, or None. Safe from any thread."""
    tag = thread_tags.get(ident)
    if tag is not None:
        return tag
    if _C is not None:
        return _C.thread_tag(ident)
    return tag_for_loop(ident)


def thread_tag_map() -> Dict[int, RequestTag]:
    """``{thread ident: tag}`` of the threads running a request now (on the pure-Python path,
    the event-loop threads are not in it: ask :func:`tag_for_loop`)."""
    if _C is not None:
        return _C.thread_tags()
    return dict(thread_tags)


def inflight() -> List[Tuple[Any, Any]]:
    """``(task or None, tag)`` of every request in flight, and of every task spawned inside one
    that is still known (exact CPU or pure-Python path). From any thread."""
    spawned: List[Tuple[Any, Any]] = []
    for _ in range(3):
        try:
            spawned = list(task_tags.items())
            break
        except RuntimeError:  # changed size while copying: try again
            continue
    if _C is None:
        return spawned
    return _C.inflight() + spawned


def tag_for_loop(ident: int) -> Optional[RequestTag]:
    """The request of the task running on the event loop of thread ``ident``, or None (the
    pure-Python path; with the C extension, :func:`tag_for_thread` reads the thread's context)."""
    loop = loops.get(ident)
    if loop is None:
        return None
    task = _current_tasks.get(loop)
    if task is None:
        return None
    return task_tags.get(task)


def request_cpu_mode() -> str:
    """What the hooks measure of each request's CPU: ``exact`` (every step), ``workers`` (its
    worker-thread code; the rest is for samples) or ``none``."""
    return "exact" if metering else "workers" if _thread_patches else "none"


def current() -> Optional[RequestTag]:
    """The request of the calling context (for code running inside a tool)."""
    return CURRENT.get()


# -- entering and leaving requests (called by adapters, on the event-loop thread) -----------------

def _note_loop(loop: Any) -> None:
    """A request enters on ``loop`` (not the loop of the previous one): note its thread, and with
    exact CPU give it the task factory."""
    loop_threads[threading.get_ident()] = threading.current_thread().name
    if metering and loop not in _factory_loops:
        _install_task_factory(loop)


def _first_request() -> None:
    global serving, serving_since_cpu_ns
    if not serving:
        serving_since_cpu_ns = time.process_time_ns()
        serving = True


def enter_request(tag: Any) -> Any:
    """Enter ``tag``'s request on this thread; returns the handle for :func:`exit_request`."""
    if _C is not None:
        return _C.enter(tag)
    if not serving:
        _first_request()
        if _C is not None:
            _C.set_flags(True, metering)
    token = CURRENT.set(tag)
    task = None
    try:
        loop = asyncio.get_running_loop()
        task = _current_tasks.get(loop)
        ident = threading.get_ident()
        if loops.get(ident) is not loop:
            loops[ident] = loop
            loop_threads[ident] = threading.current_thread().name
        if loop not in _factory_loops:
            _install_task_factory(loop)
    except RuntimeError:
        pass
    prev = None
    if task is not None:
        prev = task_tags.get(task)
        task_tags[task] = tag
    return token, task, prev


def exit_request(handle: Any, tag: Any, error: Optional[str] = None) -> None:
    """Leave the request entered by :func:`enter_request` (its latency and ``error`` kind recorded)."""
    if _C is not None:
        _C.leave(handle, error)
        return
    token, task, prev = handle
    tag.duration_ns = time.perf_counter_ns() - tag.start_ns
    tag.error = error
    if task is not None:
        if prev is None:
            task_tags.pop(task, None)
        else:
            task_tags[task] = prev
    try:
        CURRENT.reset(token)
    except ValueError:  # reset from another context: leave the variable alone
        pass
    if request_sinks:
        finished.append(tag)
        if len(finished) >= DRAIN_AT:
            drain()


# -- exact CPU of a request's steps -------------------------------------------------------------

def metered(awaitable: Any, tag: Any) -> Any:
    """``awaitable`` with the CPU of each of its steps charged to ``tag`` (while hooks are installed)."""
    if not metering:
        return awaitable
    return _C.metered(awaitable, tag) if _C is not None else _Metered(awaitable, tag)


async def _py_request(awaitable: Any, tag: Any, tool_call: bool, handle: Tuple[Any, Any, Any]) -> Any:
    error: Optional[str] = None
    try:
        result = await (_Metered(awaitable, tag) if metering else awaitable)
        if tool_call and is_tool_error(result):
            error = TOOL_ERROR
        return result
    except BaseException as exc:
        error = error_kind(exc)
        raise
    finally:
        exit_request(handle, tag, error)


def request(awaitable: Any, tag: Any, tool_call: bool = False) -> Any:
    """Enter ``tag``'s request now and run ``awaitable`` in it, metered; the request ends (its
    latency and error kind recorded) when the awaitable does. Raises if the request cannot be
    entered (the caller then runs the awaitable untagged)."""
    if _C is not None:
        return _C.request(awaitable, tag, tool_call)
    return _py_request(awaitable, tag, tool_call, enter_request(tag))


# -- spawned tasks ------------------------------------------------------------------------------

def _forget_task(task: Any) -> None:
    task_tags.pop(task, None)


def _install_task_factory(loop: Any) -> None:
    previous = loop.get_task_factory()
    _factory_loops[loop] = previous
    if _C is not None:
        loop.set_task_factory(_C.TaskFactory(previous))
        return

    def factory(loop_: Any, coro: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("context")
        tag = ctx.get(CURRENT) if ctx is not None else CURRENT.get()
        if tag is not None and metering:
            coro = _Metered(coro, tag)
        if previous is not None:
            task = previous(loop_, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop_, **kwargs)
        if tag is not None:
            task_tags[task] = tag
            task.add_done_callback(_forget_task)
        return task

    factory._mcpprof = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)


def remove_task_factories() -> None:
    for loop, previous in list(_factory_loops.items()):
        try:
            current_factory = loop.get_task_factory()
            if getattr(current_factory, "_mcpprof", False) and not loop.is_closed():
                loop.set_task_factory(previous)
        except Exception:
            pass
    _factory_loops.clear()


# -- worker threads ------------------------------------------------------------------------------

def tagged(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a callable about to run on a worker thread so the thread carries the caller's tag (in
    :data:`thread_tags`, for the pure-Python path) and its CPU is charged to it."""
    tag = CURRENT.get()
    if tag is None:
        return func

    def run_tagged(*args: Any, **kwargs: Any) -> Any:  # no functools.wraps: it costs more than the rest
        ident = threading.get_ident()
        prev = thread_tags.get(ident)
        thread_tags[ident] = tag
        t0 = _thread_cpu()
        try:
            return func(*args, **kwargs)
        finally:
            t1 = _thread_cpu()
            tag.cpu_ns += t1 - t0
            if workercalls.watchers:  # for the sampler: it cannot catch a short call mid-call
                workercalls.note(ident, (func, tag, t0, t1))
            if prev is None:
                thread_tags.pop(ident, None)
            else:
                thread_tags[ident] = prev

    return run_tagged


_thread_patches: List[Tuple[Any, str, Any]] = []


def install_thread_hooks(exact: Optional[bool] = None) -> None:
    """Install what tagging needs beside the adapter (idempotent, reversible): the ``to_thread``
    wrappers (worker threads' CPU per request, and their tags on the pure-Python path); with exact
    CPU (``exact``, else :data:`exact_cpu`) also request metering and the task factory."""
    global metering, installed
    installed = True
    if exact is None:
        exact = exact_cpu
    if not _thread_patches:
        to_thread = sys.modules.get("anyio.to_thread")
        if to_thread is None:
            try:
                import anyio.to_thread as to_thread  # type: ignore[no-redef]
            except Exception:
                to_thread = None
        # Plain functions returning the original coroutine (no coroutine of our own): the stdio
        # transport alone calls run_sync several times per request, outside any request.
        if to_thread is not None and hasattr(to_thread, "run_sync"):
            _patch(to_thread, "run_sync", _thread_hook(to_thread.run_sync))
        to_thread_ = _thread_hook(asyncio.to_thread)
        _patch(asyncio, "to_thread", to_thread_)
        threads_mod = sys.modules.get("asyncio.threads")
        if threads_mod is not None:
            _patch(threads_mod, "to_thread", to_thread_)
    if exact and not metering:
        metering = True
        if _C is not None:
            _C.set_flags(serving, True)


def _thread_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original(func, ...)`` with ``func`` running tagged (:func:`tagged`) inside a request."""
    if _C is not None:
        return _C.thread_hook(original)
    get_tag = CURRENT.get

    @functools.wraps(original)
    def hook(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return original(func if get_tag() is None else tagged(func), *args, **kwargs)

    return hook


def _patch(obj: Any, name: str, value: Any) -> None:
    _thread_patches.append((obj, name, getattr(obj, name)))
    setattr(obj, name, value)


def uninstall_thread_hooks() -> None:
    global metering, installed
    metering = installed = False
    if _C is not None:
        _C.set_flags(serving, False)
    while _thread_patches:
        obj, name, original = _thread_patches.pop()
        setattr(obj, name, original)
    remove_task_factories()


def reset() -> None:
    """Forget every tag (used between tests and when the agent stops)."""
    global serving
    task_tags.clear()
    thread_tags.clear()
    loops.clear()
    loop_threads.clear()
    finished.clear()
    serving = False
    if _C is not None:
        _C.set_flags(False, metering)


if _C is not None:
    _C.configure(current=CURRENT, task_tags=task_tags, thread_tags=thread_tags, sinks=request_sinks,
                 current_tasks=_current_tasks, note_loop=_note_loop,
                 finished=finished, drain=drain, label_entry=_label_entry, label_cache=_label_cache,
                 error_kind=error_kind, first_request=_first_request, get_running_loop=asyncio.events._get_running_loop,
                 task_type=asyncio.Task, forget_task=_forget_task, tool_error=TOOL_ERROR, drain_at=DRAIN_AT,
                 targets={m: tuple(v) for m, v in _TARGETS.items()}, resource_spec=("uri", L.RESOURCE_URI))
