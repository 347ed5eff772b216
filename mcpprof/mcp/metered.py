"""The pure-Python metered awaitable (part of :mod:`mcpprof.mcp.context`; the C extension has its
own): each step of the wrapped coroutine charges the thread CPU it takes to a request tag.
Stdlib only, nothing happens at import.
"""

from __future__ import annotations

import collections.abc
import time
from typing import Any

_thread_cpu = time.thread_time_ns


class _Metered(collections.abc.Coroutine):
    """A coroutine (or awaitable) whose every step charges the thread CPU it takes to ``tag``.
    Transparent to await-chain walkers: ``cr_frame`` / ``cr_await`` are the wrapped coroutine's."""

    __slots__ = ("_inner", "_it", "_tag")

    def __init__(self, inner: Any, tag: Any):
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
