"""The report's memory and run sections: memory and request rate over time, process memory and
fragmentation figures, GC pauses, leak verdicts and benchmark figures.

These side tables are written by other collectors (``profile.extras``, ``leaks.json``,
``bench.json``); every reader here is defensive: a missing or differently shaped table gives an
empty string (the section is left out), never an error.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..analyse.summary import fmt_count, fmt_ms, fmt_pct
from ..model import Profile
from .svg import fmt_bytes, timeseries
from .tables import e, table


def _num(x: Any) -> Optional[float]:
    if isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def timeline(profile: Profile) -> str:
    """RSS (and traced bytes) over time and requests per second, from ``extras["memory_timeline"]``
    (``{"columns": [...], "points": [[...], ...]}``)."""
    data = profile.extras.get("memory_timeline")
    if not isinstance(data, dict):
        return ""
    cols = data.get("columns") or []
    pts = [p for p in data.get("points") or [] if isinstance(p, (list, tuple)) and len(p) == len(cols)]
    if "t_s" not in cols or len(pts) < 2:
        return ""
    col = {c: i for i, c in enumerate(cols)}

    def series(name: str) -> List[Tuple[float, float]]:
        if name not in col:
            return []
        out = []
        for p in pts:
            t, v = _num(p[col["t_s"]]), _num(p[col[name]])
            if t is not None and v is not None and v >= 0:
                out.append((t, v))
        return out

    charts = []
    rss = series("rss")
    if rss:
        charts.append(timeseries(rss, "Resident memory (RSS)", fmt="bytes"))
    traced = series("traced")
    if len(traced) >= 2:
        charts.append(timeseries(traced, "Traced Python memory (tracemalloc)", fmt="bytes"))
    served = series("requests")
    if len(served) >= 2:
        rate = [((t0 + t1) / 2, (v1 - v0) / (t1 - t0)) for (t0, v0), (t1, v1) in zip(served, served[1:]) if t1 > t0]
        charts.append(timeseries(rate, "Requests per second", fmt="number"))
    return "".join(f"<figure>{c}</figure>" for c in charts)


def process_memory(profile: Profile, extra: Optional[Dict[str, Any]] = None) -> str:
    """Process memory and fragmentation figures with their definitions (``extras["process_memory"]``,
    a MemoryReport dict ``{"figures", "definitions", "unavailable"}``)."""
    data = profile.extras.get("process_memory")
    if not isinstance(data, dict):
        data = extra if isinstance(extra, dict) else None
    if not data:
        return ""
    figures = data.get("figures") if isinstance(data.get("figures"), dict) else {}
    defs = data.get("definitions") if isinstance(data.get("definitions"), dict) else {}
    rows = []
    for key, value in figures.items():
        v = _num(value)
        if v is None:
            shown = e(value)
        elif key.endswith("ratio") or key == "fragmentation":
            shown = fmt_pct(v)
        elif isinstance(value, int) and not key.startswith("gc_"):
            shown = fmt_bytes(v)
        else:
            shown = f"{v:,.4g}" if isinstance(value, float) else fmt_count(int(v))
        rows.append([f"<code>{e(key)}</code>", shown, e(defs.get(key, ""))])
    missing = data.get("unavailable") if isinstance(data.get("unavailable"), dict) else {}
    note = "".join(f'<p class="muted">{e(k)}: {e(v)}</p>' for k, v in missing.items())
    if not rows:
        return note
    return table(["figure", "value", "meaning"], rows, "figures", text_last=True) + note


def gc_pauses(profile: Profile) -> str:
    """GC pauses per generation (``extras["gc_pauses"]``, summarised by mcpprof.memory.gcpauses)."""
    data = profile.extras.get("gc_pauses")
    if not isinstance(data, dict):
        return ""
    try:
        from ..memory.gcpauses import summarize as summarize_gc

        served = profile.requests.total_count if profile.requests is not None else None
        s = summarize_gc(data, served)
    except Exception:  # a shape this version does not know
        return ""
    rows = [[f"generation {e(g)}", fmt_count(v.get("count")), fmt_ms(v.get("p50_ns")), fmt_ms(v.get("p95_ns")),
             fmt_ms(v.get("max_ns"))] for g, v in (s.get("generations") or {}).items()]
    rows.append(["all", fmt_count(s.get("count")), fmt_ms(s.get("p50_ns")), fmt_ms(s.get("p95_ns")),
                 fmt_ms(s.get("max_ns"))])
    per = s.get("collections_per_request")
    note = f'<p>{per:g} collections per request served.</p>' if per is not None else ""
    return table(["collections", "count", "p50 ms", "p95 ms", "max ms"], rows, "gc") + note


def leak_details(leaks: Optional[Dict[str, Any]]) -> str:
    """Per tool: verdict, bytes and objects retained per call, the growing site, the evidence."""
    tools = (leaks or {}).get("tools")
    if not isinstance(tools, list) or not tools:
        return ""
    rows, evidence = [], []
    for r in tools:
        if not isinstance(r, dict):
            continue
        site = r.get("site") if isinstance(r.get("site"), dict) else {}
        where = site.get("where") or (f"{site.get('file')}:{site.get('line')}" if site.get("file") else "-")
        verdict = str(r.get("verdict", "-"))
        cls = "bad" if verdict == "leak" else ("warn" if verdict in ("filling", "inconclusive") else "")
        bpc, opc = _num(r.get("bytes_per_call")), _num(r.get("objects_per_call"))
        rows.append([f'<span class="name">{e(r.get("tool", "?"))}</span>', f'<span class="{cls}">{e(verdict)}</span>',
                     fmt_bytes(bpc), "-" if opc is None else f"{opc:.2f}", fmt_count(_int(r.get("calls"))),
                     f"<code>{e(where)}</code>"])
        for line in r.get("evidence") or []:
            evidence.append(f"<li><b>{e(r.get('tool', '?'))}</b>: {e(line)}</li>")
    out = table(["tool", "verdict", "retained/call", "objects/call", "calls", "growing site"], rows, "leaks")
    if evidence:
        out += f'<details><summary>Evidence</summary><ul>{"".join(evidence)}</ul></details>'
    return out


def _int(x: Any) -> Optional[int]:
    v = _num(x)
    return None if v is None else int(v)


def bench(doc: Optional[Dict[str, Any]]) -> str:
    """Benchmark figures: an ``mcpprof.bench/1`` document's workloads (median p50/p95/p99 and
    throughput) and its comparison verdicts; for another shape, its top-level numbers."""
    if not isinstance(doc, dict):
        return ""
    if str(doc.get("schema", "")).startswith("mcpprof.bench/"):
        return _bench_doc(doc)
    rows = [[f"<code>{e(k)}</code>", e(_scalar(v))] for k, v in doc.items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return table(["figure", "value"], rows, "figures") if rows else ""


def _scalar(v: Any) -> str:
    return f"{v:,.4g}" if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else str(v))


def _median(summary: Dict[str, Any], key: str) -> Optional[float]:
    v = summary.get(key)
    return _num(v.get("median")) if isinstance(v, dict) else None


def _bench_doc(doc: Dict[str, Any]) -> str:
    rows = []
    for w in doc.get("workloads") or []:
        if not isinstance(w, dict):
            continue
        runs = [r for r in w.get("per_run") or [] if isinstance(r, dict)]
        lat = [r.get("latency_ns") or {} for r in runs]
        med = _median_of

        rows.append([f'<span class="name">{e(w.get("workload_id", "?"))}</span>', fmt_count(len(runs)),
                     fmt_ms(med([x.get("p50") for x in lat])), fmt_ms(med([x.get("p95") for x in lat])),
                     fmt_ms(med([x.get("p99") for x in lat])),
                     _fmt_rate(med([r.get("throughput_per_s") for r in runs]))])
    out = table(["workload", "runs", "p50 ms (median of runs)", "p95 ms", "p99 ms", "requests/s"], rows, "bench")
    comp = doc.get("comparison")
    if isinstance(comp, dict) and isinstance(comp.get("results"), list):
        crow = []
        for r in comp["results"]:
            if not isinstance(r, dict):
                continue
            ratio = _num(r.get("ratio"))
            verdict = str(r.get("verdict", "?"))
            cls = "bad" if verdict.startswith("regress") else ("good" if verdict.startswith("improv") else "")
            crow.append([f'<span class="name">{e(r.get("workload_id", "?"))} · {e(r.get("step_id", ""))}</span>',
                         "-" if ratio is None else f"{ratio:.3f}", e(r.get("ci95", "")), e(r.get("p", "")),
                         f'<span class="{cls}">{e(verdict)}</span>', e(r.get("reason", ""))])
        out += "<h3>Against the baseline</h3>" + table(["workload · step", "ratio", "95% CI", "p", "verdict", "why"],
                                                       crow, "compare")
        for w in comp.get("warnings") or []:
            out += f'<p class="muted">{e(w)}</p>'
    return out


def _median_of(values: Sequence[Any]) -> Optional[float]:
    nums = sorted(v for v in (_num(x) for x in values) if v is not None)
    if not nums:
        return None
    mid = len(nums) // 2
    return nums[mid] if len(nums) % 2 else (nums[mid - 1] + nums[mid]) / 2


def _fmt_rate(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:,.1f}"
