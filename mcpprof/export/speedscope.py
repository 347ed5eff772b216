"""speedscope JSON (https://www.speedscope.app/file-format-schema.json), for the speedscope app.

Every profile is ``sampled`` and aggregated: one entry per distinct stack, weighted by its value
(per-sample files grow with samples × depth and load slowly; research/formats-and-viewers.md §2.6).
Entries are sorted by frame names, so the "Time Order" view reads like a flame graph.

Profiles, in order (``activeProfileIndex`` 0 is the first):

1. the whole process, one per value type: ``CPU — all requests``, ``Wall — all requests``, then the
   others (``samples/count`` is left out when a CPU or wall column exists: it is what they are
   made of);
2. one per request name (``CPU — tools/call echo``, ``Wall — tools/call echo``, ...) for CPU and
   wall (or the default type when the profile has neither), when there are at least two names;
3. one per thread for CPU (or the default type), when there are at least two threads.

Empty profiles and non-positive weights are left out (speedscope rejects negative weights); when
nothing is left the file keeps one empty profile, which speedscope opens. Units: ``nanoseconds``
(and the other time units speedscope knows), ``bytes``, else ``none``. Optional keys are omitted,
never ``null`` (the schema rejects nulls). Frames are ``{name, file, line}`` with short file names
unless ``full_paths``.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple

from .._version import __version__
from ..analyse.paths import PathView
from ..model import CPU, SAMPLES, WALL, Profile, ValueType
from ..model import labels as L
from .tree import UNKNOWN_NAME, TypeArg, default_title, resolve_type, thread_name, type_label

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"
_UNITS = {"nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"}


def unit_of(vt: ValueType) -> str:
    return vt.unit if vt.unit in _UNITS else "none"


def render(profile: Profile, full_paths: bool = False, value_type: TypeArg = None,
           title: Optional[str] = None) -> bytes:
    """speedscope JSON of ``profile``; ``value_type`` (default: the profile's default type) decides
    which whole-process profile comes first; ``title`` is the file's name (default: mcpprof's)."""
    first = resolve_type(profile, value_type)
    others = [t for t in profile.sample_types if t != first]
    if CPU in profile.sample_types or WALL in profile.sample_types:
        others = [t for t in others if t != SAMPLES]
    whole_types = [first] + others
    breakdown_types = [t for t in (CPU, WALL) if t in profile.sample_types] or [first]

    frames = _Frames(profile, full_paths)
    plan: List[Tuple[str, ValueType, Dict[int, int]]] = []  # (name, type, {stack: weight})
    whole = {t: _weights(profile, t) for t in whole_types}
    for t in whole_types:
        plan.append((f"{type_label(t)} \u2014 all requests", t, whole[t]))

    by_request: Dict[str, Dict[ValueType, Dict[int, int]]] = {}
    by_thread: Dict[str, Dict[int, int]] = {}
    idx = {t: profile.sample_types.index(t) for t in profile.sample_types}
    request_of: Dict[tuple, str] = {}
    thread_of: Dict[tuple, str] = {}
    for s in profile.samples:
        req = request_of.get(s.labels)
        if req is None:
            d = dict(s.labels)
            req = request_of[s.labels] = L.request_name(d)
            thread_of[s.labels] = thread_name(d) or "[unknown thread]"
        per_type = by_request.setdefault(req, {})
        for t in breakdown_types:
            v = s.values[idx[t]]
            if v:
                w = per_type.setdefault(t, {})
                w[s.stack] = w.get(s.stack, 0) + v
        v = s.values[idx[breakdown_types[0]]]
        if v:
            w = by_thread.setdefault(thread_of[s.labels], {})
            w[s.stack] = w.get(s.stack, 0) + v

    if len(by_request) >= 2:
        for req in sorted(by_request):
            for t in breakdown_types:
                plan.append((f"{type_label(t)} \u2014 {req}", t, by_request[req].get(t, {})))
    if len(by_thread) >= 2:
        t = breakdown_types[0]
        for thread in sorted(by_thread):
            plan.append((f"{type_label(t)} \u2014 thread {thread}", t, by_thread[thread]))

    parts = []
    for name, t, weights in plan:
        text = _profile_json(name, t, weights, frames)
        if text is not None:
            parts.append(text)
    if not parts:  # speedscope cannot open a file without profiles; an empty one it can
        parts.append(_profile_json(plan[0][0], plan[0][1], {}, frames, keep_empty=True))

    head = {
        "$schema": SCHEMA_URL,
        "exporter": f"mcpprof@{__version__}",
        "name": title or default_title(profile),
        "activeProfileIndex": 0,
    }
    out = (json.dumps(head)[:-1] + ', "shared": {"frames": ' + frames.json() + '}, "profiles": ['
           + ",\n".join(parts) + "]}\n")
    return out.encode("utf-8")


def _weights(profile: Profile, t: ValueType) -> Dict[int, int]:
    i = profile.sample_types.index(t)
    out: Dict[int, int] = {}
    for s in profile.samples:
        v = s.values[i]
        if v:
            out[s.stack] = out.get(s.stack, 0) + v
    return out


class _Frames:
    """Shared speedscope frames, interned by (name, file, line) and numbered in name order, so that
    sorting stacks by their frame indices sorts them by name; each stack's JSON array is cached."""

    def __init__(self, profile: Profile, full_paths: bool):
        paths = PathView(profile.metadata, full_paths)
        key_id: Dict[Tuple[str, str, int], int] = {}
        keys: List[Tuple[str, str, int]] = []
        frame_key: Dict[int, int] = {}
        used = {s.stack for s in profile.samples}
        for sid in used:
            for fid in profile.stacks[sid]:
                if fid not in frame_key:
                    f = profile.frames[fid]
                    key = (f.function.strip() or UNKNOWN_NAME, paths.short(f.file), max(f.line, 0))
                    k = key_id.get(key)
                    if k is None:
                        k = key_id[key] = len(keys)
                        keys.append(key)
                    frame_key[fid] = k
        order = sorted(range(len(keys)), key=keys.__getitem__)
        rank = [0] * len(keys)
        for pos, k in enumerate(order):
            rank[k] = pos
        self.keys = [keys[k] for k in order]
        self._final = {fid: rank[k] for fid, k in frame_key.items()}
        self._stacks = profile.stacks
        self._ids: Dict[int, Tuple[int, ...]] = {}
        self._json: Dict[int, str] = {}

    def ids(self, sid: int) -> Tuple[int, ...]:
        ids = self._ids.get(sid)
        if ids is None:
            ids = self._ids[sid] = tuple(map(self._final.__getitem__, self._stacks[sid]))
        return ids

    def array(self, sid: int) -> str:
        text = self._json.get(sid)
        if text is None:
            text = self._json[sid] = "[" + ",".join(map(str, self.ids(sid))) + "]"
        return text

    def json(self) -> str:
        frames = []
        for name, file, line in self.keys:
            fr: Dict[str, object] = {"name": name}
            if file:
                fr["file"] = file
            if line:
                fr["line"] = line
            frames.append(fr)
        return json.dumps(frames, separators=(",", ":"))


def _profile_json(name: str, t: ValueType, weights: Dict[int, int], frames: _Frames,
                  keep_empty: bool = False) -> Optional[str]:
    merged: Dict[Tuple[int, ...], List[int]] = {}  # two model stacks can show the same frames
    for sid, w in weights.items():
        ids = frames.ids(sid)
        row = merged.get(ids)
        if row is None:
            merged[ids] = [sid, w]
        else:
            row[1] += w
    rows = sorted((ids, sid, w) for ids, (sid, w) in merged.items() if w > 0)
    if not rows and not keep_empty:
        return None
    total = sum(r[2] for r in rows)
    samples = ",".join([frames.array(r[1]) for r in rows])
    return ('{"type":"sampled","name":' + json.dumps(name) + ',"unit":"' + unit_of(t)
            + '","startValue":0,"endValue":' + str(total) + ',"samples":[' + samples
            + '],"weights":[' + ",".join([str(r[2]) for r in rows]) + "]}")
