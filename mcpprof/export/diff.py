"""Differential output between two profiles: a differential flame graph page (HTML) and folded
stacks with two counts (``stack a b``).

The input is a diff profile (:func:`mcpprof.analyse.ops.diff`: base samples negated and labelled
``mcpprof.diff=base``, new samples ``mcpprof.diff=new``), or two profiles via :func:`html_pair`
and :func:`folded_pair`.

HTML (:func:`render_html`): the flame graph of :mod:`mcpprof.export.html` (same script, zoom,
search, value-type selector) with the base side kept as a second value per node. Widths are the
new side's (or, switched in the page, the base's); a box is red where the frame's *total*
(inclusive) share of the view grew from base to new and blue where it shrank, deeper for larger
changes (relative to the largest change in view, as flamegraph.pl does); a frame only in the base
is listed under the graph and drawn when widths come from the base. Shares are compared by default
(each side divided by its own total, so runs of different length compare fairly; ``normalize=False``
starts the page on absolute values). Tooltips give base and new value, share and the change in %.
A request selector zooms to one tool.

Folded (:func:`render_folded`): lines are ``stack count_base count_new`` — the format of
flamegraph.pl's ``difffolded.pl``, which ``flamegraph.pl`` and inferno draw as a differential
flame graph (widths from the second count, red where it grew, blue where it shrank). Stacks are
named as :mod:`mcpprof.export.folded` names them, headed by the request name (``tools/call
echo``); lines are sorted frame by frame; a stack absent on one side has count 0 there.
``normalize`` scales the base to the new side's total first (``difffolded.pl -n``), so two runs
of different length compare by share.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..analyse.ops import DIFF_BASE, DIFF_LABEL, DIFF_NEW, diff, filter_samples, scale
from ..errors import UsageError
from ..model import Profile
from . import folded, html
from .tree import TypeArg, is_diff


def _check(profile: Profile) -> None:
    if not is_diff(profile):
        raise UsageError("not a diff profile: make one with mcpprof.analyse.ops.diff(base, new) "
                         "or `mcpprof diff BASE NEW`")


def pair(base: Profile, new: Profile) -> Profile:
    """``diff(base, new)``; a UsageError naming both when their value types differ."""
    try:
        return diff(base, new)
    except ValueError as err:
        raise UsageError(str(err)) from None


def split(profile: Profile) -> Tuple[Profile, Profile]:
    """(base, new) of a diff profile, both with positive values. UsageError if it is not a diff."""
    _check(profile)
    base = scale(filter_samples(profile, labels={DIFF_LABEL: DIFF_BASE}), -1)
    new = filter_samples(profile, labels={DIFF_LABEL: DIFF_NEW})
    return base, new


def _counts(profile: Profile, value_type: TypeArg, full_paths: bool) -> Dict[str, int]:
    text = folded.render(profile, value_type, request_frames=True, full_paths=full_paths).decode("utf-8")
    out: Dict[str, int] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        out[stack] = out.get(stack, 0) + int(count)
    return out


def render_folded(profile: Profile, value_type: TypeArg = None, normalize: bool = False,
                  full_paths: bool = False) -> bytes:
    """``stack base new`` lines of a diff profile's ``value_type`` column (default: CPU)."""
    base, new = split(profile)
    a = _counts(base, value_type, full_paths) if base.samples else {}
    b = _counts(new, value_type, full_paths) if new.samples else {}
    if normalize and sum(a.values()):
        factor = sum(b.values()) / sum(a.values())
        a = {k: int(round(v * factor)) for k, v in a.items()}
    stacks = sorted(set(a) | set(b), key=lambda s: s.split(";"))
    lines = [f"{s} {a.get(s, 0)} {b.get(s, 0)}\n" for s in stacks if a.get(s, 0) or b.get(s, 0)]
    return "".join(lines).encode("utf-8", "replace")


def folded_pair(base: Profile, new: Profile, value_type: TypeArg = None, normalize: bool = False,
                full_paths: bool = False) -> bytes:
    """:func:`render_folded` of ``diff(base, new)``: what ``mcpprof diff A B`` should write."""
    return render_folded(pair(base, new), value_type, normalize, full_paths)


def island(profile: Profile, value_type: TypeArg = None, title: Optional[str] = None,
           min_fraction: float = 0.0005, full_paths: bool = False, normalize: bool = True) -> Dict[str, Any]:
    """The data a differential page embeds: :func:`mcpprof.export.html.island` of a diff profile
    (``values`` the new side, ``base`` the base side) with the page's starting mode."""
    _check(profile)
    data = html.island(profile, value_type, title, min_fraction, full_paths)
    data["diff"]["normalize"] = bool(normalize)
    return data


def render_html(profile: Profile, value_type: TypeArg = None, title: Optional[str] = None,
                min_fraction: float = 0.0005, full_paths: bool = False, normalize: bool = True) -> bytes:
    """The differential flame graph page of a diff profile (self-contained, no network)."""
    return html.page_of(island(profile, value_type, title, min_fraction, full_paths, normalize))


def render_fragment(profile: Profile, value_type: TypeArg = None, title: Optional[str] = None,
                    min_fraction: float = 0.0005, full_paths: bool = False, normalize: bool = True,
                    script_inline: bool = True) -> str:
    """The differential flame graph as a ``<div>`` for a bigger page (see
    :func:`mcpprof.export.html.render_fragment`)."""
    return html.fragment_of(island(profile, value_type, title, min_fraction, full_paths, normalize),
                            script_inline)


def html_pair(base: Profile, new: Profile, value_type: TypeArg = None, title: Optional[str] = None,
              min_fraction: float = 0.0005, full_paths: bool = False, normalize: bool = True) -> bytes:
    """:func:`render_html` of ``diff(base, new)``: what ``mcpprof diff A B -o diff.html`` writes."""
    return render_html(pair(base, new), value_type, title, min_fraction, full_paths, normalize)
