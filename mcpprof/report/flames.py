"""Flame graphs inside the report: the whole profile plus one view per request kind and per thread,
chosen with a selector, and the differential flame graph against a baseline. Each view is
:func:`mcpprof.export.html.render_fragment` of a filtered profile (the renderer is reused, not
copied; the page inlines its script once, and the views of one profile share one table of frame
names); hidden views redraw when shown."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..analyse.ops import group_by, group_by_request
from ..errors import UsageError
from ..export import diff as D
from ..export.html import fragment_of, island, share_names
from ..model import Profile
from ..model import labels as L
from .tables import e

MAX_REQUEST_VIEWS = 16
MAX_THREAD_VIEWS = 8


def _views(profile: Profile, what: str) -> List[Tuple[str, str, Profile]]:
    """(group, option text, profile) for every view, the whole profile first."""
    views: List[Tuple[str, str, Profile]] = [("", f"All requests and threads ({what})", profile)]
    weight = profile.default_type()

    def heaviest(parts: dict, limit: int) -> List[Tuple[str, Profile]]:
        items = [(k, p) for k, p in parts.items() if p.samples and p.total(weight) > 0]
        items.sort(key=lambda kv: (-kv[1].total(weight), kv[0]))
        return items[:limit]

    requests = heaviest(group_by_request(profile), MAX_REQUEST_VIEWS)
    if len(requests) > 1:
        views += [("Per request", name, p) for name, p in requests]
    threads = heaviest(group_by(profile, L.THREAD_NAME), MAX_THREAD_VIEWS)
    if len(threads) > 1:
        views += [("Per thread", name or "(unnamed thread)", p) for name, p in threads]
    return views


def flame_views(profile: Profile, view_id: str, what: str, value_type: Optional[str] = None) -> str:
    """A selector and one flame graph per view; ``view_id`` must be unique in the page."""
    if not profile.samples:
        return '<p class="muted">This profile holds no samples.</p>'
    views = _views(profile, what)
    options: List[str] = []
    panes: List[str] = []
    islands: List[Dict[str, Any]] = []
    group = None
    for i, (grp, label, prof) in enumerate(views):
        if grp != group:
            if group:
                options.append("</optgroup>")
            if grp:
                options.append(f'<optgroup label="{e(grp)}">')
            group = grp
        options.append(f'<option value="{i}">{e(label)}</option>')
        title = f"{what}: {label}" if i else f"{what}: whole profile"
        vt = value_type if value_type and prof.has_type(value_type) else None
        islands.append(island(prof, vt, title=title))
    if group:
        options.append("</optgroup>")
    shared = share_names(islands, f"{view_id}-names") if len(islands) > 1 else ""
    for i, data in enumerate(islands):
        hidden = "" if i == 0 else " hidden"
        panes.append(f'<div class="fg-view" data-view="{i}"{hidden}>{fragment_of(data, script_inline=False)}</div>')
    selector = ""
    if len(views) > 1:
        selector = (f'<label class="view-pick">Show <select class="fg-view-select" id="{e(view_id)}" '
                    f'data-target="{e(view_id)}-views">{"".join(options)}</select></label>')
    return f'{selector}{shared}<div id="{e(view_id)}-views">{"".join(panes)}</div>'


def baseline_flame(baseline: Profile, profile: Profile) -> str:
    """The differential flame graph from ``baseline`` to ``profile`` (CPU when both have it), or a
    note saying why there is none."""
    if not baseline.samples and not profile.samples:
        return '<p class="muted">Neither profile holds samples.</p>'
    try:
        d = D.pair(baseline, profile)
    except UsageError as err:
        return f'<p class="muted">No differential flame graph: {e(err)}.</p>'
    vt = "cpu" if d.has_type("cpu") else None
    label = "CPU" if vt else "Samples"
    fragment = D.render_fragment(d, vt, title=f"{label}: baseline \u2192 this run", script_inline=False)
    return ('<p class="muted">Widths are this run\'s; red where a frame\'s share of the view grew since the '
            'baseline, blue where it shrank (shares, so runs of different length compare). Choose a request '
            'to compare one tool; hover a box for both values and the change.</p>' + fragment)


#: The page script that switches views (inline; no library).
SWITCHER_JS = """(function () {
  'use strict';
  var selects = document.querySelectorAll('select.fg-view-select');
  Array.prototype.forEach.call(selects, function (sel) {
    sel.addEventListener('change', function () {
      var box = document.getElementById(sel.getAttribute('data-target'));
      Array.prototype.forEach.call(box.children, function (pane) {
        pane.hidden = pane.getAttribute('data-view') !== sel.value;
      });
      window.dispatchEvent(new Event('resize'));
    });
  });
})();"""
