"""The per-request table as text: the terminal table (rich) and plain text, with the headline and
warnings that go under it. Built from :class:`mcpprof.analyse.summary.Summary`."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

from ..model import CPU
from ..model import labels as L

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from .summary import Summary


def fmt_ms(ns: Optional[float]) -> str:
    """Nanoseconds as milliseconds with 2-3 significant digits: ``123``, ``12.3``, ``1.23``,
    ``0.12``, ``0.0051``, ``<0.001``; ``-`` when unknown."""
    if ns is None:
        return "-"
    ms = ns / 1e6
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    if ms == 0:
        return "0"
    if ms >= 100:
        text = f"{ms:,.0f}"
    elif ms >= 10:
        text = f"{ms:.1f}"
    elif ms >= 1:
        text = f"{ms:.2f}"
    elif ms >= 0.001:
        text = f"{ms:#.2g}"
    else:
        return f"{sign}<0.001"
    return sign + text


def fmt_pct(share: Optional[float]) -> str:
    """A 0..1 share as a percentage: ``57%``, ``4.2%``, ``<0.1%``; ``-`` when unknown."""
    if share is None:
        return "-"
    pct = share * 100
    mag = abs(pct)
    if mag == 0:
        return "0%"
    if mag >= 9.95:
        return f"{pct:.0f}%"
    if mag >= 0.05:
        return f"{pct:.1f}%"
    return "<0.1%" if pct > 0 else "-<0.1%"


def fmt_count(n: Optional[int]) -> str:
    return "-" if n is None else f"{n:,}"


COLUMNS = ("request", "calls", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms",
           "CPU ms", "CPU ms/call", "CPU %", "hottest function")


def _cells(summary: Summary) -> List[List[str]]:
    out = []
    for r in summary.rows:
        hottest = "-"
        if r.hottest_function:
            hottest = f"{r.hottest_function} {fmt_pct(r.hottest_share)}"
            if r.hottest_is_library:
                hottest += " [library]"
        per_call = None if r.cpu_ms_per_call is None else r.cpu_ms_per_call * 1e6
        out.append([r.name, fmt_count(r.calls), fmt_count(r.errors), fmt_ms(r.p50_ns),
                    fmt_ms(r.p95_ns), fmt_ms(r.p99_ns), fmt_ms(r.max_ns), fmt_ms(r.cpu_ns),
                    fmt_ms(per_call), fmt_pct(r.cpu_share), hottest])
    return out


def _headline(summary: Summary) -> str:
    parts = []
    if summary.collector:
        parts.append(summary.collector + (f" @ {summary.rate_hz:g} Hz" if summary.rate_hz else ""))
    if summary.duration_ns is not None:
        parts.append(f"{summary.duration_ns / 1e9:.3g} s")
    if summary.total_cpu_ns is not None:
        parts.append(f"CPU {fmt_ms(summary.total_cpu_ns)} ms ({summary.cpu_source})")
    if summary.sample_count is not None:
        parts.append(f"{summary.sample_count:,} samples")
    if summary.overhead is not None:
        parts.append(f"overhead {fmt_pct(summary.overhead)}")
    return " · ".join(parts)


def _warnings(summary: Summary) -> List[str]:
    out = []
    if not summary.complete:
        out.append("incomplete profile" + (f": {summary.incomplete_reason}" if summary.incomplete_reason else ""))
    if summary.overflow:
        out.append(f"{summary.overflow:,} samples over the stack-table limit (kept, without their stacks)")
    for r in summary.rows:
        if r.loop_blocked_ns:
            where = f" ({', '.join(summary.sync_on_loop)} runs sync tools on the event loop)" if summary.sync_on_loop else ""
            out.append(f"{r.name} blocked the event loop for {fmt_ms(r.loop_blocked_ns)} ms in all, "
                       f"{fmt_ms(r.loop_blocked_max_ns)} ms at most: no other request ran meanwhile{where}")
    if summary.weight and summary.weight != str(CPU):
        out.append(f"no CPU time recorded: the hottest function is by {summary.weight}")
    return out


def format_text(summary: Summary) -> str:
    """The table as plain aligned text (no rich), for logs and notebooks."""
    cells = [list(COLUMNS)] + _cells(summary)
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = [_headline(summary)] if _headline(summary) else []
    for n, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])]
        parts += [row[i].rjust(widths[i]) for i in range(1, len(COLUMNS) - 1)]
        parts.append(row[-1])
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["! " + w for w in _warnings(summary)]
    return "\n".join(lines) + "\n"


def format_table(summary: Summary) -> "Table":
    """The table as a :class:`rich.table.Table` (rich is imported here only)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=_headline(summary) or None, title_justify="left",
                  caption="\n".join(_warnings(summary)) or None, caption_justify="left",
                  caption_style="yellow")
    for i, col in enumerate(COLUMNS):
        table.add_column(col, justify="left" if i in (0, len(COLUMNS) - 1) else "right",
                         no_wrap=i != len(COLUMNS) - 1, overflow="fold")
    for r, cells in zip(summary.rows, _cells(summary)):
        name_style = "dim" if r.name == L.OUTSIDE_REQUESTS else "bold"
        hottest = Text(cells[-1], style="dim" if r.hottest_is_library else "")
        errors = Text(cells[2], style="red" if r.errors else "")
        table.add_row(Text(cells[0], style=name_style), cells[1], errors, *cells[3:-1], hottest)
    return table

