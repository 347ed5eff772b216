"""How mcpprof's objects show themselves in Jupyter.

A profile is published as two outputs (research/formats-and-viewers.md §5.4):

1. ``text/html``: the interactive flame graph in an ``<iframe srcdoc>`` (it sizes itself) with the
   per-request table beside it, and ``text/plain``: the same table as text;
2. ``image/png``: a static flame graph, the only rich output an *untrusted* notebook keeps (it drops
   HTML, scripts and SVG; a PNG offered as an alternative in the same bundle would not be chosen).

Tables become pandas DataFrames where pandas is installed (:func:`to_dataframe`, :func:`by_tool`).
Every name from the server is escaped (the iframe's document is an escaped attribute value, and the
flame graph renders names with ``textContent``).
"""

from __future__ import annotations

import base64
import html
from typing import Any, Dict, List, Optional

from ..analyse.summary import Summary, format_text, summarize
from ..export.html import render as render_flamegraph
from ..model import Profile
from .png import flame_png

Bundle = Dict[str, Any]


def iframe(page: str, height: int = 420) -> str:
    """``page`` (a whole HTML document) in an ``<iframe srcdoc>``, the way pyinstrument shows itself."""
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:{height}px;border:0;'
            'resize:vertical" loading="eager" title="mcpprof flame graph"></iframe>')


def summary_html(summary: Summary) -> str:
    from ..report.tables import tool_table

    style = ("<style>.mcpprof-summary table{border-collapse:collapse;font-size:12px}"
             ".mcpprof-summary td,.mcpprof-summary th{padding:2px 8px;text-align:right}"
             ".mcpprof-summary td:first-child,.mcpprof-summary th:first-child,"
             ".mcpprof-summary td:last-child{text-align:left}</style>")
    return f'{style}<div class="mcpprof-summary">{tool_table(summary)}</div>'


def profile_bundle(profile: Profile, memory: Optional[Profile] = None, value_type: Optional[str] = None) -> Bundle:
    """The first output of a profile: the iframe flame graph and table as HTML, the table as text."""
    summary = summarize(profile)
    title = str(profile.metadata.get("title") or "") or None
    parts = []
    if profile.samples:
        page = render_flamegraph(profile, value_type, title=title).decode("utf-8")
        parts.append(iframe(page))
    parts.append(summary_html(summary))
    if memory is not None and memory.samples:
        parts.append(iframe(render_flamegraph(memory, "inuse_space" if memory.has_type("inuse_space") else None,
                                              title="memory still allocated").decode("utf-8")))
    text = format_text(summary) if summary.rows else repr(profile)
    return {"text/html": "".join(parts), "text/plain": text}


def png_bundle(profile: Profile, value_type: Optional[str] = None) -> Optional[Bundle]:
    """The second output: the static flame graph (None when the profile has no samples)."""
    data = flame_png(profile, value_type)
    if data is None:
        return None
    return {"image/png": base64.b64encode(data).decode("ascii"),
            "text/plain": f"[flame graph of {len(profile.samples):,} samples as PNG]"}


def publish_profile(profile: Profile, memory: Optional[Profile] = None) -> None:
    """Publish both outputs of ``profile`` (in IPython; no-op elsewhere)."""
    from IPython.display import publish_display_data

    publish_display_data(profile_bundle(profile, memory))
    png = png_bundle(profile)
    if png is not None:
        publish_display_data(png)
    if memory is not None and memory is not profile:
        mem_png = png_bundle(memory, "inuse_space")
        if mem_png is not None:
            publish_display_data(mem_png)


# -- tables ------------------------------------------------------------------------------------

def summary_rows(summary: Summary) -> List[Dict[str, Any]]:
    """The per-request rows as plain dicts (what the DataFrame holds)."""
    return [dict(r) for r in summary.to_dict()["rows"]]


def to_dataframe(rows: List[Dict[str, Any]], index: Optional[str] = None) -> Any:
    """A pandas DataFrame of ``rows`` when pandas is installed, else the rows themselves."""
    try:
        import pandas as pd
    except ImportError:
        return rows
    frame = pd.DataFrame(rows)
    if index and index in frame.columns:
        frame = frame.set_index(index)
    return frame


def by_tool(profile: Profile) -> Any:
    """Per-request table of ``profile`` (a DataFrame indexed by request name where pandas is installed)."""
    return to_dataframe(summary_rows(summarize(profile)), "name")


def leaks_table(leaks: Any) -> Any:
    """Leak verdicts per tool (from a leak job result, its dict, or a list of tool results)."""
    return to_dataframe(leak_rows(leaks), "tool")


def leak_rows(leaks: Any) -> List[Dict[str, Any]]:
    """The rows of :func:`leaks_table` as plain dicts."""
    data = leaks.to_dict() if hasattr(leaks, "to_dict") else leaks
    tools = data.get("tools") if isinstance(data, dict) else data
    rows = []
    for r in tools or []:
        r = r.to_dict() if hasattr(r, "to_dict") else dict(r)
        site = r.get("site") or {}
        rows.append({"tool": r.get("tool"), "verdict": r.get("verdict"), "bytes_per_call": r.get("bytes_per_call"),
                     "objects_per_call": r.get("objects_per_call"), "calls": r.get("calls"),
                     "site": site.get("where") if isinstance(site, dict) else None})
    return rows


def comparison_table(doc: Dict[str, Any]) -> Any:
    """A bench comparison's verdicts (``doc["comparison"]["results"]`` or the comparison itself)."""
    comp = doc.get("comparison", doc) if isinstance(doc, dict) else {}
    rows = [dict(r) for r in (comp.get("results") or []) if isinstance(r, dict)]
    return to_dataframe(rows)


def bench_table(doc: Dict[str, Any]) -> Any:
    """Per workload of an ``mcpprof.bench/1`` document: median of the runs' p50/p95/p99 and throughput."""
    return to_dataframe(bench_rows(doc), "workload_id")


def bench_rows(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The rows of :func:`bench_table` as plain dicts."""
    from ..report.memory import _median_of

    rows = []
    for w in doc.get("workloads") or []:
        runs = [r for r in w.get("per_run") or [] if isinstance(r, dict)]
        lat = [r.get("latency_ns") or {} for r in runs]
        rows.append({"workload_id": w.get("workload_id"), "runs": len(runs),
                     "p50_ms": _ms(_median_of([x.get("p50") for x in lat])),
                     "p95_ms": _ms(_median_of([x.get("p95") for x in lat])),
                     "p99_ms": _ms(_median_of([x.get("p99") for x in lat])),
                     "throughput_per_s": _median_of([r.get("throughput_per_s") for r in runs])})
    return rows


def _ms(ns: Optional[float]) -> Optional[float]:
    return None if ns is None else ns / 1e6


def generic_bundle(obj: Any) -> Bundle:
    """HTML (escaped ``<pre>``) and text for objects with a ``to_dict`` or ``__str__`` (memory
    reports, leak results, summaries)."""
    text = str(obj)
    if hasattr(obj, "to_dict"):
        import json

        try:
            text = json.dumps(obj.to_dict(), indent=2, default=str)
        except (TypeError, ValueError):
            pass
    if isinstance(obj, Summary):
        return {"text/html": summary_html(obj), "text/plain": format_text(obj)}
    return {"text/html": f"<pre>{html.escape(text)}</pre>", "text/plain": text}
