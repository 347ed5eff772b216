"""pprof: a gzipped ``profile.proto`` (``.pb.gz``), written by a small protobuf encoder (stdlib only).

Read by ``go tool pprof``, speedscope, and Pyroscope/Grafana (research/formats-and-viewers.md §3).
What is written:

- ``sample_type``: the profile's value columns as they are (``samples/count``, ``cpu/nanoseconds``,
  ``wall/nanoseconds``; memory profiles ``alloc_objects/count``, ``alloc_space/bytes``, ...);
  ``default_sample_type`` is :meth:`Profile.default_type` (CPU when present) or ``value_type``.
- ``period_type``/``period`` from ``metadata["period_ns"]`` (for a nanosecond default type);
  ``time_nanos`` and ``duration_nanos`` from ``metadata["start_ns"]`` / ``["duration_ns"]``.
- One ``Function`` per (function, file): ``name``, ``filename`` (shortened as the other exporters do
  unless ``full_paths``), ``system_name`` = ``module.function`` when the module is known. It is never
  equal to ``name``: pprof would run its C++ demangler on it and turn ``<module>`` into ``<unknown>``.
  ``start_line`` is left unset: the model keeps the sampled line, not the ``def`` line.
- One ``Location`` per (function, line); a sample's ``location_id`` list is **leaf first** (the
  model's stacks are root first). An empty function name becomes ``[unknown]``.
- Every sample label as a string label with the model's OpenTelemetry key (``mcp.method.name``,
  ``gen_ai.tool.name``, ``thread.name``, ...). Samples whose values are all zero are left out;
  negative values (a diff's base side, labelled ``mcpprof.diff``) are written as they are.
- No ``Mapping`` (optional for interpreted code); ``comment``: the generator and collector.
- gzip with ``mtime=0``: the same profile gives the same bytes.

Pyroscope (``POST /ingest?format=pprof``, or Alloy's ``pyroscope.receive_http``) takes the profile
types from ``sample_type`` and turns each distinct set of sample labels into a series; what it
requires, with the docs and code it comes from, is in :mod:`mcpprof.export.pyroscope`. With
``pyroscope=True`` the label keys are Prometheus names (``gen_ai_tool_name``), which every Pyroscope
version accepts; the OpenTelemetry keys are kept otherwise (newer servers rename them the same
way, older ones reject a dotted name). Ingestion by a Pyroscope server is not tested here (none is
installable offline); ``tests/unit/test_export_pprof.py`` checks the documented rules.
"""

from __future__ import annotations

import gzip
from typing import Dict, List, Optional, Sequence, Tuple

from .._version import __version__
from ..analyse.paths import PathView
from ..model import Profile
from .pyroscope import label_name
from .tree import UNKNOWN_NAME, TypeArg, paused_gc, resolve_type

# -- the wire format (https://protobuf.dev/programming-guides/encoding/) ----------------------------

_VARINT, _LEN = 0, 2


def varint(n: int) -> bytes:
    """Base-128 varint; a negative int64 is its 64-bit two's complement (10 bytes)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    """An int64/uint64 field; zero (proto3's default) is omitted."""
    return _key(field, _VARINT) + varint(value) if value else b""


def _msg(field: int, payload: bytes) -> bytes:
    """A length-delimited field (sub-message or string); always written, even when empty."""
    return _key(field, _LEN) + varint(len(payload)) + payload


def _packed(field: int, values: Sequence[int]) -> bytes:
    return _msg(field, b"".join(map(varint, values))) if values else b""


# profile.proto field numbers
_P_SAMPLE_TYPE, _P_SAMPLE, _P_LOCATION, _P_FUNCTION, _P_STRING = 1, 2, 4, 5, 6
_P_TIME, _P_DURATION, _P_PERIOD_TYPE, _P_PERIOD, _P_COMMENT, _P_DEFAULT_TYPE = 9, 10, 11, 12, 13, 14


class _Strings:
    """The string table: index 0 is always ``""``."""

    def __init__(self) -> None:
        self.table: List[str] = [""]
        self._index: Dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self.table)
            self.table.append(text)
        return i


def _value_type(strings: _Strings, type_: str, unit: str) -> bytes:
    return _int(1, strings(type_)) + _int(2, strings(unit))


def render(profile: Profile, value_type: TypeArg = None, full_paths: bool = False,
           compress: bool = True, pyroscope: bool = False) -> bytes:
    """The profile as pprof bytes (gzipped unless ``compress`` is false; label keys as Prometheus
    names with ``pyroscope``)."""
    default = resolve_type(profile, value_type)
    with paused_gc():
        raw = encode(profile, default.type, full_paths, pyroscope)
    return gzip.compress(raw, compresslevel=9, mtime=0) if compress else raw


