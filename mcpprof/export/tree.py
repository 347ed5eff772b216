"""Views the exporters share: which value column to show, display names, and the call tree.

The call tree is a view of the flat samples, built on demand: a root (``all``), one node per request
name (``tools/call echo``, ``(transport & dispatch)``), then the stack frames, each frame shown as
``function (short/file.py:line)``. Children are sorted by name (as flamegraph.pl does), every node
carries one value per selected sample type, and children smaller than ``min_fraction`` of the total
(in every type) are merged into one ``[pruned]`` child per parent, so totals stay exact.

Building is ``O(nodes kept × log samples)``: the distinct (request, stack) paths are sorted once,
with prefix sums per value type, so a node's value is a difference of two prefix sums and its
children are found by bisection; pruned subtrees are never walked.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

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
_COUNT_NOUNS = {"samples": "samples", "calls": "calls", "alloc_objects": "objects", "inuse_objects": "objects"}

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
    ``pruned_subtrees`` how many subtrees were merged.
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
                    min_fraction: float = 0.0) -> CallTree:
    """Build the call tree of ``profile`` for ``value_types`` (default: all its types).

    Negative values (the base half of a diff profile) are netted per (request, stack) and what
    stays negative is left out: a box cannot have a negative width.
    """
    types = [resolve_type(profile, t) for t in value_types] if value_types else list(profile.sample_types)
    idxs = [profile.sample_types.index(t) for t in types]
    ntypes = len(idxs)
    frame_names = FrameNames(profile, full_paths)

    # 1. Aggregate values by (request name, stack).
    agg: Dict[Tuple[str, int], List[int]] = {}
    req_of: Dict[Any, str] = {}
    pick = itemgetter(*idxs) if ntypes > 1 else (lambda vals: (vals[idxs[0]],))
    for s in profile.samples:
        v = pick(s.values)
        if not any(v):
            continue
        req = ""
        if request_level:
            req = req_of.get(s.labels)  # type: ignore[assignment]
            if req is None:
                req = req_of[s.labels] = L.request_name(dict(s.labels))
        key = (req, s.stack)
        acc = agg.get(key)
        if acc is None:
            agg[key] = list(v)
        else:
            for k in range(ntypes):
                acc[k] += v[k]

    # 2. Intern names: (text, kind) -> id; then rank ids by text so sorted paths are alphabetical.
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

    root_id = intern(ROOT_NAME, KIND_ROOT)
    used_frames: set = set()
    stacks = profile.stacks
    for sid in {sid for _req, sid in agg}:
        used_frames.update(stacks[sid])
    frame_id_of: Dict[int, int] = {}
    for fid in sorted(used_frames):
        frame = profile.frames[fid]
        kind = KIND_USER if frame_names.paths.is_user_frame(frame) else KIND_LIBRARY
        frame_id_of[fid] = intern(frame_names(fid), kind)
    req_id_of = {req: intern(req, KIND_REQUEST) for req in sorted({r for r, _ in agg})} if request_level else {}
    order = sorted(range(len(names)), key=lambda i: (names[i], kinds[i]))
    rank = [0] * len(names)
    for pos, nid in enumerate(order):
        rank[nid] = pos
    names = [names[i] for i in order]
    kinds = [kinds[i] for i in order]
    frame_rank = [-1] * len(profile.frames)
    for fid, nid in frame_id_of.items():
        frame_rank[fid] = rank[nid]
    rank_of = frame_rank.__getitem__

    # 3. Sorted paths of name ranks, prefix sums per type.
    stack_path: Dict[int, Tuple[int, ...]] = {}
    entries: List[Tuple[Tuple[int, ...], List[int]]] = []
    for (req, sid), v in agg.items():
        if min(v) < 0:
            v = [x if x > 0 else 0 for x in v]
            if not any(v):
                continue
        path = stack_path.get(sid)
        if path is None:
            path = stack_path[sid] = tuple(map(rank_of, stacks[sid]))
        if request_level:
            path = (rank[req_id_of[req]],) + path
        entries.append((path, v))
    entries.sort(key=itemgetter(0))
    paths = [e[0] for e in entries]
    prefix = [list(accumulate([e[1][k] for e in entries], initial=0)) for k in range(ntypes)]
    n = len(entries)
    totals = [p[n] for p in prefix]
    thresholds = [min_fraction * t for t in totals]

    # 4. Walk the sorted paths: each node owns a contiguous range [lo, hi) sharing its prefix.
    node_name = [rank[root_id]]
    node_parent = [-1]
    node_values = [[t] for t in totals]
    pruned_values = [0] * ntypes
    pruned_subtrees = 0
    pruned_rank: Optional[int] = None
    work = [(0, n, 0, 0)]
    while work:
        lo, hi, d, parent = work.pop()
        i = lo
        while i < hi and len(paths[i]) == d:  # paths ending here (self value) sort first
            i += 1
        child_work = []
        pruned = [0] * ntypes
        npruned = 0
        getter = itemgetter(d)
        while i < hi:
            j = bisect_right(paths, paths[i][d], i, hi, key=getter)
            sums = [p[j] - p[i] for p in prefix]
            if _keep(sums, thresholds):
                child = len(node_name)
                node_name.append(paths[i][d])
                node_parent.append(parent)
                for k in range(ntypes):
                    node_values[k].append(sums[k])
                child_work.append((i, j, d + 1, child))
            else:
                npruned += 1
                for k in range(ntypes):
                    pruned[k] += sums[k]
            i = j
        if npruned:
            if pruned_rank is None:
                pruned_rank = len(names)
                names.append(PRUNED_NAME)
                kinds.append(KIND_PRUNED)
            node_name.append(pruned_rank)
            node_parent.append(parent)
            for k in range(ntypes):
                node_values[k].append(pruned[k])
                pruned_values[k] += pruned[k]
            pruned_subtrees += npruned
        work.extend(reversed(child_work))

    # 5. Keep only the names some node uses (pruned frames would bloat an embedded tree).
    used = sorted(set(node_name))
    new_id = {old: new for new, old in enumerate(used)}
    names = [names[i] for i in used]
    kinds = [kinds[i] for i in used]
    node_name = [new_id[i] for i in node_name]

    return CallTree(types=types, names=names, name_kinds=kinds, node_name=node_name,
                    node_parent=node_parent, node_values=node_values, totals=totals,
                    pruned_values=pruned_values, pruned_subtrees=pruned_subtrees,
                    min_fraction=min_fraction, request_level=request_level)
