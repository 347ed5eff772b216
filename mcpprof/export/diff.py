"""Differential output between two profiles: folded stacks with two counts (``stack a b``).

The input is a diff profile (:func:`mcpprof.analyse.ops.diff`: base samples negated and labelled
``mcpprof.diff=base``, new samples ``mcpprof.diff=new``), or two profiles via :func:`folded_pair`.
Lines are ``stack count_base count_new`` — the format of flamegraph.pl's ``difffolded.pl``, which
``flamegraph.pl`` and inferno draw as a differential flame graph (widths from the second count,
red where it grew, blue where it shrank). Stacks are named as :mod:`mcpprof.export.folded` names
them, headed by the request name (``tools/call echo``); lines are sorted frame by frame; a stack
absent on one side has count 0 there. ``normalize`` scales the base to the new side's total first
(``difffolded.pl -n``), so two runs of different length compare by share.

Unfinished: the HTML differential flame graph (red = grew, blue = shrank) is not written yet.
"""

from __future__ import annotations

from typing import Dict, Tuple

from ..analyse.ops import DIFF_BASE, DIFF_LABEL, DIFF_NEW, diff, filter_samples, scale
from ..errors import UsageError
from ..model import Profile
from . import folded
from .tree import TypeArg


def split(profile: Profile) -> Tuple[Profile, Profile]:
    """(base, new) of a diff profile, both with positive values. UsageError if it is not a diff."""
    if not any(s.label(DIFF_LABEL) for s in profile.samples) and "diff" not in profile.metadata:
        raise UsageError("not a diff profile: make one with mcpprof.analyse.ops.diff(base, new) "
                         "or `mcpprof diff BASE NEW`")
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
    return render_folded(diff(base, new), value_type, normalize, full_paths)
