"""speedscope exporter: golden output, profile layout, and the rules speedscope's importer needs
(the schema check itself is in tests/consumers, against the npm package's shipped schema)."""

from __future__ import annotations

import json

import pytest

from mcpprof import __version__
from mcpprof.errors import UsageError
from mcpprof.export import speedscope
from mcpprof.model import ALLOC_OBJECTS, ALLOC_SPACE, CPU, SAMPLES, Frame, ProfileBuilder
from tests.consumers.checks import find_nulls, speedscope_semantic_errors


def doc_of(profile, **options):
    out = speedscope.render(profile, **options)
    assert isinstance(out, bytes)
    return json.loads(out)


def test_golden(mcp_profile, golden):
    out = speedscope.render(mcp_profile)
    golden("mcp.speedscope.json", out.replace(f"mcpprof@{__version__}".encode(), b"mcpprof@<version>"))
    assert speedscope_semantic_errors(json.loads(out)) == []


def test_file_level_keys(mcp_profile):
    doc = doc_of(mcp_profile)
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert doc["exporter"] == f"mcpprof@{__version__}"
    assert doc["activeProfileIndex"] == 0
    assert doc["name"] == "mcpprof sampler profile"
    assert doc_of(mcp_profile, title="nightly")["name"] == "nightly"
    assert find_nulls(doc) == []


def test_profile_order_and_units(mcp_profile):
    doc = doc_of(mcp_profile)
    names = [p["name"] for p in doc["profiles"]]
    assert names == [
        "CPU \u2014 all requests", "Wall \u2014 all requests",
        "CPU \u2014 (transport & dispatch)", "Wall \u2014 (transport & dispatch)",
        "CPU \u2014 tools/call echo", "Wall \u2014 tools/call echo",
        "CPU \u2014 tools/call slow_report", "Wall \u2014 tools/call slow_report",
        "CPU \u2014 tools/list", "Wall \u2014 tools/list",
        "CPU \u2014 thread MainThread", "CPU \u2014 thread worker-1",
    ]
    assert {p["unit"] for p in doc["profiles"]} == {"nanoseconds"}
    assert all(p["type"] == "sampled" and p["startValue"] == 0 for p in doc["profiles"])


def test_weights_add_up(mcp_profile):
    doc = doc_of(mcp_profile)
    by_name = {p["name"]: p for p in doc["profiles"]}
    cpu_all = by_name["CPU \u2014 all requests"]
    assert cpu_all["endValue"] == sum(cpu_all["weights"]) == mcp_profile.total("cpu")
    assert by_name["Wall \u2014 all requests"]["endValue"] == mcp_profile.total("wall")
    per_request = [p for n, p in by_name.items()
                   if n.startswith("CPU") and "thread" not in n and not n.endswith("all requests")]
    assert sum(p["endValue"] for p in per_request) == mcp_profile.total("cpu")
    threads = [p for n, p in by_name.items() if "thread" in n]
    assert sum(p["endValue"] for p in threads) == mcp_profile.total("cpu")


def test_aggregated_one_entry_per_stack_sorted_by_name(mcp_profile):
    doc = doc_of(mcp_profile)
    frames = doc["shared"]["frames"]
    for p in doc["profiles"]:
        stacks = [tuple(s) for s in p["samples"]]
        assert len(stacks) == len(set(stacks))
        named = [[frames[i]["name"] for i in s] for s in stacks]
        assert named == sorted(named)


def test_frames(mcp_profile):
    doc = doc_of(mcp_profile)
    frames = doc["shared"]["frames"]
    assert {"name": "echo", "file": "server.py", "line": 20} in frames
    assert {"name": "dumps", "file": "json/__init__.py", "line": 231} in frames
    assert len({json.dumps(f, sort_keys=True) for f in frames}) == len(frames)
    text = json.dumps(doc)
    assert "/home/alice" not in text and "/opt/venv" not in text
    full = doc_of(mcp_profile, full_paths=True)
    assert {"name": "echo", "file": "/home/alice/srv/server.py", "line": 20} in full["shared"]["frames"]


