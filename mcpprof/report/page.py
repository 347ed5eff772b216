"""The report page: one self-contained HTML file, no network (a Content-Security-Policy forbids
every fetch), no third-party code. Sections appear only when there is data for them."""

from __future__ import annotations

import datetime as _dt
from typing import Any, List, Optional, Tuple, Union

from .._version import __version__
from ..analyse.summary import Summary, fmt_ms, fmt_pct, summarize
from ..export.html import page, script, stylesheet
from ..model import Profile
from . import memory as M
from . import tables as T
from .flames import SWITCHER_JS, baseline_flame, flame_views
from .inputs import ReportInputs, has_memory

CSS = """
:root{--fg:#1d232b;--muted:#5e6875;--line:#d6dbe1;--bad:#b3261e;--good:#1e7a34;--warn:#8a5a00;--acc:#c2410c}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:#fff}
header{padding:14px 24px;border-bottom:1px solid var(--line);background:#fafbfc}
header h1{margin:0 0 4px;font-size:20px}
nav{font-size:13px}nav a{margin-right:12px;color:var(--acc)}
main{padding:8px 24px 40px;max-width:1400px}
section{margin:22px 0}h2{font-size:17px;border-bottom:1px solid var(--line);padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:3px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f3f5f7;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.name{font-family:ui-monospace,Menlo,monospace;white-space:pre-wrap;word-break:break-all}
code{font-family:ui-monospace,Menlo,monospace;font-size:12px}
.muted{color:var(--muted)}.bad{color:var(--bad);font-weight:600}.good{color:var(--good);font-weight:600}
.warn{color:var(--warn);font-weight:600}
td:has(.share){white-space:nowrap}.share{display:inline-block;width:60px;height:8px;background:#eef0f2;vertical-align:middle}
.share span{display:block;height:8px;background:var(--acc)}
.charts{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}
svg.chart{font:10px system-ui,sans-serif;fill:var(--fg);background:#fcfcfd;border:1px solid var(--line)}
svg .bar{fill:#e0823d}svg .line{stroke:#c2410c;stroke-width:1.5}svg .axis{stroke:#8b95a1}
svg .mark{stroke:#1d4ed8;stroke-dasharray:3 2}svg .ml{fill:#1d4ed8}svg .ct{font-weight:600;font-size:11px}
.headline{color:var(--muted)}.view-pick{display:block;margin:6px 0}
.warning{background:#fff4e5;border:1px solid #f0c27b;padding:6px 10px;margin:6px 0}
details{margin:6px 0}
"""

_BODY = """<header><h1>{title}</h1><div class="headline">{headline}</div><nav>{nav}</nav></header>
<main>{body}</main>
<script>{flamegraph}</script>
<script>{switcher}</script>"""


def _headline(profile: Profile, s: Summary) -> str:
    parts = []
    if s.collector:
        parts.append(T.e(s.collector) + (f" @ {s.rate_hz:g} Hz" if s.rate_hz else ""))
    if s.duration_ns:
        parts.append(f"{s.duration_ns / 1e9:.3g} s")
    if profile.requests is not None:
        parts.append(f"{profile.requests.total_count:,} requests")
    if s.total_cpu_ns is not None:
        parts.append(f"CPU {fmt_ms(s.total_cpu_ns)} ms ({T.e(s.cpu_source)})")
    if s.overhead is not None:
        parts.append(f"profiler overhead {fmt_pct(s.overhead)}")
    parts.append(f"generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by mcpprof {T.e(__version__)}")
    return " · ".join(parts)


def _warnings(s: Summary) -> str:
    out = []
    if not s.complete:
        out.append("This profile is incomplete" + (f": {T.e(s.incomplete_reason)}" if s.incomplete_reason else "."))
    if s.overflow:
        out.append(f"{s.overflow:,} samples exceeded the stack-table limit (kept without their stacks).")
    return "".join(f'<p class="warning">{w}</p>' for w in out)


def render_report(source: Union[ReportInputs, Profile], *, title: Optional[str] = None,
                  baseline: Optional[Profile] = None) -> bytes:
    """The report page for ``source`` (a :class:`ReportInputs` or a bare :class:`Profile`)."""
    inputs = source if isinstance(source, ReportInputs) else ReportInputs(
        source, memory=source if has_memory(source) else None)
    if baseline is not None:
        inputs.baseline = baseline
    profile = inputs.profile
    summary = summarize(profile)
    sections: List[Tuple[str, str, str]] = []  # (anchor, heading, html)

    sections.append(("requests", "Requests: what each tool costs",
                     _warnings(summary) + T.tool_table(summary, inputs.memory, inputs.leaks) +
                     '<p class="muted">Latency is measured per request in the server; CPU per call is '
                     f'{T.e(summary.cpu_source)} CPU; CPU share is of the server\'s CPU while serving.</p>'))
    if inputs.baseline is not None:
        sections.append(("baseline", "Against the baseline", T.baseline_comparison(profile, inputs.baseline, summary)))
        sections.append(("baseline-flame", "Where the time went: differential flame graph against the baseline",
                         baseline_flame(inputs.baseline, profile)))
    sections.append(("latency", "Latency histograms", T.histograms(profile)))
    timeline = M.timeline(profile)
    if timeline:
        sections.append(("timeline", "Memory and request rate over time", f'<div class="charts">{timeline}</div>'))
    cpu_profile = profile if profile.has_type("cpu") or profile.has_type("samples") or not has_memory(profile) \
        else None
    if cpu_profile is not None:
        sections.append(("flame", "CPU flame graph", flame_views(cpu_profile, "cpu", "CPU", "cpu")))
    if inputs.memory is not None:
        mem_type = "inuse_space" if inputs.memory.has_type("inuse_space") else "alloc_space"
        sections.append(("memflame", "Memory flame graph",
                         flame_views(inputs.memory, "mem", "Memory", mem_type)))
    sections.append(("slowest", "Slowest requests", T.slowest(profile)))
    leaks = M.leak_details(inputs.leaks)
    if leaks:
        sections.append(("leaks", "Leak verdicts", leaks))
    mem_source = inputs.memory if inputs.memory is not None else profile
    after = ((inputs.leaks or {}).get("server") or {}).get("memory_after")  # the leak job's last reading
    figures = M.process_memory(profile) or M.process_memory(mem_source, inputs.memory_report or after)
    gc = M.gc_pauses(profile)
    if figures or gc:
        sections.append(("process", "Process memory, fragmentation and GC", figures + gc))
    bench = M.bench(inputs.bench)
    if bench:
        sections.append(("bench", "Benchmark figures", bench))

    page_title = title or "mcpprof report"
    nav = "".join(f'<a href="#{a}">{T.e(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{T.e(h)}</h2>{content}</section>' for a, h, content in sections)
    markup = _BODY.format(title=T.e(page_title), headline=_headline(profile, summary), nav=nav, body=body,
                          flamegraph=script(), switcher=SWITCHER_JS)
    return page(page_title, markup, CSS + "\n" + stylesheet()).encode("utf-8", "replace")


def write_report(source: Any, path: Any, **options: Any) -> str:
    """Render and write atomically; returns the path written."""
    from ..atomic import write_atomic

    write_atomic(path, render_report(source, **options))
    return str(path)
