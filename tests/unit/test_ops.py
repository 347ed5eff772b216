"""Pure profile operations: exact numbers on small hand-built profiles."""

from __future__ import annotations

import copy

import pytest

from mcpprof.analyse import ops
from mcpprof.model import CPU, SAMPLES, WALL, Frame, Profile, ProfileBuilder, RequestTable, Sample
from mcpprof.model import labels as L
from mcpprof.model.folded import profile_from_folded

A_LABELS = {L.METHOD: "tools/call", L.TOOL: "a"}
B_LABELS = {L.METHOD: "tools/call", L.TOOL: "b"}
R_LABELS = {L.METHOD: "resources/read", L.RESOURCE_URI: "ex://cfg"}


def f(name: str, line: int = 1, file: str = "/srv/app.py") -> Frame:
    return Frame(name, file, line)


def tagged() -> Profile:
    """Two tools, a resource and unlabelled dispatch work; values are (samples, cpu ns)."""
    b = ProfileBuilder([SAMPLES, CPU], {"collector": "sampler", "pid": 101, "sys_path": ["/srv"]})
    b.add([f("main"), f("tool_a"), f("work", 5)], [3, 30], A_LABELS)
    b.add([f("main"), f("tool_a")], [1, 10], A_LABELS)
    b.add([f("main"), f("tool_b")], [2, 20], B_LABELS)
    b.add([f("main"), f("read_cfg")], [1, 5], R_LABELS)
    b.add([f("main"), f("dispatch")], [4, 40])
    p = b.build()
    p.requests = RequestTable()
    p.requests.record("tools/call", "a", 1_000)
    p.requests.record("tools/call", "a", 2_000)
    p.requests.record("tools/call", "b", 5_000, error="E")
    p.requests.record("resources/read", "ex://cfg", 700)
    p.requests.record("tools/call", "never_sampled", 50)
    p.extras = {"gc": [1]}
    return p


def folded(profile: Profile, column: int = 0) -> dict:
    """{"main;tool_a": value} view of one column, summed over labels."""
    out: dict = {}
    for s, frames in profile.iter_stacks():
        key = ";".join(fr.function for fr in frames)
        out[key] = out.get(key, 0) + s.values[column]
    return out


def no_unused_frames_or_stacks(p: Profile) -> bool:
    used_stacks = {s.stack for s in p.samples}
    used_frames = {i for st in p.stacks for i in st}
    return used_stacks == set(range(len(p.stacks))) and used_frames == set(range(len(p.frames)))


# -- filter ----------------------------------------------------------------------------------

def test_filter_by_labels_keeps_matching_samples_and_compacts():
    p = tagged()
    before = copy.deepcopy(p)
    q = ops.filter_samples(p, labels={L.TOOL: "a"})
    assert folded(q, 1) == {"main;tool_a;work": 30, "main;tool_a": 10}
    assert [fr.function for fr in q.frames] == ["main", "tool_a", "work"]
    assert no_unused_frames_or_stacks(q)
    assert sorted(q.requests.stats) == [("tools/call", "a")]
    assert q.metadata == p.metadata and q.extras == p.extras
    assert p == before  # pure


def test_filter_by_method_and_predicate():
    p = tagged()
    calls = ops.filter_samples(p, labels={L.METHOD: "tools/call"})
    assert calls.total(CPU) == 60
    assert sorted(calls.requests.stats) == [("tools/call", "a"), ("tools/call", "b"),
                                            ("tools/call", "never_sampled")]
    heavy = ops.filter_samples(p, lambda s: s.values[1] >= 20)
    assert folded(heavy, 1) == {"main;tool_a;work": 30, "main;tool_b": 20, "main;dispatch": 40}
    assert len(heavy.requests.stats) == 4  # a predicate says nothing about requests
    both = ops.filter_samples(p, lambda s: s.values[1] >= 20, labels={L.TOOL: "a"})
    assert folded(both, 1) == {"main;tool_a;work": 30}
    assert ops.filter_samples(p, labels={L.TOOL: "zzz"}).samples == []
    untooled = ops.filter_samples(p, labels={L.TOOL: ""})  # "" selects samples without the key
    assert folded(untooled, 1) == {"main;read_cfg": 5, "main;dispatch": 40}
    assert sorted(untooled.requests.stats) == [("resources/read", "ex://cfg")]


# -- group_by --------------------------------------------------------------------------------

def test_group_by_label_puts_unlabelled_under_empty_string():
    groups = ops.group_by(tagged(), L.TOOL)
    assert list(groups) == ["", "a", "b"]
    assert {k: g.total(CPU) for k, g in groups.items()} == {"": 45, "a": 40, "b": 20}
    assert sorted(groups["a"].requests.stats) == [("tools/call", "a")]
    assert sorted(groups[""].requests.stats) == [("resources/read", "ex://cfg")]
    assert all(no_unused_frames_or_stacks(g) for g in groups.values())


