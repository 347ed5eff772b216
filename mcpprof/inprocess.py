"""Profile in-process work: ``with mcpprof.profile() as p:`` and ``@mcpprof.profile()``.

For tests, scripts and notebooks. The in-process sampler (:class:`mcpprof.collect.sampler.Sampler`)
runs while the block (or the decorated function) runs; MCP requests handled meanwhile by a server
instrumented with :func:`mcpprof.instrument` (or passed as ``server=``) are tagged per tool and their
latencies recorded, so an in-process MCP server driven by an in-process client profiles per tool::

    server = build_server()
    with mcpprof.profile(server=server) as p:
        asyncio.run(drive(server))          # e.g. ``async with mcp.Client(server) as c: ...``
    p.profile.by_tool()                     # or display ``p`` in Jupyter

``memory=True`` also traces allocations with tracemalloc and keeps what is still allocated at the
end as ``p.memory`` (an ``inuse_space`` profile). Nothing is printed.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, List, Optional, TypeVar

from .model import Profile, RequestTable

F = TypeVar("F", bound=Callable[..., Any])


class ProfileSession:
    """One profiling session; ``profile`` (and ``memory``) are set when it ends.

    Re-entering a session starts a new one. It displays itself in Jupyter like its profile.
    """

    def __init__(self, rate_hz: float = 1000.0, *, server: Any = None, memory: bool = False,
                 nframe: int = 16, title: Optional[str] = None, exact_cpu: bool = False):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        self.rate_hz = float(rate_hz)
        self.server = server
        self.memory_enabled = bool(memory)
        self.nframe = int(nframe)
        self.title = title
        self.exact_cpu = bool(exact_cpu)
        self.profile: Optional[Profile] = None
        self.memory: Optional[Profile] = None
        self._sampler: Any = None
        self._requests: Optional[RequestTable] = None
        self._lock = threading.Lock()
        self._instrumented = False
        self._started_tracing = False
        self._sink: Optional[Callable[..., None]] = None
        self._owns_hooks = False

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> "ProfileSession":
        from .collect.sampler import Sampler
        from .collect.threads import request_tagger
        from .mcp import context

        self.profile = self.memory = None
        self._requests = RequestTable()
        requests, lock = self._requests, self._lock

        def sink(tags: List[Any]) -> None:
            with lock:
                requests.record_tags(tags)

        self._sink = sink
        self._owns_hooks = not context.installed  # an agent may have installed them already
        context.install_thread_hooks(exact=self.exact_cpu or None)
        context.request_sinks.append(sink)
        if self.server is not None:
            from .mcp.install import instrument

            if not _is_instrumented(self.server):
                instrument(self.server)
                self._instrumented = True
        if self.memory_enabled:
            import tracemalloc

            if not tracemalloc.is_tracing():
                tracemalloc.start(self.nframe)
                self._started_tracing = True
        self._sampler = Sampler(self.rate_hz, tagger=request_tagger(), timer="thread",
                                metadata={"view": "in-process"})
        self._sampler.start()
        return self

    def stop(self) -> Profile:
        from .mcp import context

        sampler, self._sampler = self._sampler, None
        if sampler is None:
            raise RuntimeError("this profiling session is not running")
        sampler.stop()
        context.drain()  # the requests that ended are handed to the sinks in batches
        profile = sampler.snapshot()
        if self.title:
            profile.metadata["title"] = self.title
        with self._lock:
            profile.requests = self._requests
        import time

        if context.serving and context.request_cpu_mode() != "none":
            # per-request CPU as the agent measures it; the rest of the session's process CPU, an
            # in-process client's included, is the "(transport & dispatch)" row
            profile.metadata.update(request_cpu=context.request_cpu_mode(),
                                    loop_threads=sorted(set(context.loop_threads.values())),
                                    process_cpu_ns=time.process_time_ns() - context.serving_since_cpu_ns)
        if self._sink in context.request_sinks:
            context.request_sinks.remove(self._sink)
        if self.memory_enabled:
            self.memory = _memory_snapshot(self.nframe)
            if self._started_tracing:
                import tracemalloc

                tracemalloc.stop()
                self._started_tracing = False
        if self._instrumented:
            from .mcp.install import _adapters

            for adapter in _adapters():  # the middleware only: the thread hooks are handled below
                adapter.uninstall(self.server)
            self._instrumented = False
        if self._owns_hooks:
            context.uninstall_thread_hooks()
            context.reset()
        self.profile = profile
        return profile

    def __enter__(self) -> "ProfileSession":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __call__(self, func: F) -> F:
        """Use as a decorator: every call of ``func`` is profiled; the last one is kept in
        ``self.profile`` (and ``func.mcpprof``, this session)."""
        import inspect

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            awrapper.mcpprof = self  # type: ignore[attr-defined]
            return awrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        wrapper.mcpprof = self  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    # -- display ---------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from .notebook.display import publish_profile

        if self.profile is None:
            from IPython.display import publish_display_data

            publish_display_data({"text/plain": repr(self)})
        else:
            publish_profile(self.profile, memory=self.memory)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        from .notebook.display import profile_bundle

        if self.profile is None:
            return {"text/plain": repr(self)}
        return profile_bundle(self.profile, memory=self.memory)

    def __repr__(self) -> str:
        state = "running" if self._sampler is not None else ("done" if self.profile is not None else "idle")
        return f"<mcpprof.profile {state} at {self.rate_hz:g} Hz: {self.profile!r}>"


def _is_instrumented(server: Any) -> bool:
    """Whether ``server`` already carries mcpprof's middleware (then it is left alone)."""
    from .mcp.install import _adapters

    for adapter in _adapters():
        lister = getattr(adapter, "middleware_list", None)
        mws = lister(server) if lister is not None else None
        if mws and any(getattr(m, "mcpprof_marker", False) for m in mws):
            return True
    return False


def _memory_snapshot(nframe: int) -> Optional[Profile]:
    import tracemalloc

    from .collect.tracemalloc_collector import TracemallocCollector

    if not tracemalloc.is_tracing():
        return None
    return TracemallocCollector(nframe).snapshot()


def profile(rate_hz: float = 1000.0, *, server: Any = None, memory: bool = False, nframe: int = 16,
            title: Optional[str] = None, exact_cpu: bool = False) -> ProfileSession:
    """A profiling session for in-process work, as a context manager or a decorator.

    ``rate_hz``: sampling rate (the sampler thread samples every other thread). ``server``: an MCP
    server object to tag per tool for the session (instrumented and uninstrumented again; an
    already instrumented server is left as it is). ``memory``: also trace allocations and keep the
    live ones at the end in ``session.memory``. ``exact_cpu``: measure each request's CPU exactly
    (metered steps) rather than from samples. The result is ``session.profile``.
    """
    return ProfileSession(rate_hz, server=server, memory=memory, nframe=nframe, title=title, exact_cpu=exact_cpu)


__all__: List[str] = ["profile", "ProfileSession"]
