"""Folded (collapsed) stacks: ``root;child;leaf 42``, one line per distinct stack.

Written in the subset every consumer reads the same way (flamegraph.pl, inferno, speedscope,
gprof2dot ``-f collapse``; see research/formats-and-viewers.md §1.1): UTF-8, ``\\n`` line ends,
root first, frames joined by ``;``, exactly one space, a positive integer count, no comments.
Lines are sorted frame by frame (root first, each frame's name compared as a string), the order
inferno checks with ``--no-sort``; it differs from plain line order only where one frame's name
starts with a sibling's (``f (a.py:1)`` sorts before ``f (a.py:10)``).

None of those consumers can escape anything, so frame names are sanitised: ``;`` becomes ``:``,
tabs and line breaks become spaces, names are trimmed, an empty name is ``[unknown]``, and a
leading ``#`` becomes the look-alike ``＃`` (inferno skips lines starting with ``# `` as comments).

Frames read ``function (short/file.py:line)`` as py-spy writes them (gprof2dot recognises the form).
Optional leading frames: the request name (``tools/call echo``, ``(transport & dispatch)``) with
``request_frames``, then ``thread: NAME`` with ``thread_frames``.

Values are the chosen column (CPU nanoseconds by default). Stacks whose summed value is zero or
negative are left out (a count must be a non-negative integer; a diff profile's shrinking stacks
cannot be written in this format).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from ..model import Profile
from ..model import labels as L
from .tree import UNKNOWN_NAME, FrameNames, TypeArg, paused_gc, resolve_type, thread_name

# Line breaks for Python's str.splitlines() (and so most readers), tab, and every other control
# character (the exporter uses \x01 internally).
_BREAKS = "".join(map(chr, range(32))) + "\x7f\x85\u2028\u2029"
_SANITISE = str.maketrans({**{c: " " for c in _BREAKS}, ";": ":"})
_SEP = "\x01"  # frames are joined with it, sorted, then it becomes ";"


def sanitise(name: str) -> str:
    """A frame name safe in a folded line: no ``;``, tabs, line breaks or other control characters,
    trimmed, never empty, not starting with ``#``."""
    name = name.translate(_SANITISE).strip()
    if not name:
        return UNKNOWN_NAME
    return "\uff03" + name[1:] if name[0] == "#" else name


def render(profile: Profile, value_type: TypeArg = None, thread_frames: bool = False,
           request_frames: bool = False, full_paths: bool = False) -> bytes:
    """Folded stacks of one value column (default: :meth:`Profile.default_type`)."""
    idx = profile.sample_types.index(resolve_type(profile, value_type))
    with paused_gc():
        return _render(profile, idx, thread_frames, request_frames, full_paths)


def _render(profile: Profile, idx: int, thread_frames: bool, request_frames: bool, full_paths: bool) -> bytes:
    names = FrameNames(profile, full_paths)
    stacks = profile.stacks
    rows = [s for s in profile.samples if s.values[idx]]
    texts = [sanitise(names(fid)) for fid in range(len(profile.frames))]
    prefix_parts: Dict[tuple, List[str]] = {}
    if request_frames or thread_frames:
        for s in rows:
            if s.labels not in prefix_parts:
                prefix_parts[s.labels] = _prefix(dict(s.labels), request_frames, thread_frames)
    # Sorting lines as plain strings sorts them frame by frame unless a frame's name is another's
    # start followed by a character below ";" ("a" and "a b"). Then frames are joined with \x01,
    # which sorts below every character a name can hold, and \x01 becomes ";" after sorting.
    names_used = set(texts)  # every frame's name: cheaper than finding the used ones
    names_used.update(part for parts in prefix_parts.values() for part in parts)
    sep = _SEP if _prefix_clash(names_used) else ";"
    used = {s.stack for s in rows}
    frame_text = texts.__getitem__
    stack_text = {sid: sep.join(map(frame_text, stacks[sid])) or UNKNOWN_NAME for sid in used}
    if prefix_parts:
        prefix = {labels: sep.join(parts) for labels, parts in prefix_parts.items()}
        lines = [prefix[s.labels] + (sep + stack_text[s.stack] if stacks[s.stack] else "") for s in rows]
    else:
        lines = [stack_text[s.stack] for s in rows]
    values = [s.values[idx] for s in rows]
    counts: Dict[str, int] = dict(zip(lines, values))
    if len(counts) != len(lines):  # a stack on several rows (other labels): one line, summed
        counts = {}
        for line, value in zip(lines, values):
            counts[line] = counts.get(line, 0) + value
    order = sorted([line for line, v in counts.items() if v > 0])
    pieces: List[str] = [""] * (2 * len(order))  # line, " count\n", ...: joined once
    pieces[0::2] = order
    pieces[1::2] = [f" {counts[line]}\n" for line in order]
    out = "".join(pieces)
    if sep != ";":
        out = out.replace(sep, ";")
    return out.encode("utf-8", "replace")  # "replace": lone surrogates from undecodable file names


def _prefix_clash(names: "set[str]") -> bool:
    """True if some name is the start of another, followed by a character that sorts below ";"."""
    ordered = sorted(names)
    for a, b in zip(ordered, ordered[1:]):  # names starting with `a` follow it, smallest next first
        if len(b) > len(a) and b.startswith(a) and b[len(a)] < ";":
            return True
    return False


def _prefix(labels: Dict[str, str], request_frames: bool, thread_frames: bool) -> List[str]:
    parts: List[str] = []
    if request_frames:
        parts.append(sanitise(L.request_name(labels)))
    if thread_frames:
        name: Optional[str] = thread_name(labels)
        parts.append(sanitise(f"thread: {name}" if name else "thread: [unknown]"))
    return parts
