"""The agent: runs inside a server started by ``mcpprof run`` (loaded by a generated
``sitecustomize``) or by :func:`start` in code.

It waits until the server imports the MCP SDK (so helper processes such as ``uvx`` shims are not
profiled), then instruments it, starts the sampler, and writes ``profile-<pid>.mcpprof`` into the
output folder: every ``flush_s`` seconds, or less often when a write takes more than
:data:`FLUSH_BUDGET` of that time (marked incomplete, so a SIGKILL loses at most that much),
and complete at exit, on stdin close, SIGTERM or SIGINT. A crash leaves the last write, marked
incomplete with the reason. Stdlib only; never writes to stdout; its failures never fail the server.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from typing import Any, List, Optional

from ..model.requests import RequestTable
from ..model.spans import EXTRA_KEY as SPANS_KEY, SpanRing
from .config import AgentConfig

_agent: Optional["Agent"] = None
#: Periodic flushes are spaced so that writing takes at most this share of the time (in CPU).
FLUSH_BUDGET = 0.002
#: A periodic write is a crash snapshot, kept cheap: the latest this many request spans and
#: recorder events, at most PERIODIC_RESERVOIR latencies per request kind (a uniform subsample),
#: gzip level 0 (stored, not compressed). The final write has everything, compressed.
PERIODIC_SPANS = 500
PERIODIC_RESERVOIR = 1024


def _warn(message: str) -> None:
    try:
        sys.stderr.write(f"mcpprof: {message}\n")
        sys.stderr.flush()
    except Exception:
        pass


class Agent:
    """Owns the sampler, the request table and the profile file of one server process."""

    def __init__(self, config: AgentConfig):
        self.config = config
        self.pid = os.getpid()
        self.path = os.path.join(config.out_dir, f"profile-{self.pid}.mcpprof")
        self.requests = RequestTable()
        self.spans = SpanRing()  # the last requests' start and duration (trace export)
        self.sampler: Any = None  # the CPU collector (mcpprof.collect.registry)
        self.recorders: list = []  # side recorders (mcpprof.launch.recorders.RECORDERS)
        self.services: list = []   # services (mcpprof.launch.recorders.SERVICES)
        self.active = False
        self.crash: Optional[str] = None
        self.finished = False
        self.flushes = 0
        self.flush_ns = 0  # CPU spent writing periodic flushes (part of mcpprof's overhead)
        self._final_written = False
        self.start_ns = time.time_ns()
        self.cpu_start_ns = time.process_time_ns()
        self._lock = threading.RLock()  # the request table and spans (taken on every request)
        self._write_lock = threading.Lock()  # one write at a time
        self._stop = threading.Event()
        self._flusher: Optional[threading.Thread] = None

    # -- life cycle ------------------------------------------------------------------------------
    def activate(self, *_: Any) -> None:
        """Start profiling (idempotent); called when the MCP SDK is first imported."""
        with self._lock:
            if self.active or self.finished:
                return
            self.active = True
        try:
            from ..collect.registry import get_collector
            from ..mcp import context

            os.makedirs(self.config.out_dir, exist_ok=True)
            context.exact_cpu = context.exact_cpu or self.config.exact_cpu
            context.install_thread_hooks()
            context.request_sinks.append(self._on_requests)
            spec = get_collector(self.config.mode)
            options = {"rate_hz": self.config.rate_hz}
            if spec.name == "sample":
                options["timer"] = os.environ.get("MCPPROF_TIMER", "auto")
            self.sampler = spec.factory(**options)
            self.sampler.start()
            self._start_plugins()
            atexit.register(self.finish, "exit")
            self._install_signal_handlers()
            self._install_excepthook()
            self._flusher = threading.Thread(target=self._flush_loop, name="mcpprof-flush", daemon=True)
            self._flusher.start()
            if not self.config.quiet:
                _warn(f"profiling pid {self.pid} at {self.config.rate_hz:g} Hz -> {self.path}")
        except Exception as exc:  # never fail the server
            _warn(f"could not start profiling: {exc!r}")

    def _start_plugins(self) -> None:
        from . import recorders as R

        for registry, names, default, bucket in (
                (R.RECORDERS, self.config.recorders, R.DEFAULT_RECORDERS, self.recorders),
                (R.SERVICES, self.config.services, R.DEFAULT_SERVICES, self.services)):
            for name in filter(None, (n.strip() for n in (default if names is None else names).split(","))):
                factory = registry.get(name)
                if factory is None:
                    _warn(f"unknown recorder or service {name!r} ignored")
                    continue
                try:
                    plugin = factory(self)
                    plugin.start()
                    bucket.append(plugin)
                except Exception as exc:
                    _warn(f"{name} did not start: {exc!r}")

    def _stop_plugins(self) -> None:
        for plugin in self.recorders + self.services:
            try:
                plugin.stop()
            except Exception:
                pass

    def _on_requests(self, tags: List[Any]) -> None:
        with self._lock:  # a batch of finished requests (mcpprof.mcp.context.drain)
            self.requests.record_tags(tags)
            self.spans.add_tags(tags)

    def request_table(self) -> RequestTable:
        """A copy of the per-request latency table, with the requests that have just ended."""
        from ..mcp import context

        context.drain()
        with self._lock:
            table = RequestTable()
            table.merge(self.requests)
        return table

    def requests_served(self) -> int:
        """How many requests have ended so far."""
        from ..mcp import context

        context.drain()
        return self.requests.total_count

    def _flush_loop(self) -> None:
        # Periodic writes are spaced by the time the server ran (the in-process sampler's ran_ns, else
        # the wall clock): a server stopped (SIGSTOP, a debugger) writes nothing new when it goes on.
        # Adaptive: writing takes at most FLUSH_BUDGET of that time (in CPU; a big profile flushes
        # less often). Between writes the thread hands finished requests to the sinks every second.
        from ..mcp import context

        step = self.config.flush_s if self.config.flush_s > 0 else 1.0
        interval, since = step, self._ran_ns()
        while not self._stop.wait(step):
            if self.config.flush_s <= 0 or self._ran_ns() - since < interval * 0.9e9:  # ticks jitter
                context.drain()
                continue
            since = self._ran_ns()
            t0 = time.thread_time_ns()  # the CPU writing takes (its wall time includes GIL waits)
            self.flush(level=0)
            spent = time.thread_time_ns() - t0
            self.flush_ns += spent
            interval = max(self.config.flush_s, spent / 1e9 / FLUSH_BUDGET)

    def _ran_ns(self) -> int:
        ran = getattr(self.sampler, "ran_ns", None)
        return ran if isinstance(ran, int) else time.monotonic_ns()

    # -- writing ---------------------------------------------------------------------------------
    def build_profile(self, complete: bool, end_reason: str = "", spans_limit: Optional[int] = None) -> Any:
        """The profile so far; ``spans_limit``: keep only that many of the latest request spans
        (and recorder events)."""
        from ..mcp import install

        profile = self.sampler.snapshot()
        table = self.request_table()
        if spans_limit is not None:
            table.thin(PERIODIC_RESERVOIR)
        with self._lock:  # the sinks wait on this lock: copy, and encode outside it
            ring = self.spans.copy()
        profile.requests = table
        profile.extras[SPANS_KEY] = ring.to_extra(spans_limit)
        for recorder in self.recorders:
            try:
                recorder.contribute(profile, spans_limit)
            except Exception as exc:
                _warn(f"a recorder failed: {exc!r}")
        md = profile.metadata
        from ..mcp import context

        now_cpu = time.process_time_ns()
        since = context.serving_since_cpu_ns if context.serving else now_cpu
        md.update({
            "process_cpu_ns": now_cpu - since,  # CPU while serving (from the first request on)
            "startup_cpu_ns": since - self.cpu_start_ns,
            "request_cpu": context.request_cpu_mode(),  # how the hooks measured CPU per request
            "loop_threads": sorted(set(context.loop_threads.values())),
            "hooks": "c" if context._C is not None else "python",  # which request hooks ran
            "command": self.config.command or " ".join(sys.argv),
            "argv": list(sys.argv),
            "pid": self.pid,
            "ppid": os.getppid(),
            "executable": sys.executable,
            **install.profile_metadata(),  # "frameworks" (kinds, versions), "loop_blocked"
            "packages": _package_versions(),
            "agent_start_ns": self.start_ns,
            "complete": complete,
            "end_reason": end_reason or ("running" if not complete else "exit"),
            "flushes": self.flushes,
            "flush_ns": self.flush_ns,
            "mode": self.config.mode,
        })
        return profile

    def flush(self, complete: bool = False, end_reason: str = "", final: bool = False, level: int = 6) -> None:
        """Write the profile now (atomically, gzip ``level``). After the final write nothing is
        written again."""
        if self.sampler is None:
            return
        try:
            from ..model.io import save
            from .collection_pause import gc_paused

            with self._write_lock:
                if self._final_written:
                    return
                limit = None if final else PERIODIC_SPANS  # a periodic write is a crash snapshot
                with gc_paused():  # the profile's containers die by refcount; no collection (collection_pause)
                    save(self.build_profile(complete, end_reason, limit), self.path, level)
                self.flushes += 1
                self._final_written = final
        except Exception as exc:
            _warn(f"could not write {self.path}: {exc!r}")

    def finish(self, end_reason: str = "exit") -> None:
        """Stop sampling and write the final profile (complete unless the server crashed)."""
        with self._lock:
            if self.finished or self.sampler is None:
                return
            self.finished = True
        self._stop.set()
        try:
            self.sampler.stop()
        except Exception:
            pass
        self._stop_plugins()
        self.flush(complete=self.crash is None, end_reason=self.crash or end_reason, final=True)

    # -- exits -----------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGHUP):
            try:
                if signal.getsignal(signum) is signal.SIG_DFL:
                    signal.signal(signum, self._on_signal)
            except (ValueError, OSError):
                pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.finish(f"signal {signal.Signals(signum).name}")
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def _install_excepthook(self) -> None:
        previous = sys.excepthook

        def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
            if not issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
                self.crash = f"crash: {exc_type.__name__}"
            previous(exc_type, exc, tb)

        sys.excepthook = excepthook


def _package_versions() -> dict:
    from ..mcp.install import package_version

    out = {}
    for name in ("mcp", "fastmcp", "anyio", "pydantic", "uvicorn"):
        if name in sys.modules:
            found = package_version(name)
            if found:
                out[name] = found
    return out


def _after_fork_in_child() -> None:
    global _agent
    parent = _agent
    if parent is None:
        return
    _agent = Agent(parent.config)
    if parent.active and not parent.finished:
        _agent.activate()


def current() -> Optional[Agent]:
    return _agent


def start(config: AgentConfig) -> Agent:
    """Start an agent in this process; with ``config.start == "mcp"`` it waits for the SDK import."""
    global _agent
    if _agent is not None:
        return _agent
    _agent = agent = Agent(config)
    if config.start == "now":
        agent.activate()
    else:
        from ..mcp.install import install_import_hook

        install_import_hook(on_patch=agent.activate)
    try:
        os.register_at_fork(after_in_child=_after_fork_in_child)
    except Exception:
        pass
    return agent


def boot() -> None:
    """Entry point of the generated ``sitecustomize``: configure from the environment."""
    config = AgentConfig.from_env()
    if config.out_dir:
        try:
            start(config)
        except Exception as exc:
            _warn(f"agent failed to start: {exc!r}")
    _chain_sitecustomize()


def _chain_sitecustomize() -> None:
    """Run the ``sitecustomize.py`` our generated one shadows (Debian's python has one)."""
    stub = os.environ.get("MCPPROF_STUB", "")
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == os.path.abspath(stub or "\0"):
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            try:
                import runpy

                runpy.run_path(candidate, run_name="sitecustomize")
            except Exception as exc:
                _warn(f"the server's own sitecustomize failed: {exc!r}")
            return
