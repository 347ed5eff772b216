"""Memory over time: a thread samples RSS, traced bytes (when tracemalloc traces), gc generation
counts and the number of requests served, every ``interval_s``. Runs inside the server; stdlib only.

Stored in ``profile.extras["memory_timeline"]`` by the agent (recorder name ``memory_timeline``),
for a report to draw beside the request rate. The series stays bounded: past ``max_points`` every
other point is dropped and the interval doubles.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc
from typing import Any, Dict, List, Optional

from .procmem import rss_now

ENV_INTERVAL = "MCPPROF_MEM_INTERVAL"  # seconds between points (default 0.5)
COLUMNS = ["t_s", "rss", "traced", "gc_gen0", "gc_gen1", "gc_gen2", "requests"]


class MemoryTimeline:
    """Periodic memory readings; ``points`` rows follow :data:`COLUMNS` (``traced`` is -1 when
    tracemalloc is not tracing, ``requests`` -1 without an agent)."""

    def __init__(self, agent: Any = None, interval_s: Optional[float] = None, max_points: int = 2000):
        if interval_s is None:
            try:
                interval_s = float(os.environ.get(ENV_INTERVAL, "0.5"))
            except ValueError:
                interval_s = 0.5
        self.agent = agent
        self.interval_s = max(0.01, interval_s)
        self.max_points = max(16, max_points)
        self.points: List[List[float]] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is not None:
            return
        self.t0 = time.monotonic()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="mcpprof-memory-timeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        try:
            traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else -1
            g0, g1, g2 = gc.get_count()
            requests = -1
            if hasattr(self.agent, "requests_served"):
                requests = self.agent.requests_served()
            row = [round(time.monotonic() - self.t0, 3), rss_now(), traced, g0, g1, g2, requests]
            with self._lock:
                self.points.append(row)
                if len(self.points) > self.max_points:
                    self.points = self.points[::2]
                    self.interval_s *= 2
        except Exception:
            pass

    def to_dict(self) -> Dict[str, Any]:
        with self._lock:
            return {"columns": list(COLUMNS), "interval_s": self.interval_s, "points": [list(p) for p in self.points]}

    def contribute(self, profile: Any, limit: Optional[int] = None) -> None:
        profile.extras["memory_timeline"] = self.to_dict()


def factory(agent: Any) -> MemoryTimeline:
    return MemoryTimeline(agent)
