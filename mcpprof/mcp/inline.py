"""Sync tools that run inline on the event loop, and how long they blocked it.

mcp 1.x ``mcp.server.fastmcp`` and fastmcp 2.x call a plain ``def`` tool directly on the event-loop
thread: while it runs no other request makes progress. Their adapters wrap that call site with
:func:`timed` (only for sync tools, where the call never suspends, so its wall time is exactly the
time the loop was blocked) and the agent writes :func:`snapshot` into ``metadata["loop_blocked"]``.

Stdlib only; nothing happens at import; recording never raises into the server.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Tuple

from ..model import labels as L
from . import context

_lock = threading.Lock()
_blocked: Dict[Tuple[str, str], List[int]] = {}  # (method, target) -> [count, total_ns, max_ns]


def record(duration_ns: int) -> None:
    """Charge ``duration_ns`` of blocked loop to the calling context's request."""
    try:
        tag = context.CURRENT.get()
        key = (tag.method, tag.target) if tag is not None else ("", "")
        with _lock:
            row = _blocked.get(key)
            if row is None:
                _blocked[key] = [1, duration_ns, duration_ns]
            else:
                row[0] += 1
                row[1] += duration_ns
                if duration_ns > row[2]:
                    row[2] = duration_ns
    except Exception:
        pass


async def timed(call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call()`` (a coroutine that runs a sync tool without suspending) and record its time."""
    t0 = time.perf_counter_ns()
    try:
        return await call()
    finally:
        record(time.perf_counter_ns() - t0)


def snapshot() -> Dict[str, Dict[str, int]]:
    """``{request name: {"count", "total_ns", "max_ns"}}``, named like the summary's rows."""
    with _lock:
        items = [(k, list(v)) for k, v in _blocked.items()]
    out = {}
    for (method, target), (count, total, peak) in items:
        name = f"{method} {target}" if target else (method or L.OUTSIDE_REQUESTS)
        out[name] = {"count": count, "total_ns": total, "max_ns": peak}
    return out


def reset() -> None:
    with _lock:
        _blocked.clear()
