"""Profiling windows opened through the control channel (``mcpprof attach`` on a live server).

A window records from ``start`` to ``stop`` (or ``snapshot``, which does not stop it):

* in the agent's own mode and rate it is a *delta*: the agent's collector keeps running, the
  window's profile is its aggregate at the end minus its aggregate at the start (no extra cost);
* in another mode (``exact``, ``pyinstrument``, ``sample`` at another rate) a second collector of
  that mode runs for the window's life only.

Every window has its own request table (requests that ended inside it, with their exact CPU) and
the process CPU it spanned, so its per-tool table is as exact as the agent's. With ``wait`` it
also samples the async wait view (:mod:`mcpprof.collect.asyncwait`) into
``extras["asyncwait"]``. Runs inside the server: stdlib only.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ..errors import UsageError
from ..model.profile import Frame, LabelSet, Profile, ProfileBuilder
from ..model.requests import RequestTable

#: Metadata of the agent's profile a window keeps when another collector made its samples.
AGENT_KEYS = ("command", "argv", "pid", "ppid", "executable", "frameworks", "loop_blocked", "packages",
              "python", "sys_path", "stdlib_dirs", "site_dirs", "request_cpu", "agent_start_ns")
COUNTERS = ("ticks", "samples", "errors", "missed_ticks", "overflow_samples")

_exclusive = threading.Lock()  # one non-delta window at a time (yappi and pyinstrument are singletons)


def subtract(new: Profile, old: Profile) -> Profile:
    """``new - old`` sample by sample (matched by frames and labels); zero samples dropped."""
    base: Dict[Tuple[Tuple[Frame, ...], LabelSet], Tuple[int, ...]] = {}
    for s in old.samples:
        key = (tuple(old.stack_frames(s.stack)), s.labels)
        prev = base.get(key)
        base[key] = s.values if prev is None else tuple(a + b for a, b in zip(prev, s.values))
    builder = ProfileBuilder(new.sample_types)
    for s in new.samples:
        frames = new.stack_frames(s.stack)
        prev = base.get((tuple(frames), s.labels))
        values = s.values if prev is None else tuple(max(0, a - b) for a, b in zip(s.values, prev))
        if any(values):
            builder.add(frames, values, s.labels)
    out = builder.build()
    out.metadata = dict(new.metadata)
    for key in COUNTERS:
        a, b = new.metadata.get(key), old.metadata.get(key)
        if isinstance(a, int) and isinstance(b, int):
            out.metadata[key] = max(0, a - b)
    return out


class Window:
    """One profiling window; see the module docstring. ``close()`` always releases it."""

    def __init__(self, agent: Any, mode: Optional[str] = None, rate_hz: Optional[float] = None,
                 wait: bool = False, clock: str = "cpu", peer_pid: int = 0):
        from ..mcp import context

        self.agent = agent
        self.mode = mode or agent.config.mode
        self.rate_hz = float(rate_hz or agent.config.rate_hz)
        self.peer_pid = peer_pid
        own = agent.sampler
        self.delta = (own is not None and not agent.finished and self.mode == agent.config.mode
                      and self.rate_hz == float(agent.config.rate_hz) and self.mode != "pyinstrument")
        self.collector: Any = None
        self.baseline: Optional[Profile] = None
        self.wait_sampler: Any = None
        self.requests = RequestTable()
        self._lock = threading.Lock()
        self._holds_exclusive = False
        self._closed = False
        self.final: Optional[Profile] = None
        if self.delta:
            self.baseline = own.snapshot()
        else:
            from ..collect.registry import get_collector

            spec = get_collector(self.mode)
            if spec.runs_in != "server":
                raise UsageError(f"mode {self.mode!r} runs outside the server; the control channel runs "
                                 "in-process modes only (sample, exact, pyinstrument)")
            reason = spec.check()
            if reason:
                raise UsageError(reason)
            if not _exclusive.acquire(blocking=False):
                raise UsageError("another attach is recording in a non-default mode; wait until it stops")
            self._holds_exclusive = True
            options: Dict[str, Any] = {"rate_hz": self.rate_hz}
            if spec.name == "exact":
                options["clock"] = clock
            try:
                self.collector = spec.factory(**options)
                self.collector.start()
            except BaseException:
                self._release()
                raise
        if wait:
            from ..collect.asyncwait import AsyncWaitSampler

            self.wait_sampler = AsyncWaitSampler(min(self.rate_hz, 50.0)).start()
        self.start_ns = time.time_ns()
        self.start_clock = time.perf_counter_ns()
        self.cpu0 = time.process_time_ns()
        context.request_sinks.append(self._on_requests)

    def _on_requests(self, tags: List[Any]) -> None:
        with self._lock:
            self.requests.record_tags(tags)

    def _release(self) -> None:
        if self._holds_exclusive:
            self._holds_exclusive = False
            _exclusive.release()

    def profile(self, final: bool) -> Profile:
        """The window's profile so far; with ``final`` the window stops recording."""
        if self.final is not None:
            return self.final
        if final and self.collector is not None:
            self.collector.stop()  # first: what follows must not be profiled (yappi sees every thread)
        cpu_ns = time.process_time_ns() - self.cpu0
        duration = time.perf_counter_ns() - self.start_clock
        agent_profile = self.agent.build_profile(False, "attached window")
        if self.delta:
            assert self.baseline is not None
            profile = subtract(agent_profile, self.baseline)
            profile.extras.update(agent_profile.extras)  # recorders' data (slowest requests, ...)
        else:
            profile = self.collector.snapshot()
            meta = {k: agent_profile.metadata[k] for k in AGENT_KEYS if k in agent_profile.metadata}
            meta.update(profile.metadata)
            profile.metadata = meta
            profile.extras.update(agent_profile.extras)
        with self._lock:
            table = RequestTable()
            table.merge(self.requests)
        profile.requests = table
        profile.metadata.update({
            "window": {"delta": self.delta, "mode": self.mode, "attached_by_pid": self.peer_pid},
            "mode": self.mode, "start_ns": self.start_ns, "duration_ns": duration,
            "process_cpu_ns": cpu_ns, "startup_cpu_ns": 0, "complete": True,
            "end_reason": "attach window" if final else "attach snapshot",
        })
        if self.wait_sampler is not None:
            from ..model.io import to_dict

            if final:
                self.wait_sampler.stop()
            profile.extras["asyncwait"] = to_dict(self.wait_sampler.snapshot())
        if final:
            self.final = profile
            self.close()
        return profile

    def close(self) -> None:
        """Stop everything the window started (idempotent; never raises)."""
        if self._closed:
            return
        self._closed = True
        from ..mcp import context

        try:
            context.request_sinks.remove(self._on_requests)
        except ValueError:
            pass
        for part in (self.collector, self.wait_sampler):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    pass
        self._release()


def latency_rows(table: RequestTable) -> List[Dict[str, Any]]:
    """Per request kind: count, errors, mean / p50 / p95 / p99 / max latency and CPU (ns)."""
    rows = []
    for (method, target), st in sorted(table.stats.items()):
        rows.append({"method": method, "target": target, "count": st.count, "errors": st.errors,
                     "mean_ns": int(st.mean_ns), "p50_ns": st.quantile(0.5), "p95_ns": st.quantile(0.95),
                     "p99_ns": st.quantile(0.99), "max_ns": st.max_ns, "cpu_ns": st.cpu_ns})
    return rows


__all__ = ["Window", "subtract", "latency_rows"]
