"""Bench results, comparisons and leak reports as objects that show themselves in Jupyter.

Each is the JSON document mcpprof writes (still a ``dict``: everything that reads the document
reads it), plus a display: an HTML table with a plain-text rendering beside it, the flame graph
of the run in an ``<iframe srcdoc>`` when the run recorded profiles (a differential one for a
comparison), and that flame graph again as PNG for notebooks that are not trusted (they drop the
iframe; a table survives their sanitizer). ``table()`` gives the rows as a pandas DataFrame where
pandas is installed. Every name from the server or the results is escaped.
"""

from __future__ import annotations

import html
import os
from typing import Any, Dict, List, Optional, Sequence

from ..model import Profile
from .display import Bundle, bench_rows, iframe, leak_rows, png_bundle, to_dataframe

VERDICT_COLOUR = {"regressed": "#b3261e", "ok": "#1e7a34", "improved": "#1d4ed8", "inconclusive": "#8a5a00",
                  "leak": "#b3261e", "filling": "#8a5a00", "no leak": "#1e7a34"}
EXIT_MEANING = {0: "no regression", 1: "REGRESSION", 2: "inconclusive: the gate refuses to judge"}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def html_table(rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as an escaped HTML table; a ``verdict`` column is coloured."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            text = html.escape(_cell(r.get(c)))
            colour = VERDICT_COLOUR.get(str(r.get(c))) if c == "verdict" else None
            cells.append(f'<td style="color:{colour};font-weight:600">{text}</td>' if colour else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="mcpprof-table" style="border-collapse:collapse;font-size:12px">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def text_table(rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as fixed-width text (the ``text/plain`` rendering)."""
    grid = [list(columns)] + [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(line[k]) for line in grid) for k in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in grid)


def _load_profiles(paths: Sequence[str]) -> Optional[Profile]:
    from ..analyse.ops import merge
    from ..model.io import load

    found = [load(p) for p in paths if os.path.isfile(p)]
    if not found:
        return None
    return found[0] if len(found) == 1 else merge(found)


class _Shown(dict):
    """A result document that displays itself: subclasses give rows, columns and a flame graph."""

    kind = "result"
    columns: Sequence[str] = ()

    def rows(self) -> List[Dict[str, Any]]:
        return []

    def table(self) -> Any:
        """The rows as a DataFrame (pandas installed) or a list of dicts."""
        return to_dataframe(self.rows())

    def flame(self) -> Optional[Profile]:
        """The profile drawn beside the table (None: no flame graph)."""
        return None

    def notes(self) -> List[str]:
        return []

    def _profile(self) -> Optional[Profile]:
        if "_flame" not in self.__dict__:  # profiles are read once per object
            self.__dict__["_flame"] = self.flame()
        return self.__dict__["_flame"]

    def _flame_html(self, profile: Profile) -> str:
        from ..export.html import render

        return iframe(render(profile).decode("utf-8"))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        rows, notes = self.rows(), self.notes()
        parts = [f"<p>{html.escape(n)}</p>" for n in notes] + [html_table(rows, self.columns)]
        profile = self._profile()
        if profile is not None and profile.samples:
            parts.append(self._flame_html(profile))
        text = "\n".join(notes + [text_table(rows, self.columns)])
        return {"text/html": "".join(parts), "text/plain": text}

    def _png(self) -> Optional[Bundle]:
        profile = self._profile()
        return png_bundle(profile) if profile is not None else None

    def _repr_png_(self) -> Optional[bytes]:
        import base64

        png = self._png()
        return base64.b64decode(png["image/png"]) if png else None

    def _ipython_display_(self) -> None:
        from IPython.display import publish_display_data

        publish_display_data(self._repr_mimebundle_())
        png = self._png()
        if png is not None:
            publish_display_data(png)

    def __repr__(self) -> str:
        return f"<mcpprof {self.kind}: {len(self.rows())} rows>"


class BenchResult(_Shown):
    """An ``mcpprof.bench/1`` document: per workload, the median over runs of p50/p95/p99 and
    throughput, and the candidate's flame graph when the run profiled (``mcpprof bench --profile``)."""

    kind = "bench result"
    columns = ("workload_id", "runs", "p50_ms", "p95_ms", "p99_ms", "throughput_per_s")

    def rows(self) -> List[Dict[str, Any]]:
        return bench_rows(self)

    def table(self) -> Any:
        return to_dataframe(self.rows(), "workload_id")

    def notes(self) -> List[str]:
        target = self.get("target") or {}
        what = target.get("url") or " ".join(map(str, target.get("command") or [])) or "the example server"
        return [f"mcpprof bench of {what} ({self.get('client') or 'lean'} client)"]

    def flame(self) -> Optional[Profile]:
        return _load_profiles(((self.get("profiles") or {}).get("candidate")) or [])

    @property
    def comparison(self) -> Optional["Comparison"]:
        """The comparison the document carries (``mcpprof compare`` output), if any."""
        comp = self.get("comparison")
        return Comparison(comp, profiles=self.get("profiles")) if isinstance(comp, dict) else None


class Comparison(_Shown):
    """A gate's comparison (``results``, ``warnings``, ``exit_code``): the verdict per workload
    step, and the differential flame graph when both sides were profiled (a duet with ``--profile``)."""

    kind = "comparison"
    columns = ("workload_id", "step_id", "runs", "change", "p", "verdict", "reason")

    def __init__(self, data: Dict[str, Any], profiles: Optional[Dict[str, List[str]]] = None) -> None:
        super().__init__(data.get("comparison", data))
        self._profiles = profiles or data.get("profiles") or {}

    def rows(self) -> List[Dict[str, Any]]:
        out = []
        for r in self.get("results") or []:
            row = dict(r)
            ratio = r.get("ratio")
            row["change"] = f"{ratio - 1:+.1%}" if isinstance(ratio, (int, float)) else None
            out.append(row)
        return out

    def notes(self) -> List[str]:
        code = self.get("exit_code")
        head = f"mcpprof compare ({self.get('mode', '?')}): {EXIT_MEANING.get(code, code)} (exit {code})"
        return [head] + [f"warning: {w}" for w in self.get("warnings") or []]

    def flame(self) -> Optional[Profile]:
        """The candidate's profile (drawn as PNG); the HTML shows the differential flame graph."""
        self.__dict__["_base"] = _load_profiles(self._profiles.get("baseline") or [])
        new = _load_profiles(self._profiles.get("candidate") or [])
        return new if self.__dict__["_base"] is not None else None

    def _flame_html(self, profile: Profile) -> str:
        from ..errors import UsageError
        from ..export import diff as D

        try:
            page = D.render_html(D.pair(self.__dict__["_base"], profile)).decode("utf-8")
        except UsageError as err:  # e.g. no value type in common
            return f"<p>No differential flame graph: {html.escape(str(err))}</p>"
        return iframe(page)


class LeakReport(_Shown):
    """A leak job's result (``leaks.json``: ``tools`` and ``server``): the verdict per tool, and
    the flame graph of the growing allocation sites (``leaks.mcpprof`` beside it)."""

    kind = "leak report"
    columns = ("tool", "verdict", "bytes_per_call", "objects_per_call", "calls", "site")

    def __init__(self, data: Dict[str, Any], folder: str = "") -> None:
        super().__init__(data.to_dict() if hasattr(data, "to_dict") else data)
        self.folder = folder or str(getattr(data, "out_dir", "") or "")

    def rows(self) -> List[Dict[str, Any]]:
        return leak_rows(self)

    def table(self) -> Any:
        return to_dataframe(self.rows(), "tool")

    def notes(self) -> List[str]:
        leaking = [r["tool"] for r in self.rows() if r.get("verdict") == "leak"]
        return [f"leaking: {', '.join(map(str, leaking))}" if leaking else "no tool leaks"]

    def flame(self) -> Optional[Profile]:
        return _load_profiles([os.path.join(self.folder, "leaks.mcpprof")]) if self.folder else None
