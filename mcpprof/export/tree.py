"""Views the exporters share: which value column to show, display names, and the call tree.

The call tree is a view of the flat samples, built on demand: a root (``all``), one node per request
name (``tools/call echo``, ``(transport & dispatch)``), then the stack frames, each frame shown as
``function (short/file.py:line)``. Children are sorted by name (as flamegraph.pl does), every node
carries one value per selected sample type, and children smaller than ``min_fraction`` of the total
(in every type) are merged into one ``[pruned]`` child per parent, so totals stay exact.

Building costs one string per distinct (request, stack), one sort, and ``O(log n)`` per node kept:
each is written as name numbers (``"7,12,3,40,"``, the request first) chosen so that plain string
order is name order, the strings are sorted once with prefix sums per value type, and then a
node's stacks are one contiguous run (found by bisection) and its value a difference of two prefix
sums; pruned subtrees are never walked. Exporters pause the cyclic GC while they build
(:func:`paused_gc`).

A diff profile (:func:`mcpprof.analyse.ops.diff`) can be built with ``sides=True``: the two sides
then stay apart in one tree (``node_values`` the new side, ``node_base`` the base side), which is
what the differential flame graph draws.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from operator import attrgetter, itemgetter
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..analyse.ops import DIFF_BASE, DIFF_LABEL
from ..analyse.paths import PathView
from ..errors import UsageError
from ..model import Frame, Profile, ValueType
from ..model import labels as L

ROOT_NAME = "all"
PRUNED_NAME = "[pruned]"
UNKNOWN_NAME = "[unknown]"

# Node kinds (how the flame graph colours a box).
KIND_ROOT = 0
KIND_REQUEST = 1
KIND_LIBRARY = 2  # stdlib, installed packages, mcpprof itself
KIND_USER = 3  # the server's own code
KIND_PRUNED = 4

_TYPE_LABELS = {
    "cpu": "CPU", "wall": "Wall", "samples": "Samples", "calls": "Calls",
    "alloc_space": "Allocated bytes", "alloc_objects": "Allocated objects",
    "inuse_space": "In-use bytes", "inuse_objects": "In-use objects",
}
_COUNT_NOUNS = {"samples": "samples", "calls": "calls", "alloc_objects": "objects",
                "inuse_objects": "objects"}

TypeArg = Union[ValueType, str, None]


def type_label(vt: ValueType) -> str:
    """Display name of a value type: ``CPU``, ``Wall``, ``Allocated bytes``, ..."""
    return _TYPE_LABELS.get(vt.type, vt.type.replace("_", " ").capitalize())


def count_noun(vt: ValueType) -> str:
    """What a count-unit value counts (``samples``, ``objects``); empty for other units."""
    if vt.unit != "count":
        return ""
    return _COUNT_NOUNS.get(vt.type, "")


def resolve_type(profile: Profile, value_type: TypeArg = None) -> ValueType:
    """The profile's value type named by ``value_type`` (ValueType, ``"cpu"``, ``"cpu/nanoseconds"``);
    the profile's default type when None. Raises UsageError naming the available types."""
    if value_type is None or value_type == "":
        return profile.default_type()
    try:
        return profile.sample_types[profile.value_index(value_type)]
    except KeyError:
        names = ", ".join(str(t) for t in profile.sample_types)
        raise UsageError(f"the profile has no value type {str(value_type)!r} (it has {names})") from None


def default_title(profile: Profile) -> str:
    """A title that never embeds command lines or paths."""
    collector = str(profile.metadata.get("collector") or "").strip()
    return f"mcpprof {collector} profile" if collector else "mcpprof profile"


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while an exporter allocates its many small tuples and
    strings: each collection would re-scan the whole profile (halves export time on big profiles).
    Nothing an exporter builds is cyclic; the collector is re-enabled as it was found."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def is_diff(profile: Profile) -> bool:
    """Whether ``profile`` is a diff profile (:func:`mcpprof.analyse.ops.diff`)."""
    return "diff" in profile.metadata or any(s.label(DIFF_LABEL) for s in profile.samples)


def thread_name(labels: Dict[str, str]) -> Optional[str]:
    """The thread a label set belongs to (its name, else its id), or None."""
    return labels.get(L.THREAD_NAME) or labels.get(L.THREAD_ID) or None


class FrameNames:
    """Display names of a profile's frames (``function (short/file.py:line)``), computed once each."""

    def __init__(self, profile: Profile, full_paths: bool = False):
        self.profile = profile
        self.paths = PathView(profile.metadata, full_paths)
        self._names: List[Optional[str]] = [None] * len(profile.frames)

    def __call__(self, frame_id: int) -> str:
        name = self._names[frame_id]
        if name is None:
            frame = self.profile.frames[frame_id]
            if not frame.function.strip():
                frame = Frame(UNKNOWN_NAME, frame.file, frame.line)
            name = self._names[frame_id] = self.paths.label(frame)
        return name