def encode(profile: Profile, default_type: str, full_paths: bool = False, pyroscope: bool = False) -> bytes:
    """The uncompressed ``Profile`` message."""
    s = _Strings()
    key_of = label_name if pyroscope else str
    paths = PathView(profile.metadata, full_paths)
    out = bytearray()
    for vt in profile.sample_types:
        out += _msg(_P_SAMPLE_TYPE, _value_type(s, vt.type, vt.unit))

    functions: Dict[Tuple[str, str], int] = {}
    function_msgs: List[bytes] = []
    locations: Dict[Tuple[int, int], int] = {}
    location_msgs: List[bytes] = []
    frame_location: List[Optional[int]] = [None] * len(profile.frames)

    def location_of(frame_id: int) -> int:
        loc = frame_location[frame_id]
        if loc is not None:
            return loc
        f = profile.frames[frame_id]
        name = f.function.strip() or UNKNOWN_NAME
        file = paths.short(f.file)
        fkey = (name, file)
        fid = functions.get(fkey)
        if fid is None:
            fid = functions[fkey] = len(functions) + 1
            system = f"{f.module}.{name}" if f.module and f.module != "__main__" else ""
            function_msgs.append(_int(1, fid) + _int(2, s(name)) + _int(3, s(system) if system != name else 0)
                                 + _int(4, s(file)))
        lkey = (fid, max(f.line, 0))
        loc = locations.get(lkey)
        if loc is None:
            loc = locations[lkey] = len(locations) + 1
            line = _int(1, fid) + _int(2, lkey[1])
            location_msgs.append(_int(1, loc) + _msg(4, line))
        frame_location[frame_id] = loc
        return loc

    unknown_stack: List[int] = []
    label_cache: Dict[tuple, bytes] = {}
    stack_cache: Dict[int, bytes] = {}
    for sample in profile.samples:
        if not any(sample.values):
            continue
        locs = stack_cache.get(sample.stack)
        if locs is None:
            frames = profile.stacks[sample.stack]
            ids = [location_of(fid) for fid in reversed(frames)]  # pprof: leaf first
            if not ids:  # a sample without a stack still counts
                if not unknown_stack:
                    unknown_stack.append(_unknown_location(s, functions, function_msgs, locations,
                                                           location_msgs))
                ids = unknown_stack
            locs = stack_cache[sample.stack] = _packed(1, ids)
        labels = label_cache.get(sample.labels)
        if labels is None:
            labels = label_cache[sample.labels] = b"".join(
                _msg(3, _int(1, s(key_of(k))) + _int(2, s(v))) for k, v in sample.labels if v != "")
        out += _msg(_P_SAMPLE, locs + _packed(2, sample.values) + labels)

    for msg in location_msgs:
        out += _msg(_P_LOCATION, msg)
    for msg in function_msgs:
        out += _msg(_P_FUNCTION, msg)

    md = profile.metadata
    tail = bytearray()
    tail += _int(_P_TIME, _as_int(md.get("start_ns")))
    tail += _int(_P_DURATION, _as_int(md.get("duration_ns")))
    period = _as_int(md.get("period_ns"))
    default_vt = next(vt for vt in profile.sample_types if vt.type == default_type)
    if period > 0 and default_vt.unit == "nanoseconds":
        tail += _msg(_P_PERIOD_TYPE, _value_type(s, default_vt.type, default_vt.unit))
        tail += _int(_P_PERIOD, period)
    comments = [f"generator: mcpprof {__version__}"]
    if md.get("collector"):
        comments.append(f"collector: {md['collector']}")
    for text in comments:
        tail += _int(_P_COMMENT, s(text))
    tail += _int(_P_DEFAULT_TYPE, s(default_type))
    for text in s.table:  # every string is interned by now; the table goes before the tail
        out += _msg(_P_STRING, text.encode("utf-8", "replace"))
    out += tail
    return bytes(out)


def _unknown_location(s: _Strings, functions: Dict[Tuple[str, str], int], function_msgs: List[bytes],
                      locations: Dict[Tuple[int, int], int], location_msgs: List[bytes]) -> int:
    fkey = (UNKNOWN_NAME, "")
    fid = functions.get(fkey)
    if fid is None:
        fid = functions[fkey] = len(functions) + 1
        function_msgs.append(_int(1, fid) + _int(2, s(UNKNOWN_NAME)))
    loc = locations.get((fid, 0))
    if loc is None:
        loc = locations[(fid, 0)] = len(locations) + 1
        location_msgs.append(_int(1, loc) + _msg(4, _int(1, fid)))
    return loc


def _as_int(value: object) -> int:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else 0  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0
