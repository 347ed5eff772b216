"""Small static charts as inline SVG (no script, no library): latency histograms and time series.

Every label is escaped; numbers are formatted here. The charts are plain markup, so they also show
where scripts do not run.
"""

from __future__ import annotations

import html
import math
from typing import List, Optional, Sequence, Tuple

from ..analyse.summary import fmt_ms

WIDTH, HEIGHT = 360, 140
PAD_L, PAD_R, PAD_T, PAD_B = 46, 10, 18, 30


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt_bytes(n: Optional[float]) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ``12.3 MiB``; ``-`` when unknown."""
    if n is None:
        return "-"
    value, units = float(n), ["B", "KiB", "MiB", "GiB", "TiB"]
    k = 0
    while abs(value) >= 1024 and k < len(units) - 1:
        value /= 1024
        k += 1
    if k == 0:
        return f"{value:,.0f} B"
    return f"{value:.1f} {units[k]}" if abs(value) >= 10 else f"{value:.2f} {units[k]}"


def log_bins(values: Sequence[int], bins: int = 24) -> Tuple[List[float], List[int]]:
    """Log-spaced bin edges over ``values`` (positive nanoseconds) and the count in each bin."""
    data = [v for v in values if v > 0]
    if not data:
        return [], []
    lo, hi = math.log10(min(data)), math.log10(max(data))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    edges = [10 ** (lo + (hi - lo) * i / bins) for i in range(bins + 1)]
    counts = [0] * bins
    span = hi - lo
    for v in data:
        k = int((math.log10(v) - lo) / span * bins)
        counts[min(bins - 1, max(0, k))] += 1
    return edges, counts


def histogram(values: Sequence[int], title: str, marks: Sequence[Tuple[str, int]] = ()) -> str:
    """A latency histogram (log-scaled x in milliseconds) with vertical marks (p50, p99, ...)."""
    edges, counts = log_bins(values)
    head = f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" ' \
           f'aria-label="{_e(title)}"><title>{_e(title)}</title>'
    if not counts:
        return head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no requests</text></svg>'
    pw, ph = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    top = max(counts)
    bw = pw / len(counts)
    parts = [head, f'<text class="ct" x="{PAD_L}" y="12">{_e(title)}</text>']
    for i, c in enumerate(counts):
        if not c:
            continue
        h = ph * c / top
        x, y = PAD_L + i * bw, PAD_T + ph - h
        tip = f"{fmt_ms(edges[i])}–{fmt_ms(edges[i + 1])} ms: {c:,} requests"
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(bw - 1, 0.5):.1f}" '
                     f'height="{h:.1f}"><title>{_e(tip)}</title></rect>')
    lo, hi = math.log10(edges[0]), math.log10(edges[-1])
    for name, v in marks:
        if v <= 0:
            continue
        x = PAD_L + pw * (math.log10(v) - lo) / (hi - lo)
        x = min(PAD_L + pw, max(PAD_L, x))
        parts.append(f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_T}" y2="{PAD_T + ph}"/>'
                     f'<text class="ml" x="{x + 2:.1f}" y="{PAD_T + 9}">{_e(name)}</text>')
    base = PAD_T + ph
    parts.append(f'<line class="axis" x1="{PAD_L}" x2="{PAD_L + pw}" y1="{base}" y2="{base}"/>')
    parts.append(f'<text x="{PAD_L}" y="{base + 13}">{_e(fmt_ms(edges[0]))}</text>')
    parts.append(f'<text x="{PAD_L + pw}" y="{base + 13}" text-anchor="end">{_e(fmt_ms(edges[-1]))} ms</text>')
    parts.append(f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" text-anchor="end">{top:,}</text>')
    parts.append(f'<text x="{PAD_L + pw / 2}" y="{base + 26}" text-anchor="middle">latency (log scale)</text>')
    parts.append("</svg>")
    return "".join(parts)


def timeseries(points: Sequence[Tuple[float, float]], title: str, unit: str = "",
               fmt: str = "number") -> str:
    """A line chart of (seconds, value) points; ``fmt`` ``bytes`` or ``number`` for the y labels."""
    head = f'<svg class="chart wide" viewBox="0 0 {WIDTH * 2} {HEIGHT}" width="{WIDTH * 2}" height="{HEIGHT}" ' \
           f'role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>'
    pts = [(float(t), float(v)) for t, v in points if v is not None and math.isfinite(float(v))]
    if len(pts) < 2:
        return head + f'<text x="{WIDTH}" y="{HEIGHT / 2}" text-anchor="middle">not enough points</text></svg>'
    w = WIDTH * 2
    pw, ph = w - PAD_L - 20 - PAD_R, HEIGHT - PAD_T - PAD_B
    t0, t1 = pts[0][0], pts[-1][0]
    vmax = max(v for _, v in pts)
    vmin = min(0.0, min(v for _, v in pts))
    span_t = (t1 - t0) or 1.0
    span_v = (vmax - vmin) or 1.0

    def label(v: float) -> str:
        return fmt_bytes(v) if fmt == "bytes" else (f"{v:,.0f}" if abs(v) >= 10 else f"{v:.2g}")

    coords = " ".join(f"{PAD_L + 20 + pw * (t - t0) / span_t:.1f},{PAD_T + ph - ph * (v - vmin) / span_v:.1f}"
                      for t, v in pts)
    base = PAD_T + ph
    x0 = PAD_L + 20
    return "".join([
        head, f'<text class="ct" x="{x0}" y="12">{_e(title)}</text>',
        f'<polyline class="line" fill="none" points="{coords}"/>',
        f'<line class="axis" x1="{x0}" x2="{x0 + pw}" y1="{base}" y2="{base}"/>',
        f'<text x="{x0 - 4}" y="{PAD_T + 8}" text-anchor="end">{_e(label(vmax))}</text>',
        f'<text x="{x0 - 4}" y="{base}" text-anchor="end">{_e(label(vmin))}</text>',
        f'<text x="{x0}" y="{base + 13}">{t0:.3g} s</text>',
        f'<text x="{x0 + pw}" y="{base + 13}" text-anchor="end">{t1:.3g} s</text>',
        f'<text x="{x0 + pw / 2}" y="{base + 26}" text-anchor="middle">time since start{_e(unit)}</text>',
        "</svg>"])
