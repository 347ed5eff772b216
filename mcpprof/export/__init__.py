"""Exporters: pure functions ``Profile -> bytes``, one module per format, one registry.

:mod:`mcpprof.export.registry` lists them (``EXPORTERS``, ``get_exporter``, ``guess_from_filename``);
each format module exposes ``render(profile, **options) -> bytes``; :mod:`mcpprof.export.tree` holds
the views they share (value-type resolution, display names, the pruned call tree).
"""

import sys as _sys
import types as _types
from typing import Any as _Any


class _CallableExportModule(_types.ModuleType):
    """``mcpprof.export`` is this package *and* the public function ``mcpprof.export(profile, fmt)``:
    importing the package (which Python binds to the same attribute of ``mcpprof``) must not hide
    the function, so the package itself is callable."""

    def __call__(self, profile: _Any, fmt: str, **options: _Any) -> bytes:
        """Render ``profile`` with the registered exporter ``fmt`` (``folded``, ``speedscope``, ...)."""
        from .registry import get_exporter

        return get_exporter(fmt).render(profile, **options)


_sys.modules[__name__].__class__ = _CallableExportModule
