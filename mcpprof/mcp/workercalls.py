"""Sync calls run on worker threads, noted for the sampler (part of :mod:`mcpprof.mcp.context`).

A call that starts and ends within one hold of the GIL is never caught mid-call by a sampler, whose
ticks run only while the event-loop thread holds it. While a sampler watches, the ``to_thread``
wrappers (in C, or :func:`mcpprof.mcp.context.tagged`) note each call here, and every tick takes
them and charges their CPU to their requests (``mcpprof.collect.tick``). Stdlib only, nothing
happens at import.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .tags import _C

Call = Tuple[Any, Any, int, int]  # (callable, request tag, thread CPU ns at start, at end)

#: While a sampler watches (:func:`watch_worker_calls`): ``{thread ident: [call, ...]}``, the calls
#: run on each worker thread since the sampler's last tick took them, at most :data:`MAX` per thread.
worker_calls: Dict[int, List[Call]] = {}
MAX = 64  # the C wrapper's WORKER_CALLS_MAX
watchers = 0  # samplers watching


def watch_worker_calls(on: bool) -> None:
    """Start (``on``) or stop noting the calls run on worker threads; counted, so two samplers can."""
    global watchers
    watchers = max(0, watchers + (1 if on else -1))
    if not watchers:
        worker_calls.clear()
    if _C is not None:
        _C.set_worker_calls(worker_calls if watchers else None)


def take_worker_calls() -> Optional[List[Tuple[int, List[Call]]]]:
    """The calls noted since the last take, by thread (None if there are none); forgets them."""
    if not worker_calls:
        return None
    taken = list(worker_calls.items())
    worker_calls.clear()
    return taken


def note(ident: int, call: Call) -> None:
    """Note a call that ran on thread ``ident`` (the pure-Python wrapper; only while watched)."""
    calls = worker_calls.setdefault(ident, [])
    if len(calls) < MAX:
        calls.append(call)
