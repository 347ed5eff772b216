"""Automatic garbage collection paused while the agent builds and writes a profile (not to be confused
with :mod:`mcpprof.memory.gcpauses`, the recorder that times the collections the server runs).

A busy MCP server under load may run almost no collections: the SDK's per-request objects die by
reference counting (the example server: 1-3 young collections in 40 s). Building a profile makes
thousands of short-lived lists and dicts at once; each 700 of them started a young collection in the
agent's thread, the collections promoted the half-built profile to the older generations, and every
30-40 s that pushed the server into a full collection of its whole heap (57-72 ms with the GIL held,
about 91 000 objects). With collection paused, those objects die by reference counting as soon as the
write ends, and nothing is promoted. Stdlib only; runs inside the server.

Collection is a process-wide switch: :func:`gc_paused` turns it off only if it was on, and on again
when the last pause ends. A server that itself turns collection off during a pause (well under a
second) would find it on again afterwards.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.RLock()  # re-entrant: a signal handler's final write may interrupt this thread's pause
_depth = 0
_disabled_by_us = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause automatic collection for the ``with`` block (nested and concurrent pauses share one)."""
    global _depth, _disabled_by_us
    with _lock:
        if _depth == 0:
            _disabled_by_us = gc.isenabled()
            if _disabled_by_us:
                gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _disabled_by_us:
                _disabled_by_us = False
                gc.enable()
