"""Folded (collapsed) stacks: ``root;child;leaf 42``, one line per distinct stack.

Written in the subset every consumer reads the same way (flamegraph.pl, inferno, speedscope,
gprof2dot ``-f collapse``; see research/formats-and-viewers.md §1.1): UTF-8, ``\\n`` line ends,
root first, frames joined by ``;``, exactly one space, a positive integer count, lines sorted, no
comments. None of those consumers can escape anything, so frame names are sanitised: ``;`` becomes
``:``, tabs and line breaks become spaces, names are trimmed and an empty name is ``[unknown]``; a
``#`` opening a line becomes the look-alike ``＃`` (inferno reads ``# `` lines as comments).

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
from .tree import UNKNOWN_NAME, FrameNames, TypeArg, resolve_type, thread_name

# Characters Python's str.splitlines() (and so most readers) treat as line breaks, plus tab.
_BREAKS = "\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_SANITISE = str.maketrans({**{c: " " for c in _BREAKS}, ";": ":"})


def sanitise(name: str) -> str:
    """A frame name safe in a folded line: no ``;``, tabs or line breaks, trimmed, never empty."""
    name = name.translate(_SANITISE).strip()
    return name or UNKNOWN_NAME


def render(profile: Profile, value_type: TypeArg = None, thread_frames: bool = False,
           request_frames: bool = False, full_paths: bool = False) -> bytes:
    """Folded stacks of one value column (default: :meth:`Profile.default_type`)."""
    idx = profile.sample_types.index(resolve_type(profile, value_type))
    names = FrameNames(profile, full_paths)
    frame_text: Dict[int, str] = {}
    stack_text: Dict[int, str] = {}
    prefix_of: Dict[tuple, str] = {}
    counts: Dict[str, int] = {}
    for sample in profile.samples:
        value = sample.values[idx]
        if not value:
            continue
        text = stack_text.get(sample.stack)
        if text is None:
            parts: List[str] = []
            for fid in profile.stacks[sample.stack]:
                ft = frame_text.get(fid)
                if ft is None:
                    ft = frame_text[fid] = sanitise(names(fid))
                parts.append(ft)
            text = stack_text[sample.stack] = ";".join(parts)
        if request_frames or thread_frames:
            prefix = prefix_of.get(sample.labels)
            if prefix is None:
                prefix = prefix_of[sample.labels] = _prefix(dict(sample.labels), request_frames, thread_frames)
            text = prefix + ";" + text if text else prefix
        if not text:
            text = UNKNOWN_NAME
        elif text[0] == "#":  # inferno skips lines starting with '# ' as comments
            text = "\uff03" + text[1:]
        counts[text] = counts.get(text, 0) + value
    lines = [f"{stack} {count}\n" for stack, count in sorted(counts.items()) if count > 0]
    return "".join(lines).encode("utf-8", "replace")


def _prefix(labels: Dict[str, str], request_frames: bool, thread_frames: bool) -> str:
    parts: List[str] = []
    if request_frames:
        parts.append(sanitise(L.request_name(labels)))
    if thread_frames:
        name: Optional[str] = thread_name(labels)
        parts.append(sanitise(f"thread: {name}" if name else "thread: [unknown]"))
    return ";".join(parts)
