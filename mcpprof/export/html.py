"""A self-contained interactive flame graph page, in the style of flamegraph.pl.

One HTML file, no network at all (a Content-Security-Policy forbids every fetch), no third-party
code: the call tree (root -> request name -> frames, :mod:`mcpprof.export.tree`) pruned by fraction
of the total is embedded as a JSON island, and a small script (``assets/flamegraph.js`` after its helpers in ``flamegraph_util.js``, with
``assets/flamegraph.css``, both inlined) draws it as positioned boxes.

In the page: click a box to zoom, "Reset zoom" (or Esc), a regex search with "Matched: N%" (nested
matches counted once), tooltips with value and share of the total, a value-type selector when the
profile has several columns (CPU / wall / samples / ...), flame or icicle. Boxes narrower than
0.3 px are not drawn. Every string from the profile reaches the page as JSON data rendered with
``textContent``, never as markup. The page sizes itself to its content, also inside an
``<iframe srcdoc>`` (it sets its frame's height when it can reach it).

:func:`render_fragment` gives the same flame graph as a ``<div>`` (styles scoped to it) for
embedding in a bigger page, which then inlines :func:`script` once (and, with several views of one
profile, their frame names once: :func:`share_names`); :func:`page` is the page shell
every mcpprof HTML file shares (the report's too); :func:`island` the data the page embeds (what
the golden tests check). A diff profile draws as a differential flame graph (the same script, with
a second value per node: :mod:`mcpprof.export.diff`).
"""

from __future__ import annotations

import html as _html
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, List, Optional, Tuple

from .._version import __version__
from ..model import Profile
from .tree import (KIND_LIBRARY, KIND_PRUNED, KIND_REQUEST, KIND_ROOT, KIND_USER, TypeArg,
                   build_call_tree, count_noun, default_title, is_diff, resolve_type, type_label)

ISLAND_VERSION = 1

# No fetch of any kind: scripts and styles only inline, images only as data: URLs.
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """Text of a file in ``mcpprof/export/assets`` (package data)."""
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def island(profile: Profile, value_type: TypeArg = None, title: Optional[str] = None,
           min_fraction: float = 0.0005, full_paths: bool = False) -> Dict[str, Any]:
    """The data the page embeds: every value type of the profile, one pruned tree in flat arrays
    (``parent[i] < i``; ``values[t][i]`` inclusive; names by index into ``names``). For a diff
    profile also ``base[t][i]`` (the base side, positive; ``values`` is the new side), per type
    ``base_total``/``base_pruned``, and ``diff`` (the page's options)."""
    first = resolve_type(profile, value_type)
    if not 0 <= min_fraction < 1:
        from ..errors import UsageError

        raise UsageError(f"min_fraction must be in [0, 1), got {min_fraction}")
    sides = is_diff(profile)
    tree = build_call_tree(profile, None, full_paths=full_paths, min_fraction=min_fraction, sides=sides)
    data: Dict[str, Any] = {
        "version": ISLAND_VERSION,
        "generator": f"mcpprof {__version__}",
        "title": title or default_title(profile) + (" \u2014 differential" if sides else ""),
        "default": tree.types.index(first),
        "types": [
            {"name": t.type, "unit": t.unit, "label": type_label(t), "noun": count_noun(t),
             "total": tree.totals[k], "pruned": tree.pruned_values[k]}
            for k, t in enumerate(tree.types)
        ],
        "min_fraction": min_fraction,
        "pruned_subtrees": tree.pruned_subtrees,
        "kinds_legend": {"root": KIND_ROOT, "request": KIND_REQUEST, "library": KIND_LIBRARY,
                         "user": KIND_USER, "pruned": KIND_PRUNED},
        "names": tree.names,
        "kinds": tree.name_kinds,
        "name": tree.node_name,
        "parent": tree.node_parent,
        "values": tree.node_values,
    }
    if tree.node_base is not None and tree.base_totals is not None and tree.base_pruned is not None:
        for k, t in enumerate(data["types"]):
            t["base_total"], t["base_pruned"] = tree.base_totals[k], tree.base_pruned[k]
        data["base"] = tree.node_base
        data["diff"] = {"normalize": True, "sides": ["base", "new"]}
    return data


