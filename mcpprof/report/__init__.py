"""The HTML report: one self-contained page that answers "which tool costs what, where, and is it
getting worse" (``report.html`` in every ``mcpprof profile`` folder; ``mcpprof report DIR|FILE``).

>>> from mcpprof.report import load_inputs, render_report
>>> html = render_report(load_inputs("mcpprof-out/profile-1"))     # doctest: +SKIP
"""

from __future__ import annotations

from .inputs import ReportInputs, load_inputs
from .page import render_report, write_report

__all__ = ["ReportInputs", "load_inputs", "render_report", "write_report"]