@dataclass
class CallTree:
    """A pruned call tree in flat arrays (``node_parent[i] < i``; siblings in display order).

    ``node_values[t][i]`` is node ``i``'s inclusive value in ``types[t]``; its self value is that
    minus its children's. ``pruned_values[t]`` is the value merged into ``[pruned]`` nodes and
    ``pruned_subtrees`` how many subtrees were merged. A tree built with ``sides`` also has
    ``node_base``, ``base_totals`` and ``base_pruned``: the same for the diff's base side (positive).
    """

    types: List[ValueType]
    names: List[str]
    name_kinds: List[int]
    node_name: List[int]
    node_parent: List[int]
    node_values: List[List[int]]
    totals: List[int]
    pruned_values: List[int]
    pruned_subtrees: int = 0
    min_fraction: float = 0.0
    request_level: bool = True
    node_base: Optional[List[List[int]]] = None
    base_totals: Optional[List[int]] = None
    base_pruned: Optional[List[int]] = None
    _children: Optional[List[List[int]]] = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.node_name)

    def name(self, node: int) -> str:
        return self.names[self.node_name[node]]

    def kind(self, node: int) -> int:
        return self.name_kinds[self.node_name[node]]

    def children(self, node: int) -> List[int]:
        if self._children is None:
            kids: List[List[int]] = [[] for _ in self.node_name]
            for i in range(1, len(self.node_name)):
                kids[self.node_parent[i]].append(i)
            self._children = kids
        return self._children[node]

    def path(self, node: int) -> List[str]:
        """Names from the root's first child down to ``node``."""
        out: List[str] = []
        while node > 0:
            out.append(self.name(node))
            node = self.node_parent[node]
        return out[::-1]

    def self_values(self, type_index: int = 0) -> Dict[Tuple[str, ...], int]:
        """``{path: self value}`` for nodes with a non-zero self value (a folded view, for tests)."""
        vals = self.node_values[type_index]
        selfv = list(vals)
        for i in range(1, len(vals)):
            selfv[self.node_parent[i]] -= vals[i]
        return {tuple(self.path(i)): v for i, v in enumerate(selfv) if v}

    def depth(self) -> int:
        """Depth of the deepest node (the root is depth 0)."""
        depth = [0] * len(self.node_name)
        for i in range(1, len(depth)):
            depth[i] = depth[self.node_parent[i]] + 1
        return max(depth)


def _keep(sums: Sequence[int], thresholds: Sequence[float]) -> bool:
    for s, t in zip(sums, thresholds):
        if s > 0 and s >= t:
            return True
    return False


def build_call_tree(profile: Profile, value_types: Optional[Sequence[TypeArg]] = None, *,
                    request_level: bool = True, full_paths: bool = False,
                    min_fraction: float = 0.0, sides: bool = False) -> CallTree:
    """Build the call tree of ``profile`` for ``value_types`` (default: all its types).

    Negative values (the base half of a diff profile) are netted per (request, stack) and what
    stays negative is left out: a box cannot have a negative width. With ``sides`` (for a diff
    profile) the sides are kept apart instead: ``node_values`` holds the new side, ``node_base``
    the base side, and a node is kept when either side reaches ``min_fraction`` of its own total.
    """
    with paused_gc():
        return _build(profile, value_types, request_level, full_paths, min_fraction, sides)


