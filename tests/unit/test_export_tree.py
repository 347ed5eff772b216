"""The call tree the HTML flame graph draws: structure, exact totals under pruning, and agreement
with a naive trie on random profiles."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from mcpprof.errors import UsageError
from mcpprof.export.tree import (KIND_LIBRARY, KIND_PRUNED, KIND_REQUEST, KIND_ROOT, KIND_USER,
                                 PRUNED_NAME, build_call_tree, type_label)
from mcpprof.model import CPU, SAMPLES, WALL, Frame, ProfileBuilder, ValueType
from mcpprof.model import labels as L


def test_structure(mcp_profile):
    tree = build_call_tree(mcp_profile)
    assert tree.types == [SAMPLES, CPU, WALL]
    assert tree.name(0) == "all" and tree.kind(0) == KIND_ROOT
    assert tree.totals == [mcp_profile.total(t) for t in tree.types]
    requests = [tree.name(c) for c in tree.children(0)]
    assert requests == ["(transport & dispatch)", "tools/call echo", "tools/call slow_report", "tools/list"]
    assert all(tree.kind(c) == KIND_REQUEST for c in tree.children(0))
    cpu = tree.self_values(1)
    assert cpu[("tools/call echo", "main (server.py:88)", "run (mcp/server/lowlevel/server.py:620)",
                "handle (mcp/server/lowlevel/server.py:701)", "echo (server.py:20)")] == 5_000_000
    assert sum(cpu.values()) == mcp_profile.total("cpu")
    kinds = {tree.name(i): tree.kind(i) for i in range(len(tree))}
    assert kinds["echo (server.py:20)"] == KIND_USER
    assert kinds["dumps (json/__init__.py:231)"] == KIND_LIBRARY
    assert kinds["run (mcp/server/lowlevel/server.py:620)"] == KIND_LIBRARY


def test_parents_first_children_sorted_by_name(mcp_profile):
    tree = build_call_tree(mcp_profile)
    assert tree.node_parent[0] == -1
    assert all(0 <= tree.node_parent[i] < i for i in range(1, len(tree)))
    for i in range(len(tree)):
        names = [tree.name(c) for c in tree.children(i)]
        assert names == sorted(names)
        for k in range(len(tree.types)):
            assert sum(tree.node_values[k][c] for c in tree.children(i)) <= tree.node_values[k][i]


def test_without_request_level(mcp_profile):
    tree = build_call_tree(mcp_profile, ["cpu"], request_level=False)
    assert [tree.name(c) for c in tree.children(0)] == ["_bootstrap (threading.py:995)", "main (server.py:88)"]
    assert tree.totals == [mcp_profile.total("cpu")]


def test_pruning_keeps_totals_exact(mcp_profile):
    # list_tools is 1 ms of 15.1 ms CPU (6.6 %) and 1 of 28 samples (3.6 %), 1 of 28.3 ms wall
    tree = build_call_tree(mcp_profile, ["cpu", "samples"], min_fraction=0.07)
    names = [tree.name(i) for i in range(len(tree))]
    assert "tools/list" not in names and PRUNED_NAME in names
    pruned = [i for i in range(len(tree)) if tree.kind(i) == KIND_PRUNED]
    assert all(not tree.children(i) for i in pruned)
    for k in range(2):
        assert sum(tree.self_values(k).values()) == tree.totals[k]
        assert tree.pruned_values[k] == sum(tree.node_values[k][i] for i in pruned)
    # [pruned] comes after its siblings
    for i in range(len(tree)):
        kids = tree.children(i)
        assert all(tree.kind(c) != KIND_PRUNED for c in kids[:-1])
    assert tree.pruned_subtrees == 1 and tree.pruned_values == [1_000_000, 1]  # tools/list


def test_kept_when_big_in_any_type():
    b = ProfileBuilder([CPU, WALL])
    b.add([Frame("main"), Frame("sleepy")], [1, 1000])
    b.add([Frame("main"), Frame("busy")], [1000, 1000])
    tree = build_call_tree(b.build(), request_level=False, min_fraction=0.01)
    assert "sleepy" in tree.names  # 0.1 % of CPU but 50 % of wall


def test_negative_values_netted_then_dropped():
    b = ProfileBuilder([SAMPLES])
    b.add([Frame("a")], [-3], {"side": "base"})
    b.add([Frame("a")], [5], {"side": "new"})
    b.add([Frame("b")], [-2])
    tree = build_call_tree(b.build(), request_level=False)
    assert tree.self_values() == {("a",): 2}


def test_empty_profile():
    tree = build_call_tree(ProfileBuilder([CPU]).build())
    assert len(tree) == 1 and tree.totals == [0] and tree.names == ["all"]


def test_unknown_type(mcp_profile):
    with pytest.raises(UsageError):
        build_call_tree(mcp_profile, ["inuse_space"])


def test_type_labels():
    assert [type_label(t) for t in (CPU, WALL, SAMPLES)] == ["CPU", "Wall", "Samples"]
    assert type_label(ValueType("gc_pause", "nanoseconds")) == "Gc pause"


def _naive(profile, idx, request_level=True):
    out = defaultdict(int)
    for s in profile.samples:
        names = [f.label() for f in profile.stack_frames(s.stack)]
        if request_level:
            names.insert(0, L.request_name(dict(s.labels)))
        out[tuple(names)] += s.values[idx]
    return {k: v for k, v in out.items() if v}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agrees_with_a_naive_trie(seed):
    rng = random.Random(seed)
    funcs = [Frame(f"f{i}", f"m{i % 5}.py", i) for i in range(30)]
    b = ProfileBuilder([SAMPLES, CPU])
    for _ in range(400):
        depth = rng.randint(0, 12)
        stack = [funcs[0]] + [rng.choice(funcs[: 3 + 2 * d]) for d in range(depth)]
        tool = rng.choice([None, "a", "b", "c"])
        labels = {L.METHOD: "tools/call", L.TOOL: tool} if tool else {}
        n = rng.randint(1, 20)
        b.add(stack, [n, n * rng.randint(0, 1000)], labels)
    p = b.build()
    for request_level in (True, False):
        tree = build_call_tree(p, request_level=request_level)
        for k in range(2):
            assert tree.self_values(k) == _naive(p, k, request_level)
        # pruned trees keep every total exactly
        pruned = build_call_tree(p, request_level=request_level, min_fraction=0.01)
        assert len(pruned) < len(tree)
        for k in range(2):
            assert sum(pruned.self_values(k).values()) == p.total(p.sample_types[k])
            assert pruned.node_values[k][0] == tree.node_values[k][0]
