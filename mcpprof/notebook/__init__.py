"""Jupyter support: rich display of mcpprof's objects and the IPython extension.

``%load_ext mcpprof`` registers the magics (:mod:`mcpprof.notebook.magics`) and the display of
profiles, summaries, memory reports and leak results (:mod:`mcpprof.notebook.display`).
``mcpprof.load`` registers the display too when it runs inside IPython, so a loaded profile shows
its flame graph without the extension. Bench results, comparisons and leak reports
(:mod:`mcpprof.notebook.results`: ``mcpprof.load_bench``, ``mcpprof.compare``, ``mcpprof.load_leaks``)
display themselves anywhere. Needs IPython (``pip install 'mcpprof[notebook]'``);
pandas is optional (tables become DataFrames).
"""

from __future__ import annotations

import sys
from typing import Any, List

from .display import bench_table, by_tool, comparison_table, leaks_table, to_dataframe
from .results import BenchResult, Comparison, LeakReport

__all__ = ["load_ipython_extension", "register_display", "show", "by_tool", "leaks_table", "bench_table",
           "comparison_table", "to_dataframe", "BenchResult", "Comparison", "LeakReport"]

_registered: List[int] = []


def _display_types() -> List[Any]:
    from ..analyse.summary import Summary
    from ..model import Profile

    types: List[Any] = [Profile, Summary]
    try:
        from ..memory.fragmentation import MemoryReport, ReuseResult

        types += [MemoryReport, ReuseResult]
    except ImportError:  # pragma: no cover - the memory package is optional at this layer
        pass
    try:
        from ..analyse.leaks import ToolResult
        from ..jobs.leaks import LeakJobResult

        types += [ToolResult, LeakJobResult]
    except ImportError:  # pragma: no cover
        pass
    return types


def show(obj: Any) -> bool:
    """Publish ``obj``'s rich display (what the registered formatter does); True when handled."""
    from IPython.display import publish_display_data

    from ..model import Profile
    from .display import generic_bundle, publish_profile

    if isinstance(obj, Profile):
        publish_profile(obj)
    elif _is_leak_result(obj):
        from .results import LeakReport

        data = obj.to_dict()
        LeakReport(data if "tools" in data else {"tools": [data]}, getattr(obj, "out_dir", ""))._ipython_display_()
    else:
        publish_display_data(generic_bundle(obj))
    return True


def _is_leak_result(obj: Any) -> bool:
    from ..analyse.leaks import ToolResult
    from ..jobs.leaks import LeakJobResult

    return isinstance(obj, (ToolResult, LeakJobResult))


def register_display(shell: Any = None) -> bool:
    """Register :func:`show` for mcpprof's types with ``shell`` (the running IPython by default)."""
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    if shell is None or id(shell) in _registered:
        return False
    formatter = shell.display_formatter.ipython_display_formatter
    for cls in _display_types():
        formatter.for_type(cls, show)
    _registered.append(id(shell))
    return True


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext mcpprof``: the magics and the rich display."""
    from .magics import McpprofMagics

    shell.register_magics(McpprofMagics)
    register_display(shell)
