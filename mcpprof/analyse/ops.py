"""Pure operations on profiles, named after pprof's: ``Profile -> Profile`` (or a table).

None of them mutates its input. Every function that returns a profile re-interns frames and
stacks through :class:`~mcpprof.model.ProfileBuilder`, so the result holds only the frames and
stacks its samples use, one sample per distinct (stack, labels), in first-seen order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple,
                    Union)

from ..model import labels as L
from ..model import Frame, LabelSet, Profile, ProfileBuilder, Sample, ValueType
from ..model.requests import RequestTable

#: Label marking which side of a diff a sample comes from (pprof's ``pprof::base``).
DIFF_LABEL = "mcpprof.diff"
DIFF_BASE = "base"
DIFF_NEW = "new"

#: Metadata lists of folders that :class:`~mcpprof.analyse.paths.PathView` reads; combined
#: profiles keep their union so paths still shorten and classify.
PATH_KEYS = ("sys_path", "stdlib_dirs", "site_dirs")

#: Metadata counters (the sampler's) that add up when profiles are combined.
COUNTER_KEYS = ("samples", "ticks", "errors", "missed_ticks", "overflow_samples", "overflow",
                "process_cpu_ns", "startup_cpu_ns")

ValueSelector = Union[ValueType, str, None]


# -- rebuilding ------------------------------------------------------------------------------

def _rebuild(profile: Profile, samples: Iterable[Tuple[int, Sequence[int], LabelSet]]) -> ProfileBuilder:
    """A builder holding ``samples`` (old stack id, values, canonical labels) of ``profile``."""
    builder = ProfileBuilder(profile.sample_types)
    _add_to(builder, profile, samples, {})
    return builder


def _drop_zero(profile: Profile) -> Profile:
    """``profile`` (a fresh one, owned by the caller) without samples whose values are all zero."""
    if all(any(s.values) for s in profile.samples):
        return profile
    out = _rebuild(profile, ((s.stack, s.values, s.labels) for s in profile.samples if any(s.values))).build()
    out.metadata, out.extras, out.requests = profile.metadata, profile.extras, profile.requests
    return out


def _add_to(builder: ProfileBuilder, profile: Profile,
            samples: Iterable[Tuple[int, Sequence[int], LabelSet]], stack_map: Dict[int, int]) -> None:
    for old_stack, values, labels in samples:
        sid = stack_map.get(old_stack)
        if sid is None:
            sid = stack_map[old_stack] = builder.stack_id(
                [builder.frame_id(f) for f in profile.stack_frames(old_stack)])
        builder.add_stack(sid, values, labels)


_COPY: Any = object()


def _finish(builder: ProfileBuilder, source: Profile, requests: Any = _COPY) -> Profile:
    """The built profile with copies of ``source``'s metadata, extras and (unless given)
    request table, so the result never shares mutable state with its input."""
    out = builder.build()
    out.metadata = copy.deepcopy(source.metadata)
    out.extras = copy.deepcopy(source.extras)
    out.requests = copy.deepcopy(source.requests) if requests is _COPY else requests
    return out


def _with_label(labels: LabelSet, key: str, value: str, override: bool = True) -> LabelSet:
    """``labels`` with ``key`` set to ``value`` (kept as is when present and not ``override``)."""
    present = any(k == key for k, _ in labels)
    if present and not override:
        return labels
    return tuple(sorted([(k, v) for k, v in labels if k != key] + [(key, value)]))


# -- filtering and grouping ------------------------------------------------------------------

def _request_labels(method: str, target: str) -> Dict[str, str]:
    """The labels samples of a RequestTable key carry (method and, if any, its target key)."""
    out = {L.METHOD: method}
    if target:
        if method == "tools/call":
            out[L.TOOL] = target
        elif method == "prompts/get":
            out[L.PROMPT] = target
        elif method.startswith("resources/"):
            out[L.RESOURCE_URI] = target
        else:  # unknown method with a target: any target key names it the same way
            out[L.TARGET_KEYS[0]] = target
    return out


_REQUEST_KEYS = frozenset((L.METHOD,) + L.TARGET_KEYS)


def _filter_requests(table: Optional[RequestTable],
                     keep: Callable[[Dict[str, str]], bool]) -> Optional[RequestTable]:
    if table is None:
        return None
    return RequestTable({key: copy.deepcopy(st) for key, st in table.stats.items()
                         if keep(_request_labels(*key))})


def filter_samples(profile: Profile, predicate: Optional[Callable[[Sample], bool]] = None, *,
                   labels: Optional[Mapping[str, str]] = None) -> Profile:
    """Keep the samples for which ``predicate(sample)`` is true and that carry every label in
    ``labels`` with exactly that value (``""`` matches samples without the key, as in
    :func:`group_by`). Frames and stacks are compacted to those still used.

    The request table follows the label filter: rows whose method and target contradict a
    request label in ``labels`` (``mcp.method.name``, ``gen_ai.tool.name``, ...) are dropped;
    other label keys (threads, pids) cannot be told from the table and leave it whole.
    """
    wanted = dict(labels or {})

    def keep(s: Sample) -> bool:
        if any((s.label(k) or "") != v for k, v in wanted.items()):
            return False
        return predicate is None or bool(predicate(s))

    builder = _rebuild(profile, ((s.stack, s.values, s.labels) for s in profile.samples if keep(s)))
    req_filter = {k: v for k, v in wanted.items() if k in _REQUEST_KEYS}
    requests = _filter_requests(
        profile.requests, lambda row: all(row.get(k, "") == v for k, v in req_filter.items()))
    return _finish(builder, profile, requests)


def group_by(profile: Profile, key: str) -> Dict[str, Profile]:
    """One profile per value of label ``key``; samples without it go under ``""``.

    Groups are returned sorted by value. When ``key`` describes requests (method or target
    keys) each group keeps the request-table rows of its value; for other keys latency cannot be
    split, so groups carry no request table.
    """
    parts: Dict[str, List[Sample]] = {}
    for s in profile.samples:
        parts.setdefault(s.label(key, "") or "", []).append(s)
    out: Dict[str, Profile] = {}
    for value in sorted(parts):
        builder = _rebuild(profile, ((s.stack, s.values, s.labels) for s in parts[value]))
        requests = None
        if key in _REQUEST_KEYS:
            requests = _filter_requests(profile.requests,
                                        lambda row, v=value: row.get(key, "") == v)
        out[value] = _finish(builder, profile, requests)
    return out


def group_by_request(profile: Profile) -> Dict[str, Profile]:
    """One profile per request name (``tools/call echo``, ``initialize``, and
    :data:`~mcpprof.model.labels.OUTSIDE_REQUESTS` for unlabelled work), each with its own
    request-table rows. Requests in the table that were never sampled get an empty profile."""
    parts: Dict[str, List[Sample]] = {}
    for s in profile.samples:
        parts.setdefault(L.request_name(dict(s.labels)), []).append(s)
    rows: Dict[str, RequestTable] = {}
    if profile.requests is not None:
        for key, st in profile.requests.stats.items():
            name = L.request_name(_request_labels(*key))
            rows.setdefault(name, RequestTable()).stats[key] = copy.deepcopy(st)
            parts.setdefault(name, [])
    out: Dict[str, Profile] = {}
    for name in sorted(parts):
        builder = _rebuild(profile, ((s.stack, s.values, s.labels) for s in parts[name]))
        requests = rows.get(name, RequestTable()) if profile.requests is not None else None
        out[name] = _finish(builder, profile, requests)
    return out


# -- per-function statistics -----------------------------------------------------------------

@dataclass(frozen=True)
class FunctionStat:
    """Self and total value of one function (identity: function and file; lines merged).

    ``self_value`` counts samples where the function is the leaf; ``total_value`` samples where
    it is anywhere on the stack, once per stack even when it recurses. ``line`` is the line
    with the most self value (the first line seen when it has none), for display."""

    function: str
    file: str
    line: int
    self_value: int
    total_value: int

    @property
    def frame(self) -> Frame:
        return Frame(self.function, self.file, self.line)


def function_stats(profile: Profile, value_type: ValueSelector = None) -> List[FunctionStat]:
    """Per-function self and total of one value column (default: :meth:`Profile.default_type`),
    sorted by self value descending, then total descending, then function and file."""
    idx = profile.value_index(value_type or profile.default_type())
    per_stack: Dict[int, int] = {}
    for s in profile.samples:
        per_stack[s.stack] = per_stack.get(s.stack, 0) + s.values[idx]
    self_v: Dict[Tuple[str, str], int] = {}
    total_v: Dict[Tuple[str, str], int] = {}
    line_self: Dict[Tuple[str, str, int], int] = {}
    first_line: Dict[Tuple[str, str], int] = {}
    for sid, value in per_stack.items():
        frames = profile.stack_frames(sid)
        if not frames:
            continue
        seen = set()
        for f in frames:
            key = (f.function, f.file)
            first_line.setdefault(key, f.line)
            if key not in seen:
                seen.add(key)
                total_v[key] = total_v.get(key, 0) + value
        leaf = frames[-1]
        key = (leaf.function, leaf.file)
        self_v[key] = self_v.get(key, 0) + value
        lk = (leaf.function, leaf.file, leaf.line)
        line_self[lk] = line_self.get(lk, 0) + value
    best_line: Dict[Tuple[str, str], Tuple[int, int]] = {}
    for (func, file, line), value in sorted(line_self.items()):
        cur = best_line.get((func, file))
        if cur is None or value > cur[0]:
            best_line[(func, file)] = (value, line)
    stats = [FunctionStat(func, file, best_line.get((func, file), (0, first_line[(func, file)]))[1],
                          self_v.get((func, file), 0), total)
             for (func, file), total in total_v.items()]
    stats.sort(key=lambda st: (-st.self_value, -st.total_value, st.function, st.file))
    return stats


# -- reshaping -------------------------------------------------------------------------------

def compact(profile: Profile) -> Profile:
    """Same profile with unused or duplicate frames and stacks removed, samples of equal
    (stack, labels) summed, and samples whose values are all zero dropped."""
    builder = _rebuild(profile, ((s.stack, s.values, s.labels) for s in profile.samples))
    return _drop_zero(_finish(builder, profile))


def scale(profile: Profile, factor: float) -> Profile:
    """Every sample value multiplied by ``factor`` and rounded to an integer; samples that
    become all zero are dropped (as pprof's ``ScaleN``). Request latencies are left alone."""
    builder = _rebuild(profile, ((s.stack, [round(v * factor) for v in s.values], s.labels)
                                 for s in profile.samples))
    return _drop_zero(_finish(builder, profile))


def drop_labels(profile: Profile, keys: Iterable[str]) -> Profile:
    """Samples with the label ``keys`` removed, re-aggregated by (stack, remaining labels)."""
    drop = frozenset([keys] if isinstance(keys, str) else keys)
    builder = _rebuild(profile, ((s.stack, s.values, tuple(kv for kv in s.labels if kv[0] not in drop))
                                 for s in profile.samples))
    return _finish(builder, profile)


# -- combining -------------------------------------------------------------------------------

def _column_map(target: Sequence[ValueType], profile: Profile, what: str) -> List[int]:
    """For each column of ``target``, the index of that column in ``profile``."""
    if sorted(map(str, target)) != sorted(map(str, profile.sample_types)):
        mine = ", ".join(map(str, target))
        theirs = ", ".join(map(str, profile.sample_types))
        raise ValueError(f"cannot {what} profiles with different sample types: [{mine}] vs [{theirs}]")
    return [profile.sample_types.index(vt) for vt in target]


def _combined_metadata(profiles: Sequence[Profile], sum_counters: bool = True) -> Dict[str, Any]:
    """Keys equal in every source; path lists united; ``complete`` only if all are;
    counters summed (when ``sum_counters``); ``sources`` lists each source's metadata (without
    path lists)."""
    metas = [p.metadata for p in profiles]
    out: Dict[str, Any] = {}
    if metas:
        for key, value in metas[0].items():
            if key in PATH_KEYS or key in COUNTER_KEYS or key in ("complete", "sources"):
                continue
            if all(key in m and m[key] == value for m in metas[1:]):
                out[key] = copy.deepcopy(value)
    for key in PATH_KEYS:
        union: List[Any] = []
        for m in metas:
            for item in m.get(key) or []:
                if item not in union:
                    union.append(item)
        if union:
            out[key] = union
    if any("complete" in m for m in metas):
        out["complete"] = all(bool(m.get("complete", True)) for m in metas)
    for key in COUNTER_KEYS if sum_counters else ():
        counts = [m[key] for m in metas if type(m.get(key)) is int]
        if counts:
            out[key] = sum(counts)
    out["sources"] = [{k: copy.deepcopy(v) for k, v in m.items() if k not in PATH_KEYS} for m in metas]
    return out


def merge(profiles: Sequence[Profile], *, label_pid: bool = True) -> Profile:
    """One profile holding the samples of all ``profiles``.

    All must have the same sample types (in any order; the first profile's order is kept),
    else :class:`ValueError`. With ``label_pid``, samples get a ``process.pid`` label from their
    profile's ``metadata["pid"]`` (a pid label they already carry wins). Request tables are
    merged; extras are kept per source under ``extras["sources"]``; metadata is described in
    :func:`_combined_metadata`.
    """
    profiles = list(profiles)
    if not profiles:
        raise ValueError("merge needs at least one profile")
    types = list(profiles[0].sample_types)
    builder = ProfileBuilder(types)
    requests: Optional[RequestTable] = None
    for p in profiles:
        cols = _column_map(types, p, "merge")
        pid = p.metadata.get("pid")

        def samples(p: Profile = p, cols: List[int] = cols, pid: Any = pid
                    ) -> Iterable[Tuple[int, List[int], LabelSet]]:
            for s in p.samples:
                labels = s.labels
                if label_pid and pid is not None and pid != "":
                    labels = _with_label(labels, L.PROCESS_PID, str(pid), override=False)
                yield s.stack, [s.values[c] for c in cols], labels

        _add_to(builder, p, samples(), {})
        if p.requests is not None:
            if requests is None:
                requests = RequestTable()
            requests.merge(p.requests)  # copies what it keeps; the source is not changed
    out = builder.build()
    out.metadata = _combined_metadata(profiles)
    out.requests = requests
    extras = [copy.deepcopy(p.extras) for p in profiles]
    out.extras = {"sources": extras} if any(extras) else {}
    return out


def diff(base: Profile, new: Profile) -> Profile:
    """``new`` minus ``base`` as one profile: base samples negated and labelled
    ``mcpprof.diff=base``, new samples labelled ``mcpprof.diff=new`` (pprof's ``pprof::base``).

    Totals of the result are new − base for every column; a view that ignores the label shows
    the net change per stack, one that groups by it shows both sides. Sample types must match
    (:class:`ValueError` otherwise). ``metadata["diff"]`` holds both sides' metadata; request
    tables are kept in ``extras["diff_requests"]`` as ``{"base": [...], "new": [...]}`` rows.
    """
    types = list(new.sample_types)
    builder = ProfileBuilder(types)
    for p, side, sign in ((base, DIFF_BASE, -1), (new, DIFF_NEW, 1)):
        cols = _column_map(types, p, "diff")
        _add_to(builder, p, ((s.stack, [sign * s.values[c] for c in cols],
                              _with_label(s.labels, DIFF_LABEL, side)) for s in p.samples), {})
    out = builder.build()
    meta = _combined_metadata([base, new], sum_counters=False)
    del meta["sources"]
    meta["diff"] = {DIFF_BASE: copy.deepcopy(base.metadata), DIFF_NEW: copy.deepcopy(new.metadata)}
    out.metadata = meta
    out.requests = None
    if base.requests is not None or new.requests is not None:
        out.extras = {"diff_requests": {
            DIFF_BASE: base.requests.to_list() if base.requests is not None else None,
            DIFF_NEW: new.requests.to_list() if new.requests is not None else None}}
    return out


__all__ = ["DIFF_LABEL", "DIFF_BASE", "DIFF_NEW", "FunctionStat", "filter_samples", "group_by",
           "group_by_request", "function_stats", "compact", "scale", "drop_labels", "merge", "diff"]
