"""The registry of collectors: one entry per way of recording a profile.

The CLI's ``--collector`` choices, ``mcpprof info`` and the docs table are built from
:data:`COLLECTORS`. A spec's ``factory`` builds the collector (importing its dependencies only
then); ``check()`` says whether it can run here, without importing anything heavy. Stdlib only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import UsageError

KINDS = ("cpu", "memory")
RUNS_IN = ("server", "outside")


@dataclass(frozen=True)
class CollectorSpec:
    """How to build one collector and whether it can run here.

    ``kind``: ``"cpu"`` or ``"memory"``; ``extra``: the pip extra that installs its dependencies
    (``""`` for none); ``runs_in``: ``"server"`` (inside the profiled process) or ``"outside"``;
    ``check()`` returns None when available, else a one-line reason.
    """

    name: str
    kind: str
    description: str
    extra: str
    runs_in: str
    factory: Callable[..., Any]
    check: Callable[[], Optional[str]]


def _sampler(**options: Any) -> Any:
    from .sampler import Sampler

    return Sampler(**options)


def _sampler_check() -> Optional[str]:
    if not hasattr(sys, "_current_frames"):
        return "this Python has no sys._current_frames()"
    return None


def _exact(**options: Any) -> Any:
    from .yappi_collector import ExactCollector

    return ExactCollector(**options)


def _exact_check() -> Optional[str]:
    from .yappi_collector import yappi_check

    return yappi_check()


def _pyinstrument(**options: Any) -> Any:
    from .pyinstrument_collector import PyinstrumentCollector

    return PyinstrumentCollector(**options)


def _pyinstrument_check() -> Optional[str]:
    from .pyinstrument_collector import pyinstrument_check

    return pyinstrument_check()


def _pyspy(**options: Any) -> Any:
    from .pyspy_collector import PySpyCollector

    return PySpyCollector(**options)


def _pyspy_check() -> Optional[str]:
    from .pyspy_collector import pyspy_check

    return pyspy_check()


COLLECTORS: Dict[str, CollectorSpec] = {
    spec.name: spec
    for spec in (
        CollectorSpec(
            name="sample",
            kind="cpu",
            description="in-process stack sampler (default): wall and per-thread CPU time, "
                        "per MCP request, stdlib only",
            extra="",
            runs_in="server",
            factory=_sampler,
            check=_sampler_check,
        ),
        CollectorSpec(
            name="exact",
            kind="cpu",
            description="yappi: every call counted and timed per MCP request, all threads, "
                        "CPU or wall clock (slow: for finding what a request calls)",
            extra="yappi",
            runs_in="server",
            factory=_exact,
            check=_exact_check,
        ),
        CollectorSpec(
            name="pyinstrument",
            kind="cpu",
            description="pyinstrument session; sees only the event-loop thread, tools by frames",
            extra="pyinstrument",
            runs_in="server",
            factory=_pyinstrument,
            check=_pyinstrument_check,
        ),
        CollectorSpec(
            name="pyspy",
            kind="cpu",
            description="py-spy from outside (needs ptrace rights), threads labelled, tools by frames",
            extra="pyspy",
            runs_in="outside",
            factory=_pyspy,
            check=_pyspy_check,
        ),
    )
}


def get_collector(name: str) -> CollectorSpec:
    """The spec registered as ``name``; :class:`~mcpprof.errors.UsageError` if there is none."""
    spec = COLLECTORS.get(name)
    if spec is None:
        known = ", ".join(sorted(COLLECTORS))
        raise UsageError(f"unknown collector {name!r}: choose one of {known}")
    return spec


def available() -> List[Tuple[CollectorSpec, Optional[str]]]:
    """Every collector with None if it can run here, else the reason it cannot."""
    out: List[Tuple[CollectorSpec, Optional[str]]] = []
    for spec in COLLECTORS.values():
        try:
            reason = spec.check()
        except Exception as exc:  # a broken check must not break `mcpprof info`
            reason = f"check failed: {type(exc).__name__}: {exc}"
        out.append((spec, reason))
    return out


# -- memory collectors (mcpprof.collect.tracemalloc_collector, mcpprof.collect.memray_collector) --

def _tracemalloc(**options: Any) -> Any:
    from .tracemalloc_collector import TracemallocCollector

    return TracemallocCollector(**options)


def _memray(**options: Any) -> Any:
    from .memray_collector import MemrayCollector

    return MemrayCollector(**options)


def _memray_check() -> Optional[str]:
    from .memray_collector import check

    return check()


COLLECTORS.update({spec.name: spec for spec in (
    CollectorSpec(name="tracemalloc", kind="memory",
                  description="stdlib tracemalloc: live bytes/objects per stack and tool (~2.4x slower "
                              "requests at 1 frame, more with deeper tracebacks)",
                  extra="", runs_in="server", factory=_tracemalloc, check=lambda: None),
    CollectorSpec(name="memray", kind="memory",
                  description="memray Tracker in a launched server, or memray attach (gdb) to a running "
                              "one: live bytes per stack (~1.5x slower requests)",
                  extra="memray", runs_in="server", factory=_memray, check=_memray_check),
)})