def island_json(data: Dict[str, Any]) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` as ``\\u003c``..."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_FRAGMENT = """<div class="mcpprof-flamegraph{cls}">
<div class="fg-head"><h1 class="fg-title">{title}</h1>
<div class="fg-bar">
<label class="fg-type-label" hidden>Value <select class="fg-type"></select></label>{diff_bar}
<button type="button" class="fg-reset" disabled>Reset zoom</button>
<input type="search" class="fg-search" placeholder="Search (regular expression)"
 aria-label="Search frames (regular expression)" spellcheck="false">
<label><input type="checkbox" class="fg-icase"> ignore case</label>
<span class="fg-matched" aria-live="polite"></span>
<button type="button" class="fg-flip">Icicle</button>
</div>
<div class="fg-details">&#160;</div></div>
<div class="fg-chart" role="img" aria-label="{aria}"></div>{diff_foot}
<div class="fg-foot"><span class="fg-legend"></span> <span class="fg-note"></span></div>
<noscript>This flame graph is drawn by JavaScript; enable it to see the graph.</noscript>
<script type="application/json" class="fg-data">{data}</script>{script}
</div>"""

# The differential flame graph's own controls (the script fills and shows them).
_DIFF_BAR = """
<label class="fg-req-label" hidden>Request <select class="fg-req"></select></label>
<label>Widths from <select class="fg-side"><option value="new">new</option>\
<option value="base">base</option></select></label>
<label title="Compare each frame's share of the view (each side divided by its own total), not raw values">\
<input type="checkbox" class="fg-norm"> compare shares</label>"""
_DIFF_FOOT = """
<div class="fg-gone" hidden></div>"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mcpprof {version}">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{style}</style>
</head><body>
{body}
</body></html>
"""


def page(title: str, body: str, style: str = "") -> str:
    """A whole self-contained page (the flame graph's and the report's): the CSP that forbids every
    fetch, ``title`` as text (escaped here), ``style`` inlined in the head, ``body`` as markup."""
    return _PAGE.format(csp=CSP, version=_html.escape(__version__), title=_html.escape(title),
                        style=_check_inline(style), body=body)


def _check_inline(text: str) -> str:
    # An inlined asset must not end its own <script>/<style> element early.
    low = text.lower()
    if "</script" in low or "</style" in low:
        raise ValueError("inlined asset contains a closing script/style tag")
    return text


def script() -> str:
    """The flame graph's script, inlined once per page (``<script>`` + this + ``</script>``) after
    every fragment: it draws each ``.mcpprof-flamegraph`` of the page not drawn yet."""
    return _check_inline(asset("flamegraph_util.js") + "\n" + asset("flamegraph.js"))


def share_names(islands: List[Dict[str, Any]], ref: str) -> str:
    """Move the frame names of several islands of one page into one table: each island keeps only
    indices into it and ``names_ref`` (the table element's id). Returns that element, which the page
    places before the fragments: views of one profile repeat most of their names."""
    table: Dict[Tuple[str, int], int] = {}
    names: List[str] = []
    kinds: List[int] = []
    for data in islands:
        remap = []
        for name, kind in zip(data.pop("names"), data.pop("kinds")):
            i = table.get((name, kind))
            if i is None:
                i = table[(name, kind)] = len(names)
                names.append(name)
                kinds.append(kind)
            remap.append(i)
        data["name"] = [remap[i] for i in data["name"]]
        data["names_ref"] = ref
    return (f'<script type="application/json" class="fg-names" id="{_html.escape(ref)}">'
            f'{island_json({"names": names, "kinds": kinds})}</script>')


def fragment_of(data: Dict[str, Any], script_inline: bool = True) -> str:
    """The ``<div class="mcpprof-flamegraph">`` for an :func:`island`; without ``script_inline``
    the page must inline :func:`script` once after its last fragment."""
    diff = "base" in data
    return _FRAGMENT.format(
        cls=" fg-diff" if diff else "", title=_html.escape(data["title"]),
        diff_bar=_DIFF_BAR if diff else "", diff_foot=_DIFF_FOOT if diff else "",
        aria="differential flame graph" if diff else "flame graph", data=island_json(data),
        script=f"\n<script>{script()}</script>" if script_inline else "")


def render_fragment(profile: Profile, value_type: TypeArg = None, title: Optional[str] = None,
                    min_fraction: float = 0.0005, full_paths: bool = False, script_inline: bool = True) -> str:
    """The flame graph as one ``<div class="mcpprof-flamegraph">`` with its data (and, with
    ``script_inline``, its script); the page needs :func:`stylesheet` once in its ``<head>``."""
    return fragment_of(island(profile, value_type, title, min_fraction, full_paths), script_inline)


def stylesheet() -> str:
    """The flame graph's CSS (every rule scoped under ``.mcpprof-flamegraph``)."""
    return _check_inline(asset("flamegraph.css"))


def page_of(data: Dict[str, Any]) -> bytes:
    """The whole flame-graph page of an :func:`island`."""
    style = "html,body{margin:0;background:#fff}\n" + stylesheet()
    return page(data["title"], fragment_of(data), style).encode("utf-8", "replace")


def render(profile: Profile, value_type: TypeArg = None, title: Optional[str] = None,
           min_fraction: float = 0.0005, full_paths: bool = False) -> bytes:
    """The whole page. ``value_type`` is the column shown first (default: CPU when present);
    subtrees under ``min_fraction`` of the total are merged into ``[pruned]`` boxes. A diff profile
    (:func:`mcpprof.analyse.ops.diff`) gives the differential flame graph
    (:func:`mcpprof.export.diff.render_html`)."""
    return page_of(island(profile, value_type, title, min_fraction, full_paths))
