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
from operator import attrgetter, itemgetter
from typing import Dict, List, Optional, Tuple

from .._version import __version__
from ..analyse.paths import PathView
from ..model import CPU, SAMPLES, WALL, Profile, ValueType
from ..model import labels as L
from .tree import (UNKNOWN_NAME, TypeArg, default_title, paused_gc, resolve_type, thread_name,
                   type_label)

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"
_UNITS = {"nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"}


def unit_of(vt: ValueType) -> str:
    return vt.unit if vt.unit in _UNITS else "none"


def render(profile: Profile, full_paths: bool = False, value_type: TypeArg = None,
           title: Optional[str] = None) -> bytes:
    """speedscope JSON of ``profile``; ``value_type`` (default: the profile's default type) decides
    which whole-process profile comes first; ``title`` is the file's name (default: mcpprof's)."""
    first = resolve_type(profile, value_type)
    with paused_gc():
        return _render(profile, first, full_paths, title)


def _render(profile: Profile, first: ValueType, full_paths: bool, title: Optional[str]) -> bytes:
    others = [t for t in profile.sample_types if t != first]
    if CPU in profile.sample_types or WALL in profile.sample_types:
        others = [t for t in others if t != SAMPLES]
    whole_types = [first] + others
    breakdown_types = [t for t in (CPU, WALL) if t in profile.sample_types] or [first]
    idx = {t: profile.sample_types.index(t) for t in profile.sample_types}

    # Sample rows in the order of their stacks' frame names, done once: every profile below is
    # then a filtered slice of these rows, already in order (and memory is read sequentially).
    stacks = _Stacks(profile, full_paths)
    samples = profile.samples
    row_text = [stacks.text[s.stack] for s in samples]
    order = sorted(range(len(samples)), key=row_text.__getitem__)
    arrays: List[str] = [row_text[i] for i in order]  # distinct stacks, in order
    ranks: List[int] = list(range(len(arrays)))  # each sorted row's index into arrays
    repeats = len(set(arrays)) != len(arrays)  # a stack on several rows (other labels): sum them
    if repeats:
        arrays, ranks, last = [], [], None
        for i in order:
            text = row_text[i]
            if text != last:
                arrays.append(text)
                last = text
            ranks.append(len(arrays) - 1)
    # columns read in sample order (sequential), then put in sorted order
    values = list(map(attrgetter("values"), samples))
    columns = {}
    for t in set(whole_types) | set(breakdown_types):
        col = list(map(itemgetter(idx[t]), values))
        columns[t] = [col[i] for i in order]

    # rows (positions in that order) by request name and by thread
    label_ids: Dict[tuple, int] = {}
    label_id = [label_ids.setdefault(s.labels, len(label_ids)) for s in samples]
    by_request: Dict[str, List[int]] = {}
    by_thread: Dict[str, List[int]] = {}
    groups = []
    for labels in label_ids:
        d = dict(labels)
        groups.append((by_request.setdefault(L.request_name(d), []),
                       by_thread.setdefault(thread_name(d) or "[unknown thread]", [])))
    for j, i in enumerate(order):
        request_rows, thread_rows = groups[label_id[i]]
        request_rows.append(j)
        thread_rows.append(j)

    plan: List[Tuple[str, ValueType, Optional[List[int]]]] = [
        (f"{type_label(t)} \u2014 all requests", t, None) for t in whole_types]
    if len(by_request) >= 2:
        for req in sorted(by_request):
            for t in breakdown_types:
                plan.append((f"{type_label(t)} \u2014 {req}", t, by_request[req]))
    if len(by_thread) >= 2:
        t = breakdown_types[0]
        for thread in sorted(by_thread):
            plan.append((f"{type_label(t)} \u2014 thread {thread}", t, by_thread[thread]))

    # Profiles of one slice of rows (CPU and wall of a request, say) usually list the same stacks:
    # their "samples" text is built once.
    pieces: List[str] = []  # the file is ASCII: json.dumps escapes every other character
    samples_text: Dict[int, str] = {}
    row_ranks: Dict[int, List[int]] = {}
    for name, t, rows in plan:
        col = columns[t]
        if rows is None:
            part = _profile(name, t, ranks, col, arrays, repeats, samples_text)
        else:
            sub = row_ranks.get(id(rows))
            if sub is None:  # without repeats a row's rank is its position: the rows are the ranks
                sub = row_ranks[id(rows)] = [ranks[j] for j in rows] if repeats else rows
            part = _profile(name, t, sub, _take(col, rows), arrays, repeats, samples_text)
        if part:
            pieces.extend(part)
            pieces.append(",\n")
    if pieces:
        pieces.pop()
    else:  # speedscope cannot open a file without profiles; an empty one it can
        pieces.extend(_profile(plan[0][0], plan[0][1], [], [], arrays, False, {}, keep_empty=True) or [])

    head = {
        "$schema": SCHEMA_URL,
        "exporter": f"mcpprof@{__version__}",
        "name": title or default_title(profile),
        "activeProfileIndex": 0,
    }
    start = json.dumps(head)[:-1] + ', "shared": {"frames": ' + stacks.frames_json() + '}, "profiles": ['
    return "".join([start, *pieces, "]}\n"]).encode("ascii")


