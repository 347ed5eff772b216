"""A static flame graph as PNG, written with the stdlib (``zlib`` + ``struct``).

Untrusted notebooks drop HTML, scripts and SVG but keep ``image/png`` (research/formats-and-viewers.md
§5.4), so every displayed profile also publishes this picture as its own output. It holds boxes
only (no text: no font ships with the stdlib); the plain-text summary beside it names the requests.
Colours follow the HTML flame graph: blue request boxes, red the server's code, yellow libraries.
"""

from __future__ import annotations

import struct
import zlib
from typing import List, Optional, Sequence, Tuple

from ..export.tree import KIND_LIBRARY, KIND_PRUNED, KIND_REQUEST, KIND_ROOT, KIND_USER, build_call_tree
from ..model import Profile

RGB = Tuple[int, int, int]
ROW = 12
BACKGROUND: RGB = (255, 255, 255)
COLOURS = {KIND_ROOT: (200, 200, 200), KIND_REQUEST: (98, 176, 232), KIND_LIBRARY: (236, 196, 66),
           KIND_USER: (226, 92, 60), KIND_PRUNED: (180, 180, 180)}


def encode_png(width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """PNG bytes of an 8-bit RGB image; ``rows`` are ``width * 3`` bytes each, top first."""
    if len(rows) != height or any(len(r) != width * 3 for r in rows):
        raise ValueError("rows do not match the image size")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + r for r in rows)  # filter type 0 on every scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _shade(rgb: RGB, key: int) -> RGB:
    d = (key * 2654435761 >> 8) % 40 - 20  # a stable per-name variation, as the HTML palette has
    return tuple(max(0, min(255, c + d)) for c in rgb)  # type: ignore[return-value]


def flame_png(profile: Profile, value_type: Optional[str] = None, width: int = 900,
              max_depth: int = 48) -> Optional[bytes]:
    """The profile's flame graph (root at the bottom) as PNG bytes; None for an empty profile."""
    if not profile.samples:
        return None
    chosen = value_type if value_type and profile.has_type(value_type) else profile.default_type()
    if not value_type and profile.total(chosen) <= 0:  # e.g. no CPU seen yet: draw what there is
        chosen = next((t for t in profile.sample_types if profile.total(t) > 0), chosen)
    tree = build_call_tree(profile, [chosen], min_fraction=0.5 / width)
    values = tree.node_values[0]
    total = values[0] if values else 0
    if total <= 0:
        return None
    n = len(tree.node_parent)
    depth = [0] * n
    kids: List[List[int]] = [[] for _ in range(n)]
    for i in range(1, n):
        depth[i] = depth[tree.node_parent[i]] + 1
        kids[tree.node_parent[i]].append(i)
    levels = min(max(depth) + 1, max_depth)
    height = levels * ROW + 2
    canvas = [bytearray(bytes(BACKGROUND) * width) for _ in range(height)]
    x0 = [0.0] * n
    for i in range(n):  # parents come before children: lay children out left to right
        x = x0[i]
        for k in kids[i]:
            x0[k] = x
            x += values[k] * width / total
    for i in range(n):
        if depth[i] >= levels or values[i] <= 0:
            continue
        a, b = int(round(x0[i])), int(round(x0[i] + values[i] * width / total))
        if b - a < 1:
            continue
        b = max(a + 1, b - 1) if b - a > 2 else b  # a 1 px gap between neighbours
        colour = bytes(_shade(COLOURS.get(tree.name_kinds[tree.node_name[i]], (160, 160, 160)), tree.node_name[i]))
        top = height - (depth[i] + 1) * ROW
        for y in range(top, top + ROW - 1):
            canvas[y][a * 3:b * 3] = colour * (b - a)
    return encode_png(width, height, [bytes(r) for r in canvas])
