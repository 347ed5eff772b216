"""Finished requests on their way to the sinks (part of :mod:`mcpprof.mcp.context`).

A finished request is queued (:data:`finished`), not handed to the sinks on its own path:
:func:`drain` hands the queue to :data:`request_sinks`; readers of the sinks' data drain first, the
agent's background thread drains every second, and a request drains itself when the queue is long.
Stdlib only, nothing happens at import.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, List

#: Called by :func:`drain` with a list of finished request tags, oldest first (each carries its
#: ``duration_ns`` and ``error`` kind, None for a success).
request_sinks: List[Callable[[List[Any]], None]] = []
#: Finished requests not yet handed to the sinks (queued only while there are sinks).
finished: "collections.deque[Any]" = collections.deque()
DRAIN_AT = 65536  # a request drains the queue itself when it is this long (nobody else did)
_drain_lock = threading.Lock()


def drain() -> None:
    """Hand the finished requests to :data:`request_sinks`, oldest first (from any thread; call it
    before reading what the sinks recorded). Never raises."""
    with _drain_lock:
        batch = []
        pop, append = finished.popleft, batch.append
        try:
            while True:
                append(pop())
        except IndexError:
            pass
        if not batch:
            return
        for sink in list(request_sinks):
            try:
                sink(batch)
            except Exception:  # a sink must never fail a request
                pass
