"""The report's request sections: the per-tool table, latency histograms, the slowest requests and
the comparison with a baseline. Each function returns an HTML fragment; every name from the
server goes through :func:`e`."""

from __future__ import annotations

import html
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..analyse.summary import RequestRow, Summary, fmt_count, fmt_ms, fmt_pct, summarize
from ..model import Profile
from ..model import labels as L
from .svg import fmt_bytes, histogram

MAX_HISTOGRAMS = 12
MAX_SLOWEST = 20


def e(text: object) -> str:
    """Escape for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "", numeric_from: int = 1,
          text_last: bool = False) -> str:
    """An HTML table; cells are already-escaped fragments, columns from ``numeric_from`` right-aligned
    (the last one left-aligned too when ``text_last``)."""
    last = len(headers) - 1 if text_last else len(headers)

    def num(i: int) -> str:
        return " class=num" if numeric_from <= i < last else ""

    head = "".join(f"<th{num(i)}>{h}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(f"<td{num(i)}>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def memory_per_request(memory: Optional[Profile]) -> Dict[str, Dict[str, int]]:
    """Per request name: total ``alloc_space``/``inuse_space`` bytes of a memory profile."""
    out: Dict[str, Dict[str, int]] = {}
    if memory is None:
        return out
    cols = {k: memory.value_index(k) for k in ("alloc_space", "inuse_space") if memory.has_type(k)}
    for s in memory.samples:
        name = L.request_name(dict(s.labels))
        acc = out.setdefault(name, {})
        for k, i in cols.items():
            acc[k] = acc.get(k, 0) + s.values[i]
    return out


def leak_by_request(leaks: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """leaks.json tool results keyed by request name (``tools/call <tool>``)."""
    out: Dict[str, Dict[str, Any]] = {}
    for r in (leaks or {}).get("tools") or []:
        if isinstance(r, dict) and r.get("tool"):
            out[f"tools/call {r['tool']}"] = r
    return out


def _per_call(total: Optional[int], calls: Optional[int]) -> str:
    if total is None or not calls:
        return "-"
    return fmt_bytes(total / calls)


def tool_table(summary: Summary, memory: Optional[Profile] = None,
               leaks: Optional[Dict[str, Any]] = None) -> str:
    """One row per request name: calls, errors, latency percentiles, CPU per call and share,
    allocated and retained bytes per call, the leak verdict (columns only when there is data)."""
    mem = memory_per_request(memory)
    leak = leak_by_request(leaks)
    show_alloc = any("alloc_space" in v for v in mem.values())
    show_retained = any("inuse_space" in v for v in mem.values()) or any(
        "bytes_per_call" in v for v in leak.values())
    headers = ["request", "calls", "errors", "p50 ms", "p95 ms", "p99 ms", "CPU ms/call", "CPU share"]
    if show_alloc:
        headers.append("allocated/call")
    if show_retained:
        headers.append("retained/call")
    if leak:
        headers.append("leak verdict")
    headers.append("hottest function")
    rows = []
    for r in summary.rows:
        per_call = None if r.cpu_ms_per_call is None else r.cpu_ms_per_call * 1e6
        err = fmt_count(r.errors)
        if r.errors:
            err = f'<span class="bad">{err}</span>'
        cells = [f'<span class="name">{e(r.name)}</span>', fmt_count(r.calls), err, fmt_ms(r.p50_ns),
                 fmt_ms(r.p95_ns), fmt_ms(r.p99_ns), fmt_ms(per_call), _share_cell(r.cpu_share)]
        m = mem.get(r.name, {})
        lk = leak.get(r.name)
        if show_alloc:
            cells.append(_per_call(m.get("alloc_space"), r.calls))
        if show_retained:
            if lk is not None and lk.get("bytes_per_call") is not None:
                cells.append(fmt_bytes(float(lk["bytes_per_call"])))
            else:
                cells.append(_per_call(m.get("inuse_space"), r.calls))
        if leak:
            verdict = str(lk.get("verdict", "-")) if lk else "-"
            cls = "bad" if verdict == "leak" else ("warn" if verdict in ("filling", "inconclusive") else "")
            cells.append(f'<span class="verdict {cls}">{e(verdict)}</span>')
        hottest = "-"
        if r.hottest_function:
            hottest = f'<code>{e(r.hottest_function)}</code> {fmt_pct(r.hottest_share)}'
            if r.hottest_is_library:
                hottest += ' <span class="muted">[library]</span>'
        cells.append(hottest)
        rows.append(cells)
    return table(headers, rows, "tools", text_last=True)


def _share_cell(share: Optional[float]) -> str:
    if share is None:
        return "-"
    width = max(0.0, min(1.0, share)) * 60
    return f'<span class="share"><span style="width:{width:.1f}px"></span></span> {fmt_pct(share)}'


def histograms(profile: Profile) -> str:
    """A latency histogram per request kind (most called first)."""
    if profile.requests is None or not profile.requests.stats:
        return '<p class="muted">No request latencies were recorded (the profile has no request table).</p>'
    stats = sorted(profile.requests.stats.items(), key=lambda kv: (-kv[1].count, kv[0]))
    charts = []
    for (method, target), st in stats[:MAX_HISTOGRAMS]:
        if not st.count:
            continue
        name = f"{method} {target}" if target else method
        marks = [("p50", st.quantile(0.5)), ("p99", st.quantile(0.99))]
        charts.append(f'<figure>{histogram(st.reservoir, f"{name} ({st.count:,} calls)", marks)}</figure>')
    more = len(stats) - MAX_HISTOGRAMS
    note = f'<p class="muted">{more} more request kinds not drawn.</p>' if more > 0 else ""
    return f'<div class="charts">{"".join(charts)}</div>{note}'


def slowest(profile: Profile) -> str:
    """The slowest requests overall, with their request ids (to find them in logs or traces)."""
    rows: List[Dict[str, Any]] = []
    if profile.requests is not None:
        for (method, target), st in profile.requests.stats.items():
            for r in st.slowest:
                rows.append({"name": f"{method} {target}" if target else method, "duration_ns": r.duration_ns,
                             "request_id": r.request_id, "error": r.error, "start_ns": r.start_ns})
    sampled = {str(r.get("request_id")) for r in ((profile.extras.get("slowest") or {}).get("requests") or [])
               if isinstance(r, dict)}
    if not rows:
        return '<p class="muted">No request latencies were recorded.</p>'
    rows.sort(key=lambda r: -r["duration_ns"])
    starts = [r["start_ns"] for r in rows if r["start_ns"]]
    t0 = min(starts) if starts else 0
    out = []
    for r in rows[:MAX_SLOWEST]:
        at = f"{(r['start_ns'] - t0) / 1e9:.3f} s" if r["start_ns"] and t0 else "-"
        flag = ' <span class="muted">(samples kept)</span>' if r["request_id"] in sampled else ""
        out.append([f'<span class="name">{e(r["name"])}</span>', fmt_ms(r["duration_ns"]),
                    e(r["request_id"] or "-") + flag, at, e(r["error"] or "")])
    return table(["request", "duration ms", "request id", "started (relative)", "error"], out, "slowest",
                 text_last=True)


def _delta(base: Optional[float], new: Optional[float]) -> str:
    if base is None or new is None:
        return "-"
    if base == 0:
        return "new" if new else "0%"
    change = (new - base) / base
    cls = "bad" if change > 0.10 else ("good" if change < -0.10 else "")
    return f'<span class="{cls}">{change * 100:+.0f}%</span>'


def baseline_comparison(profile: Profile, baseline: Profile, summary: Optional[Summary] = None) -> str:
    """Per request: p50, p95 and CPU per call in the baseline and now, with the relative change.

    A single pair of profiles carries no run-to-run spread: the changes are indications; ``mcpprof
    compare`` on repeated bench runs is the gate."""
    new = summary or summarize(profile)
    base = {r.name: r for r in summarize(baseline).rows}
    rows = []
    for r in new.rows:
        b: Optional[RequestRow] = base.pop(r.name, None)
        b_cpu = None if b is None or b.cpu_ms_per_call is None else b.cpu_ms_per_call * 1e6
        n_cpu = None if r.cpu_ms_per_call is None else r.cpu_ms_per_call * 1e6
        rows.append([f'<span class="name">{e(r.name)}</span>', fmt_count(b.calls if b else None),
                     fmt_count(r.calls), fmt_ms(b.p50_ns if b else None), fmt_ms(r.p50_ns),
                     _delta(b.p50_ns if b else None, r.p50_ns), fmt_ms(b.p95_ns if b else None),
                     fmt_ms(r.p95_ns), _delta(b.p95_ns if b else None, r.p95_ns), fmt_ms(b_cpu),
                     fmt_ms(n_cpu), _delta(b_cpu, n_cpu)])
    for name, b in base.items():
        rows.append([f'<span class="name">{e(name)}</span> <span class="muted">(baseline only)</span>',
                     fmt_count(b.calls), "-", fmt_ms(b.p50_ns), "-", "-", fmt_ms(b.p95_ns), "-", "-",
                     fmt_ms(None if b.cpu_ms_per_call is None else b.cpu_ms_per_call * 1e6), "-", "-"])
    headers = ["request", "calls (base)", "calls", "p50 base", "p50", "Δ", "p95 base", "p95", "Δ",
               "CPU/call base", "CPU/call", "Δ"]
    return (table(headers, rows, "compare") +
            '<p class="muted">Changes above 10% are coloured. One profile against one baseline has no '
            'run-to-run spread: use <code>mcpprof bench</code> and <code>mcpprof compare</code> to gate.</p>')
