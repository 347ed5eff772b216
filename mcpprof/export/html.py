"""A self-contained interactive flame graph page, in the style of flamegraph.pl.

One HTML file, no network at all (a Content-Security-Policy forbids every fetch), no third-party
code: the call tree (root -> request name -> frames, :mod:`mcpprof.export.tree`) pruned by fraction
of the total is embedded as a JSON island, and a small script (``assets/flamegraph.js``, with
``assets/flamegraph.css``, both inlined) draws it as positioned boxes.

In the page: click a box to zoom, "Reset zoom" (or Esc), a regex search with "Matched: N%" (nested
matches counted once), tooltips with value and share of the total, a value-type selector when the
profile has several columns (CPU / wall / samples / ...), flame or icicle. Boxes narrower than
0.3 px are not drawn. Every string from the profile reaches the page as JSON data rendered with
``textContent``, never as markup. The page sizes itself to its content, also inside an
``<iframe srcdoc>`` (it sets its frame's height when it can reach it).

:func:`render_fragment` gives the same flame graph as a ``<div>`` (styles scoped to it) for
embedding in a bigger page; :func:`island` the data the page embeds (what the golden tests check).
"""

from __future__ import annotations

import html as _html
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, Optional

from .._version import __version__
from ..model import Profile
from .tree import (KIND_LIBRARY, KIND_PRUNED, KIND_REQUEST, KIND_ROOT, KIND_USER, TypeArg,
                   build_call_tree, count_noun, default_title, resolve_type, type_label)

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
    (``parent[i] < i``; ``values[t][i]`` inclusive; names by index into ``names``)."""
    first = resolve_type(profile, value_type)
    if not 0 <= min_fraction < 1:
        from ..errors import UsageError

        raise UsageError(f"min_fraction must be in [0, 1), got {min_fraction}")
    tree = build_call_tree(profile, None, full_paths=full_paths, min_fraction=min_fraction)
    return {
        "version": ISLAND_VERSION,
        "generator": f"mcpprof {__version__}",
        "title": title or default_title(profile),
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


def island_json(data: Dict[str, Any]) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` as ``\\u003c``..."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_FRAGMENT = """<div class="mcpprof-flamegraph">
<div class="fg-head"><h1 class="fg-title">{title}</h1>
<div class="fg-bar">
<label class="fg-type-label" hidden>Value <select class="fg-type"></select></label>
<button type="button" class="fg-reset" disabled>Reset zoom</button>
<input type="search" class="fg-search" placeholder="Search (regular expression)"
 aria-label="Search frames (regular expression)" spellcheck="false">
<label><input type="checkbox" class="fg-icase"> ignore case</label>
<span class="fg-matched" aria-live="polite"></span>
<button type="button" class="fg-flip">Icicle</button>
</div>
<div class="fg-details">&#160;</div></div>
<div class="fg-chart" role="img" aria-label="flame graph"></div>
<div class="fg-foot"><span class="fg-legend"></span> <span class="fg-note"></span></div>
<noscript>This flame graph is drawn by JavaScript; enable it to see the graph.</noscript>
<script type="application/json" class="fg-data">{data}</script>
<script>{script}</script>
</div>"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mcpprof {version}">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>html,body{{margin:0;background:#fff}}
{style}</style>
</head><body>
{fragment}
</body></html>
"""


def _check_inline(text: str) -> str:
    # An inlined asset must not end its own <script>/<style> element early.
    low = text.lower()
    if "</script" in low or "</style" in low:
        raise ValueError("inlined asset contains a closing script/style tag")
    return text


def render_fragment(profile: Profile, value_type: TypeArg = None, title: Optional[str] = None,
                    min_fraction: float = 0.0005, full_paths: bool = False) -> str:
    """The flame graph as one ``<div class="mcpprof-flamegraph">`` with its data and script; the
    page needs :func:`stylesheet` once in its ``<head>``."""
    data = island(profile, value_type, title, min_fraction, full_paths)
    return _FRAGMENT.format(title=_html.escape(data["title"]), data=island_json(data),
                            script=_check_inline(asset("flamegraph.js")))


def stylesheet() -> str:
    """The flame graph's CSS (every rule scoped under ``.mcpprof-flamegraph``)."""
    return _check_inline(asset("flamegraph.css"))


def render(profile: Profile, value_type: TypeArg = None, title: Optional[str] = None,
           min_fraction: float = 0.0005, full_paths: bool = False) -> bytes:
    """The whole page. ``value_type`` is the column shown first (default: CPU when present);
    subtrees under ``min_fraction`` of the total are merged into ``[pruned]`` boxes."""
    fragment = render_fragment(profile, value_type, title, min_fraction, full_paths)
    page = _PAGE.format(csp=CSP, version=_html.escape(__version__),
                        title=_html.escape(title or default_title(profile)), style=stylesheet(),
                        fragment=fragment)
    return page.encode("utf-8", "replace")
