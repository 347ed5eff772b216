"""The one registry of exporters: the CLI's ``--format`` choices, ``mcpprof info`` and the docs
table all come from :data:`EXPORTERS`.

Each exporter is a pure function ``render(profile, **options) -> bytes`` in its own module. The
``diff-*`` exporters take a diff profile (:func:`mcpprof.analyse.ops.diff`); the ``html`` exporter
also draws one as a differential flame graph.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Union

from ..errors import UsageError
from ..model import Profile
from . import diff, folded, html, pprof, speedscope, trace


@dataclass(frozen=True)
class Exporter:
    """A registered output format. ``extension`` is the one written by default; files ending in
    any of ``extra_extensions`` are also recognised by :func:`guess_from_filename`."""

    name: str
    extension: str
    binary: bool
    description: str
    render: Callable[..., bytes]
    extra_extensions: Tuple[str, ...] = ()

    @property
    def options(self) -> Tuple[str, ...]:
        """Keyword options ``render`` takes (after the profile)."""
        params = list(inspect.signature(self.render).parameters.values())[1:]
        return tuple(p.name for p in params)

    def export(self, profile: Profile, **options: Any) -> bytes:
        """``render`` with option names checked: an unknown option is a UsageError, not a TypeError."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise UsageError(f"the {self.name} exporter has no option {', '.join(unknown)} "
                             f"(it takes: {', '.join(self.options)})")
        return self.render(profile, **options)


EXPORTERS: Dict[str, Exporter] = {
    e.name: e
    for e in (
        Exporter("folded", ".folded", False,
                 "folded stacks (flamegraph.pl, inferno, speedscope, gprof2dot -f collapse)",
                 folded.render, (".collapsedstack.txt", ".collapsed")),
        Exporter("speedscope", ".speedscope.json", False,
                 "speedscope JSON: whole process, per request and per thread (speedscope.app)",
                 speedscope.render),
        Exporter("html", ".html", False,
                 "self-contained interactive flame graph page (no network)",
                 html.render, (".htm",)),
        Exporter("pprof", ".pb.gz", True,
                 "gzipped pprof profile.proto (go tool pprof, speedscope, Pyroscope/Grafana)",
                 pprof.render, (".pprof",)),
        Exporter("trace", ".trace.json", False,
                 "Chrome trace / Perfetto JSON of request spans, one lane per concurrent request",
                 trace.render),
        Exporter("diff-html", ".diff.html", False,
                 "differential flame graph page of a diff profile (red grew, blue shrank; no network)",
                 diff.render_html),
        Exporter("diff-folded", ".diff.folded", False,
                 "folded stacks with two counts of a diff profile (flamegraph.pl's difffolded format)",
                 diff.render_folded),
    )
}


def get_exporter(name: str) -> Exporter:
    """The exporter called ``name``; UsageError naming the choices otherwise."""
    exporter = EXPORTERS.get(name) or EXPORTERS.get(str(name).strip().lower())
    if exporter is None:
        raise UsageError(f"unknown export format {name!r}; choose one of: {', '.join(EXPORTERS)}")
    return exporter


def guess_from_filename(path: Union[str, "os.PathLike[str]"]) -> Optional[Exporter]:
    """The exporter whose extension ends ``path`` (the longest match wins), or None."""
    base = os.path.basename(os.fspath(path)).lower()
    best: Optional[Exporter] = None
    best_len = 0
    for exporter in EXPORTERS.values():
        for ext in (exporter.extension,) + exporter.extra_extensions:
            if base.endswith(ext) and len(base) > len(ext) and len(ext) > best_len:
                best, best_len = exporter, len(ext)
    return best
