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