def test_group_by_a_non_request_key_drops_the_request_table():
    p = ops.merge([tagged()])
    groups = ops.group_by(p, L.PROCESS_PID)
    assert list(groups) == ["101"] and groups["101"].requests is None


def test_group_by_request_names_rows_like_the_summary():
    groups = ops.group_by_request(tagged())
    assert list(groups) == [L.OUTSIDE_REQUESTS, "resources/read ex://cfg", "tools/call a",
                            "tools/call b", "tools/call never_sampled"]
    assert {k: g.total(CPU) for k, g in groups.items()} == {
        L.OUTSIDE_REQUESTS: 40, "resources/read ex://cfg": 5, "tools/call a": 40,
        "tools/call b": 20, "tools/call never_sampled": 0}
    assert groups["tools/call a"].requests.stats[("tools/call", "a")].count == 2
    assert list(groups[L.OUTSIDE_REQUESTS].requests.stats) == []


# -- function_stats --------------------------------------------------------------------------

def test_function_stats_self_and_total():
    p = profile_from_folded("main;a;b 3\nmain;a 2\nmain;c;b 5\n")
    stats = {s.function: (s.self_value, s.total_value) for s in ops.function_stats(p)}
    assert stats == {"b": (8, 8), "a": (2, 5), "main": (0, 10), "c": (0, 5)}
    assert [s.function for s in ops.function_stats(p)] == ["b", "a", "main", "c"]


def test_function_stats_counts_recursion_once_per_stack():
    p = profile_from_folded("main;fib;fib;fib 4\nmain;fib;fib;helper;fib 6\nmain 1\n")
    stats = {s.function: s for s in ops.function_stats(p)}
    assert (stats["fib"].self_value, stats["fib"].total_value) == (10, 10)
    assert (stats["helper"].self_value, stats["helper"].total_value) == (0, 6)
    assert (stats["main"].self_value, stats["main"].total_value) == (1, 11)


def test_function_stats_merges_lines_and_reports_the_hottest_line():
    b = ProfileBuilder([SAMPLES, CPU])
    b.add([f("main"), f("tool", 10)], [1, 10])
    b.add([f("main"), f("tool", 12)], [1, 30])
    b.add([f("main"), f("tool", 12), f("tool", 14)], [1, 5])  # recursion through another line
    b.add([f("main"), Frame("tool", "/other.py", 12)], [1, 7])  # same name, other file
    stats = ops.function_stats(b.build())
    top = stats[0]
    assert (top.function, top.file, top.line, top.self_value, top.total_value) == (
        "tool", "/srv/app.py", 12, 45, 45)
    assert top.frame == Frame("tool", "/srv/app.py", 12)
    assert [(s.file, s.self_value) for s in stats if s.function == "tool"] == [
        ("/srv/app.py", 45), ("/other.py", 7)]
    by_samples = ops.function_stats(b.build(), "samples")
    assert (by_samples[0].self_value, by_samples[0].line) == (3, 10)  # a tie goes to the first line


# -- compact / scale / drop_labels -----------------------------------------------------------

def test_compact_removes_unused_and_duplicate_frames_and_zero_samples():
    frames = [f("main"), f("dead"), f("main"), f("x")]
    p = Profile([SAMPLES], frames=frames, stacks=[(0, 3), (2, 3), (1,), (0,)],
                samples=[Sample(0, (2,)), Sample(1, (3,)), Sample(3, (0,))])
    q = ops.compact(p)
    assert q.frames == [f("main"), f("x")]
    assert q.stacks == [(0, 1)]
    assert [(s.stack, s.values) for s in q.samples] == [(0, (5,))]


def test_scale_rounds_and_drops_samples_that_become_zero():
    p = profile_from_folded("a;b 10\na;c 1\n")
    q = ops.scale(p, 0.25)
    assert folded(q) == {"a;b": 2}  # 2.5 rounds to even, 0.25 rounds to 0 and goes
    assert no_unused_frames_or_stacks(q)
    assert folded(ops.scale(p, 3)) == {"a;b": 30, "a;c": 3}


def test_drop_labels_reaggregates():
    p = tagged()
    q = ops.drop_labels(p, [L.TOOL, L.RESOURCE_URI])
    by_labels = {s.labels: s.values for s in q.samples if s.stack == q.samples[0].stack}
    assert by_labels == {((L.METHOD, "tools/call"),): (3, 30)}
    assert {dict(s.labels).get(L.METHOD, "") for s in q.samples} == {"tools/call", "resources/read", ""}
    assert ops.drop_labels(p, L.METHOD).label_values(L.METHOD) == []
    everything = ops.drop_labels(p, [L.METHOD, L.TOOL, L.RESOURCE_URI])
    assert folded(everything, 1) == folded(p, 1)
    assert len(everything.samples) == len(everything.stacks) == 5