def _take(values: List[int], rows: List[int]) -> List[int]:
    """``[values[j] for j in rows]``, at C speed."""
    if len(rows) < 2:
        return [values[j] for j in rows]
    return list(itemgetter(*rows)(values))


class _Stacks:
    """Shared speedscope frames, interned by (name, file, line), and each stack's frame indices as
    JSON text without brackets (``text[stack id] == "3,1,4"``).

    Frames are numbered so that the *string* order of the numbers follows the frames' name order
    (``0, 1, 10, 11, 2, ...`` go to the names in sorted order). Since ``,`` sorts below every digit,
    sorting stacks by their text (fast: plain string comparison) then sorts them by frame names,
    root first, with equal prefixes together: speedscope's Time Order view reads as a flame graph.
    """

    def __init__(self, profile: Profile, full_paths: bool):
        paths = PathView(profile.metadata, full_paths)
        stacks = profile.stacks
        key_id: Dict[Tuple[str, str, int], int] = {}
        keys: List[Tuple[str, str, int]] = []
        frame_key = [0] * len(profile.frames)
        for fid, f in enumerate(profile.frames):
            key = (f.function.strip() or UNKNOWN_NAME, paths.short(f.file), max(f.line, 0))
            k = key_id.get(key)
            if k is None:
                k = key_id[key] = len(keys)
                keys.append(key)
            frame_key[fid] = k
        used = {s.stack for s in profile.samples}
        empty = any(not stacks[sid] for sid in used)
        if empty and (UNKNOWN_NAME, "", 0) not in key_id:  # a sample without frames: one [unknown] frame
            key_id[(UNKNOWN_NAME, "", 0)] = len(keys)
            keys.append((UNKNOWN_NAME, "", 0))
        by_name = sorted(range(len(keys)), key=keys.__getitem__)
        numbers = sorted(range(len(keys)), key=str)  # 0, 1, 10, 11, ..., 2, ...
        number_of = [0] * len(keys)
        self.keys: List[Tuple[str, str, int]] = list(keys)  # by number (filled below)
        for k, n in zip(by_name, numbers):
            number_of[k] = n
            self.keys[n] = keys[k]
        digits = [str(number_of[k]) for k in frame_key].__getitem__
        unknown = str(number_of[key_id[(UNKNOWN_NAME, "", 0)]]) if empty else ""
        self.text = [""] * len(stacks)
        for sid in used:
            self.text[sid] = ",".join(map(digits, stacks[sid])) or unknown

    def frames_json(self) -> str:
        frames = []
        for name, file, line in self.keys:
            fr: Dict[str, object] = {"name": name}
            if file:
                fr["file"] = file
            if line:
                fr["line"] = line
            frames.append(fr)
        return json.dumps(frames, separators=(",", ":"))


def _profile(name: str, t: ValueType, ranks: List[int], weights: List[int], arrays: List[str],
             may_repeat: bool, samples_text: Dict[int, str],
             keep_empty: bool = False) -> Optional[List[str]]:
    """One sampled profile as JSON text pieces, from rows sorted by stack number (equal numbers
    summed when ``may_repeat``, rows whose total is <= 0 left out)."""
    given = ranks
    if may_repeat and len(set(ranks)) != len(ranks):
        merged_r: List[int] = []
        merged_w: List[int] = []
        last = -1
        for r, w in zip(ranks, weights):
            if r == last:
                merged_w[-1] += w
            else:
                merged_r.append(r)
                merged_w.append(w)
                last = r
        ranks, weights = merged_r, merged_w
    if weights and min(weights) <= 0:
        keep = [k for k, w in enumerate(weights) if w > 0]
        ranks, weights = [ranks[k] for k in keep], [weights[k] for k in keep]
    if not ranks and not keep_empty:
        return None
    # the caller's list (alive until the file is written) unchanged: the same stacks as last time
    key = id(ranks) if ranks is given else None
    samples = samples_text.get(key) if key is not None else None
    if samples is None:  # "1,2],[1,3": the brackets around it are separate pieces (no big copies)
        samples = "],[".join(map(arrays.__getitem__, ranks))
        if key is not None:
            samples_text[key] = samples
    head = f'{{"type":"sampled","name":{json.dumps(name)},"unit":"{unit_of(t)}","startValue":0,' \
           f'"endValue":{sum(weights)},"samples":[' + ("[" if ranks else "")
    # str() of a list of ints: 3x faster than a join of str()s
    return [head, samples, ']],"weights":' if ranks else '],"weights":', str(weights).replace(" ", ""), "}"]
