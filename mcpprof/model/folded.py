"""Build profiles from folded-stack text (``a;b;c 12``), for tests, fixtures and imports."""

from __future__ import annotations

from typing import Mapping, Optional

from .profile import SAMPLES, Frame, Profile, ProfileBuilder, ValueType


def parse_frame(text: str) -> Frame:
    """``func (file:line)`` back into a Frame; anything else becomes a bare function name."""
    if text.endswith(")") and " (" in text:
        func, _, loc = text[:-1].rpartition(" (")
        file, sep, line = loc.rpartition(":")
        if sep and line.isdigit():
            return Frame(func, file, int(line))
        return Frame(func, loc)
    return Frame(text)


def profile_from_folded(text: str, value_type: ValueType = SAMPLES,
                        labels: Optional[Mapping[str, str]] = None,
                        metadata: Optional[dict] = None) -> Profile:
    """Parse folded stacks (root first, ``;``-separated, one space, integer count)."""
    builder = ProfileBuilder([value_type], metadata or {"collector": "folded"})
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        stack, sep, count = line.rpartition(" ")
        if not sep or not count.lstrip("-").isdigit():
            raise ValueError(f"line {lineno}: expected 'frame;frame count', got {line!r}")
        builder.add([parse_frame(f) for f in stack.split(";")], [int(count)], labels)
    return builder.build()
