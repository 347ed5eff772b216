"""Which MCP request is running where: the tag registry shared by adapters and samplers.

A framework adapter calls :func:`enter_request` / :func:`exit_request` around every request. That
sets a ContextVar (seen by the request's task, tasks it spawns and ``to_thread`` workers) and
fills two maps a sampler thread *can* read, because a sampler cannot read another thread's
ContextVars:

* ``task_tags``: asyncio task -> tag, for the event-loop thread (the running task is found in
  ``asyncio.tasks._current_tasks``); tasks spawned inside a request inherit its tag through a task
  factory installed on the loop.
* ``thread_tags``: thread ident -> tag, set where a request's sync code starts running on a
  worker thread (``anyio.to_thread.run_sync`` and ``asyncio.to_thread`` are wrapped while
  tagging is installed).

Exact CPU per request: adapters run the request's handler through :func:`metered`, which reads the
thread CPU clock around each step of it (each ``send`` into the coroutine), so only the request's own
steps are charged, however requests interleave on the loop; tasks spawned inside a request are
metered the same way by the task factory, and worker-thread code by :func:`tagged`. Nothing runs per
event-loop callback: a loop step that is not a request's costs nothing.

A finished request is queued (:data:`finished`), not handed to the sinks on its own path:
:func:`drain` hands the queue to :data:`request_sinks`; readers of the sinks' data drain first, the
agent's background thread drains every second, and a request drains itself when the queue is long.

The hot path (tags, metered steps, the task factory, the ``to_thread`` hooks) runs in the optional C
extension :mod:`mcpprof.mcp._hooks` where it is built (``MCPPROF_PURE_PYTHON=1`` turns it off);
the pure-Python code here does the same work where it is not.

Stdlib only, nothing happens at import, and every hook is reversible (:func:`uninstall_thread_hooks`).
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import contextvars
import functools
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..model import labels as L

LabelSet = Tuple[Tuple[str, str], ...]
_LABEL_CACHE_MAX = 4096
#: (method, target, key) -> (labels, method, target): one shared tuple and name strings per name
_label_cache: Dict[Tuple[str, str, str], Tuple[LabelSet, str, str]] = {}


def _label_entry(method: str, target: str, target_key: str) -> Tuple[LabelSet, str, str]:
    """(labels, method, target) of a request name, cached: what outlives the request (spans, tables)
    then holds one string per name, which a leak check must not see growing."""
    cached = _label_cache.get((method, target, target_key))
    if cached is None:
        pairs = [(L.METHOD, method)]
        if target and target_key:
            pairs.append((target_key, target))
        cached = (tuple(sorted(pairs)), method, target)
        if len(_label_cache) >= _LABEL_CACHE_MAX:
            _label_cache.clear()
        _label_cache[(method, target, target_key)] = cached
    return cached


class PyRequestTag:
    """The MCP request a piece of work belongs to. ``labels`` is the bounded label set
    (method and target); ``request_id`` stays out of it (unbounded). ``cpu_ns``: exact CPU charged
    to it; ``duration_ns`` and ``error`` are set when it ends. (The pure-Python form of
    :data:`RequestTag`.)"""

    __slots__ = ("method", "target", "target_key", "request_id", "session_id", "start_ns", "labels", "cpu_ns",
                 "duration_ns", "error")

    def __init__(self, method: str, target: str = "", target_key: str = "", request_id: str = "",
                 session_id: str = "", start_ns: int = 0):
        self.labels, self.method, self.target = _label_entry(method, target, target_key)
        self.target_key = target_key
        self.request_id = request_id
        self.session_id = session_id
        self.start_ns = start_ns
        self.cpu_ns = 0  # exact CPU charged to this request (its metered steps + worker threads)
        self.duration_ns = 0
        self.error: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.method} {self.target}" if self.target else self.method

    def __repr__(self) -> str:
        return f"<RequestTag {self.name} id={self.request_id}>"


_TARGETS = {"tools/call": ("name", L.TOOL), "prompts/get": ("name", L.PROMPT)}


def _py_tag_for(method: str, params: Any, request_id: Any = None, session_id: Any = None) -> Any:
    """Build a tag from a JSON-RPC method and its raw params (dict or model)."""
    target, key = "", ""
    if params is not None:
        spec = _TARGETS.get(method)
        if spec is None and method.startswith("resources/"):
            spec = ("uri", L.RESOURCE_URI)
        if spec is not None:
            value = params.get(spec[0]) if type(params) is dict else getattr(params, spec[0], None)
            key = spec[1]
            if value is not None:
                target = value if type(value) is str else str(value)
    # a string id is copied here (allocated by mcpprof, not by the server's JSON parser): the span
    # ring keeps the last ids, and a leak check must not see the parser's strings kept per call
    rid = "" if request_id is None else (request_id.encode().decode() if type(request_id) is str
                                         else str(request_id))
    return RequestTag(method, target, key, rid,
                      "" if session_id is None else str(session_id), time.perf_counter_ns())


def _load_c() -> Any:
    if os.environ.get("MCPPROF_PURE_PYTHON", "") == "1":
        return None
    try:
        from . import _hooks
    except ImportError:  # not built, or built for another Python
        return None
    return _hooks


_C = _load_c()
#: The request tag type: the C extension's where it is built, else :class:`PyRequestTag`.
RequestTag: Any = _C.RequestTag if _C is not None else PyRequestTag
#: ``tag_for(method, params, request_id=None, session_id=None)``: the tag of a request.
tag_for: Callable[..., Any] = _C.tag_for if _C is not None else _py_tag_for


CURRENT: "contextvars.ContextVar[Optional[RequestTag]]" = contextvars.ContextVar("mcpprof_request", default=None)

task_tags: Dict[Any, RequestTag] = {}
thread_tags: Dict[int, RequestTag] = {}
loops: Dict[int, Any] = {}  # thread ident -> the event loop that thread runs

#: Called by :func:`drain` with (tag, duration_ns, error kind or None) for every finished request.
request_sinks: List[Callable[[Any, int, Optional[str]], None]] = []
#: Finished requests not yet handed to the sinks (queued only while there are sinks).
finished: "collections.deque[Any]" = collections.deque()
DRAIN_AT = 65536  # a request drains the queue itself when it is this long (nobody else did)
_drain_lock = threading.Lock()


def drain() -> None:
    """Hand the finished requests to :data:`request_sinks`, oldest first (from any thread; call it
    before reading what the sinks recorded). Never raises."""
    with _drain_lock:
        pop = finished.popleft
        while True:
            try:
                tag = pop()
            except IndexError:
                return
            for sink in list(request_sinks):
                try:
                    sink(tag, tag.duration_ns, tag.error)
                except Exception:  # a sink must never fail a request
                    pass

_current_tasks: Dict[Any, Any] = getattr(asyncio.tasks, "_current_tasks", {})
_thread_cpu = time.thread_time_ns
metering = False  # True while hooks are installed: adapters meter request steps (exact CPU)
serving = False  # becomes True with the first request (samples before it are start-up)
serving_since_cpu_ns = 0  # process CPU time when the first request arrived
_factory_loops: "Dict[Any, Any]" = {}  # loop -> the factory it had before ours


def tag_for_thread(ident: int) -> Optional[RequestTag]:
    """The request running on thread ``ident`` right now, or None. Safe from any thread."""
    tag = thread_tags.get(ident)
    if tag is not None:
        return tag
    loop = loops.get(ident)
    if loop is None:
        return None
    task = _current_tasks.get(loop)
    if task is None:
        return None
    return task_tags.get(task)


def current() -> Optional[RequestTag]:
    """The request of the calling context (for code running inside a tool)."""
    return CURRENT.get()


# -- entering and leaving requests (called by adapters, on the event-loop thread) -----------------

def _first_request() -> None:
    global serving, serving_since_cpu_ns
    if not serving:
        serving_since_cpu_ns = time.process_time_ns()
        serving = True


def enter_request(tag: Any) -> Tuple[Any, Any, Any]:
    """Enter ``tag``'s request on this thread (pure Python; :func:`request` does it in C)."""
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
        if loop not in _factory_loops:
            _install_task_factory(loop)
    except RuntimeError:
        pass
    prev = None
    if task is not None:
        prev = task_tags.get(task)
        task_tags[task] = tag
    return token, task, prev