# -- merge -----------------------------------------------------------------------------------

def test_merge_labels_pids_merges_requests_and_lists_sources():
    a = tagged()
    b = tagged()
    a.metadata.update(complete=True, overflow_samples=2, ticks=10)
    b.metadata = {"collector": "sampler", "pid": 202, "sys_path": ["/srv", "/opt"], "complete": False,
                  "overflow_samples": 3}
    m = ops.merge([a, b])
    assert m.total(CPU) == 2 * a.total(CPU)
    assert m.label_values(L.PROCESS_PID) == ["101", "202"]
    assert ops.group_by(m, L.PROCESS_PID)["202"].total(CPU) == b.total(CPU)
    assert m.frames == a.frames  # re-interned: the same frames, once
    assert m.requests.stats[("tools/call", "a")].count == 4
    assert m.requests.total_count == 10
    assert a.requests.total_count == 5  # sources unchanged
    assert m.metadata["collector"] == "sampler"
    assert "pid" not in m.metadata
    assert m.metadata["sys_path"] == ["/srv", "/opt"]
    assert m.metadata["complete"] is False
    assert (m.metadata["overflow_samples"], m.metadata["ticks"]) == (5, 10)
    assert [s["pid"] for s in m.metadata["sources"]] == [101, 202]
    assert m.extras == {"sources": [{"gc": [1]}, {"gc": [1]}]}


def test_merge_without_pid_labels_aggregates_equal_stacks():
    m = ops.merge([tagged(), tagged()], label_pid=False)
    assert m.label_values(L.PROCESS_PID) == []
    assert len(m.samples) == len(tagged().samples)
    assert m.samples[0].values == (6, 60)


def test_merge_keeps_existing_pid_labels_and_reorders_columns():
    b = ProfileBuilder([CPU, SAMPLES], {"pid": 7})
    b.add([f("main")], [100, 1], {L.PROCESS_PID: "9"})
    m = ops.merge([ProfileBuilder([SAMPLES, CPU]).build(), b.build()])
    assert m.sample_types == [SAMPLES, CPU]
    assert [(s.values, s.labels) for s in m.samples] == [((1, 100), ((L.PROCESS_PID, "9"),))]


def test_merge_refuses_incompatible_sample_types():
    with pytest.raises(ValueError, match=r"cannot merge profiles with different sample types: "
                                         r"\[samples/count, cpu/nanoseconds\] vs \[wall/nanoseconds\]"):
        ops.merge([tagged(), profile_from_folded("a 1", WALL)])
    with pytest.raises(ValueError, match="at least one"):
        ops.merge([])


# -- diff ------------------------------------------------------------------------------------

def test_diff_totals_are_new_minus_base_and_sides_are_labelled():
    base = profile_from_folded("main;a 10\nmain;b 5\n", CPU, metadata={"pid": 1, "samples": 15})
    new = profile_from_folded("main;a 4\nmain;b 5\nmain;c 7\n", CPU, metadata={"pid": 2, "samples": 16})
    d = ops.diff(base, new)
    assert d.total(CPU) == new.total(CPU) - base.total(CPU) == 1
    assert d.label_values(ops.DIFF_LABEL) == ["base", "new"]
    assert folded(ops.drop_labels(d, [ops.DIFF_LABEL])) == {"main;a": -6, "main;b": 0, "main;c": 7}
    sides = ops.group_by(d, ops.DIFF_LABEL)
    assert folded(sides["base"]) == {"main;a": -10, "main;b": -5}
    assert folded(sides["new"]) == {"main;a": 4, "main;b": 5, "main;c": 7}
    assert d.metadata == {"diff": {"base": {"pid": 1, "samples": 15}, "new": {"pid": 2, "samples": 16}}}
    # one frame table for both sides
    assert sorted(fr.function for fr in d.frames) == ["a", "b", "c", "main"]


def test_diff_keeps_labels_and_request_tables_and_checks_types():
    base, new = tagged(), tagged()
    d = ops.diff(base, new)
    assert d.total(CPU) == 0
    assert ops.filter_samples(d, labels={L.TOOL: "a", ops.DIFF_LABEL: "new"}).total(CPU) == 40
    assert d.requests is None
    assert d.extras["diff_requests"]["new"] == new.requests.to_list()
    with pytest.raises(ValueError, match="cannot diff"):
        ops.diff(base, profile_from_folded("a 1", CPU))