def _build(profile: Profile, value_types: Optional[Sequence[TypeArg]], request_level: bool,
           full_paths: bool, min_fraction: float, sides: bool = False) -> CallTree:
    types = [resolve_type(profile, t) for t in value_types] if value_types else list(profile.sample_types)
    idxs = [profile.sample_types.index(t) for t in types]
    ntypes = 2 * len(idxs) if sides else len(idxs)  # value columns: [new..., base...] with sides
    frame_names = FrameNames(profile, full_paths)

    # 1. Names: (text, kind) -> id, ranked by text; frames get numbers whose *string* order is that
    #    rank (0, 1, 10, 11, ..., 2, ...), so a stack written as "n1,n2,...," sorts, as a plain
    #    string, by frame names root first, with every subtree's stacks in one contiguous run.
    name_ids: Dict[Tuple[str, int], int] = {}
    names: List[str] = []
    kinds: List[int] = []

    def intern(text: str, kind: int) -> int:
        key = (text, kind)
        nid = name_ids.get(key)
        if nid is None:
            nid = name_ids[key] = len(names)
            names.append(text)
            kinds.append(kind)
        return nid

    is_user = frame_names.paths.is_user_frame
    frame_name = [intern(frame_names(fid), KIND_USER if is_user(f) else KIND_LIBRARY)
                  for fid, f in enumerate(profile.frames)]
    samples = profile.samples
    request_of: List[int] = []  # name id per distinct label set
    if request_level:  # the request level is one more "frame" at the root of every stack
        label_ids: Dict[Any, int] = {}
        label_id = [label_ids.setdefault(s.labels, len(label_ids)) for s in samples]  # one hash each
        request_of = [intern(L.request_name(dict(labels)), KIND_REQUEST) for labels in label_ids]
    by_text = sorted(range(len(names)), key=lambda i: (names[i], kinds[i]))
    numbers = sorted(range(len(names)), key=str)
    name_of_number = [0] * len(names)
    digits_of_name = [""] * len(names)
    for nid, number in zip(by_text, numbers):
        name_of_number[number] = nid
        digits_of_name[nid] = str(number) + ","
    digits = [digits_of_name[nid] for nid in frame_name].__getitem__

    # 2. Values by (request and) stack text ("n0,n1,n2,"), summed; sorted texts; prefix sums.
    pick = itemgetter(*idxs) if len(idxs) > 1 else (lambda vals: (vals[idxs[0]],))
    stacks = profile.stacks
    stack_text = {sid: "".join(map(digits, stacks[sid])) for sid in {s.stack for s in samples}}
    if request_level:
        request_text = [digits_of_name[nid] for nid in request_of]
        texts = [request_text[lid] + stack_text[s.stack] for lid, s in zip(label_id, samples)]
    else:
        texts = [stack_text[s.stack] for s in samples]
    vals = list(map(pick, map(attrgetter("values"), samples)))
    if sides:  # new samples fill the first half of the columns, base samples (negated back) the second
        zero = (0,) * len(idxs)
        vals = [zero + tuple(-x for x in v) if s.label(DIFF_LABEL) == DIFF_BASE else tuple(v) + zero
                for s, v in zip(samples, vals)]
    agg: Dict[str, Sequence[int]] = dict(zip(texts, vals))
    if len(agg) != len(texts):  # a stack on several rows (other labels), or stacks alike: sum
        summed: Dict[str, List[int]] = {}
        for text, v in zip(texts, vals):
            acc = summed.get(text)
            if acc is None:
                summed[text] = list(v)
            else:
                for k in range(ntypes):
                    acc[k] += v[k]
        agg = summed
    if agg and min(map(min, agg.values())) <= 0:  # zeros, or the base half of a diff
        agg = {t: [max(x, 0) for x in v] for t, v in agg.items() if max(v) > 0}
    keys = sorted(agg)
    columns = [list(col) for col in zip(*map(agg.__getitem__, keys))] or [[] for _ in range(ntypes)]
    prefix = [list(accumulate(col, initial=0)) for col in columns]
    totals = [p[-1] for p in prefix]
    thresholds = [min_fraction * t for t in totals]

    # 3. Walk the sorted texts: a node owns a contiguous run [lo, hi) of texts that start with its
    #    prefix; its value is a difference of prefix sums; a child's run ends where
    #    "prefix + number + '-'" would sort ('-' sorts right after ',' and before every digit).
    node_name = [intern(ROOT_NAME, KIND_ROOT)]
    node_parent = [-1]
    node_values = [[t] for t in totals]
    pruned_values = [0] * ntypes
    pruned_subtrees = 0
    pruned_id = -1
    work = [(0, len(keys), 0, 0)]
    while work:
        lo, hi, plen, parent = work.pop()
        if lo == hi:
            continue
        i = lo
        while i < hi and len(keys[i]) == plen:  # stacks ending here (self value) sort first
            i += 1
        head = keys[lo][:plen]
        child_work = []
        pruned = [0] * ntypes
        npruned = 0
        while i < hi:
            key = keys[i]
            end = key.index(",", plen)
            number = key[plen:end]
            j = bisect_left(keys, head + number + "-", i, hi)
            sums = [p[j] - p[i] for p in prefix]
            if _keep(sums, thresholds):
                child_work.append((i, j, end + 1, len(node_name)))
                node_name.append(name_of_number[int(number)])
                node_parent.append(parent)
                for k in range(ntypes):
                    node_values[k].append(sums[k])
            else:
                npruned += 1
                for k in range(ntypes):
                    pruned[k] += sums[k]
            i = j
        if npruned:
            if pruned_id < 0:
                pruned_id = intern(PRUNED_NAME, KIND_PRUNED)
            node_name.append(pruned_id)
            node_parent.append(parent)
            for k in range(ntypes):
                node_values[k].append(pruned[k])
                pruned_values[k] += pruned[k]
            pruned_subtrees += npruned
        work.extend(reversed(child_work))

    # 4. Keep only the names some node uses, in text order (then [pruned]).
    used = sorted(set(node_name), key=lambda i: (kinds[i] == KIND_PRUNED, names[i], kinds[i]))
    new_id = {old: new for new, old in enumerate(used)}
    half = len(idxs)
    tree = CallTree(types=types, names=[names[i] for i in used], name_kinds=[kinds[i] for i in used],
                    node_name=[new_id[i] for i in node_name], node_parent=node_parent,
                    node_values=node_values[:half], totals=totals[:half],
                    pruned_values=pruned_values[:half], pruned_subtrees=pruned_subtrees,
                    min_fraction=min_fraction, request_level=request_level)
    if sides:
        tree.node_base, tree.base_totals = node_values[half:], totals[half:]
        tree.base_pruned = pruned_values[half:]
    return tree