def exit_request(handle: Tuple[Any, Any, Any], tag: Any, error: Optional[str] = None) -> None:
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

class _Metered(collections.abc.Coroutine):
    """A coroutine (or awaitable) whose every step charges the thread CPU it takes to ``tag``.
    Transparent to await-chain walkers: ``cr_frame`` / ``cr_await`` are the wrapped coroutine's."""

    __slots__ = ("_inner", "_it", "_tag")

    def __init__(self, inner: Any, tag: RequestTag):
        self._inner = inner
        self._it = inner if hasattr(inner, "send") and hasattr(inner, "throw") else inner.__await__()
        self._tag = tag

    def send(self, value: Any = None) -> Any:
        t0 = _thread_cpu()
        try:
            return self._it.send(value)
        finally:
            self._tag.cpu_ns += _thread_cpu() - t0

    __next__ = send  # the step the event loop takes: send(None), with no extra call

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:  # type: ignore[override]
        t0 = _thread_cpu()
        try:
            if val is None and tb is None:
                return self._it.throw(typ)
            return self._it.throw(typ, val, tb)
        finally:
            self._tag.cpu_ns += _thread_cpu() - t0

    def close(self) -> None:
        self._it.close()

    def __await__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        return self

    @property
    def cr_frame(self) -> Any:
        return getattr(self._inner, "cr_frame", None)

    @property
    def cr_await(self) -> Any:
        return getattr(self._inner, "cr_await", None)

    @property
    def cr_running(self) -> bool:
        return bool(getattr(self._inner, "cr_running", False))

    @property
    def cr_code(self) -> Any:
        return getattr(self._inner, "cr_code", None)


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