def test_optional_frame_keys_omitted_not_null():
    b = ProfileBuilder([SAMPLES])
    b.add([Frame("main"), Frame("", "x.py", 0), Frame("f", "x.py", 3)], [2])
    doc = doc_of(b.build())
    assert doc["shared"]["frames"] == [{"name": "[unknown]", "file": "x.py"},
                                       {"name": "f", "file": "x.py", "line": 3}, {"name": "main"}]
    assert find_nulls(doc) == []
    assert doc["profiles"][0]["unit"] == "none"
    assert doc["profiles"][0]["name"] == "Samples \u2014 all requests"


def test_single_request_and_thread_get_no_breakdown():
    b = ProfileBuilder([SAMPLES, CPU])
    b.add([Frame("main")], [1, 10], {"thread.name": "MainThread"})
    doc = doc_of(b.build())
    # samples/count is left out when a time column exists
    assert [p["name"] for p in doc["profiles"]] == ["CPU \u2014 all requests"]


def test_memory_profile_units_and_value_type_order():
    b = ProfileBuilder([ALLOC_OBJECTS, ALLOC_SPACE])
    b.add([Frame("main"), Frame("alloc")], [3, 4096], {"mcp.method.name": "tools/call", "gen_ai.tool.name": "a"})
    b.add([Frame("main")], [1, 100])
    p = b.build()
    doc = doc_of(p)
    assert [(x["name"], x["unit"]) for x in doc["profiles"]] == [
        ("Allocated bytes \u2014 all requests", "bytes"),
        ("Allocated objects \u2014 all requests", "none"),
        ("Allocated bytes \u2014 (transport & dispatch)", "bytes"),
        ("Allocated bytes \u2014 tools/call a", "bytes"),
    ]
    first = doc_of(p, value_type="alloc_objects")["profiles"][0]
    assert first["name"] == "Allocated objects \u2014 all requests"
    with pytest.raises(UsageError):
        speedscope.render(p, value_type="cpu")


def test_nonpositive_weights_and_empty_profiles_skipped():
    b = ProfileBuilder([SAMPLES, CPU])
    b.add([Frame("a")], [3, -1], {"diff": "base"})
    b.add([Frame("a")], [2, 3], {"diff": "new"})
    b.add([Frame("b")], [1, -4])
    b.add([Frame("c")], [1, 0], {"mcp.method.name": "tools/call", "gen_ai.tool.name": "zero"})
    doc = doc_of(b.build())
    assert speedscope_semantic_errors(doc) == []
    cpu = doc["profiles"][0]
    assert cpu["name"] == "CPU \u2014 all requests"
    assert cpu["weights"] == [2] and cpu["endValue"] == 2  # a: -1 + 3; b: -4 left out
    # tools/call zero has no CPU: its profile is skipped, not written empty
    assert [p["name"] for p in doc["profiles"]] == ["CPU — all requests", "CPU — (transport & dispatch)"]


def test_empty_profile_still_loadable():
    doc = doc_of(ProfileBuilder([SAMPLES, CPU]).build())
    assert [p["name"] for p in doc["profiles"]] == ["CPU \u2014 all requests"]
    assert doc["profiles"][0]["samples"] == [] and doc["profiles"][0]["endValue"] == 0
    assert speedscope_semantic_errors(doc) == []


def test_hostile_names_are_plain_json_strings(mcp_profile):
    b = ProfileBuilder([SAMPLES])
    evil = "<script>alert(1)</script>"
    b.add([Frame(evil, "x.py", 1)], [1], {"mcp.method.name": "tools/call", "gen_ai.tool.name": evil})
    b.add([Frame("quote\"back\\slash\u2028", "x.py", 2)], [1])
    doc = doc_of(b.build())
    assert {"name": evil, "file": "x.py", "line": 1} in doc["shared"]["frames"]
    assert f"Samples \u2014 tools/call {evil}" in [p["name"] for p in doc["profiles"]]
    assert speedscope_semantic_errors(doc) == []


def test_sample_without_frames_is_unknown():
    b = ProfileBuilder([SAMPLES])
    b.add([], [2])
    b.add([Frame("[unknown]")], [1])
    b.add([Frame("main")], [3])
    doc = doc_of(b.build())
    assert doc["shared"]["frames"] == [{"name": "[unknown]"}, {"name": "main"}]
    assert doc["profiles"][0]["samples"] == [[0], [1]] and doc["profiles"][0]["weights"] == [3, 3]
    assert speedscope_semantic_errors(doc) == []