TOOL_ERROR = "tool_error"


def is_tool_error(result: Any) -> bool:
    """A ``tools/call`` result that reports a tool error (``isError``), as a dict or a model."""
    if type(result) is dict:
        return result.get("isError") is True
    return getattr(result, "is_error", False) is True


def error_kind(exc: BaseException) -> str:
    """The error kind recorded for a request that raised: the JSON-RPC error code, or the class."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if code is not None:
        return str(code)
    if exc.__class__.__name__ == "ValidationError":
        return "-32602"
    return exc.__class__.__qualname__


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
    """Wrap a callable about to run on a worker thread so the thread carries the caller's tag."""
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
            tag.cpu_ns += _thread_cpu() - t0
            if prev is None:
                thread_tags.pop(ident, None)
            else:
                thread_tags[ident] = prev

    return run_tagged


_thread_patches: List[Tuple[Any, str, Any]] = []


def install_thread_hooks() -> None:
    """Wrap ``anyio.to_thread.run_sync`` and ``asyncio.to_thread`` and turn on request metering
    (idempotent, reversible)."""
    global metering
    if _thread_patches:
        return
    to_thread = sys.modules.get("anyio.to_thread")
    if to_thread is None:
        try:
            import anyio.to_thread as to_thread  # type: ignore[no-redef]
        except Exception:
            to_thread = None
    # Plain functions returning the original coroutine (no coroutine of our own): the stdio
    # transport alone calls run_sync about a dozen times per request, outside any request.
    if to_thread is not None and hasattr(to_thread, "run_sync"):
        _patch(to_thread, "run_sync", _thread_hook(to_thread.run_sync))
    to_thread_ = _thread_hook(asyncio.to_thread)
    _patch(asyncio, "to_thread", to_thread_)
    threads_mod = sys.modules.get("asyncio.threads")
    if threads_mod is not None:
        _patch(threads_mod, "to_thread", to_thread_)
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
    global metering
    metering = False
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
    finished.clear()
    serving = False
    if _C is not None:
        _C.set_flags(False, metering)


if _C is not None:
    _C.configure(current=CURRENT, task_tags=task_tags, thread_tags=thread_tags, loops=loops,
                 current_tasks=_current_tasks, factory_loops=_factory_loops, install_factory=_install_task_factory,
                 finished=finished, drain=drain, sinks=request_sinks, label_entry=_label_entry,
                 label_cache=_label_cache, error_kind=error_kind, first_request=_first_request,
                 get_running_loop=asyncio.events._get_running_loop, task_type=asyncio.Task,
                 forget_task=_forget_task, targets={m: tuple(v) for m, v in _TARGETS.items()},
                 resource_spec=("uri", L.RESOURCE_URI), tool_error=TOOL_ERROR)
