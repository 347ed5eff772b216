"""The data model: builder aggregation, the native file's lossless round trip, and load errors."""

from __future__ import annotations

import gzip
import json

import pytest

from mcpprof.model import (CPU, SAMPLES, WALL, Frame, Profile, ProfileBuilder, RequestTable,
                           ValueType, make_labels)
from mcpprof.model import io
from mcpprof.model import labels as L
from mcpprof.model.folded import parse_frame, profile_from_folded
from mcpprof.model.io import ProfileFileError
from mcpprof.model.requests import RESERVOIR, LatencyStats

MAIN = Frame("main", "/srv/app.py", 1)
TOOL = Frame("tool", "/srv/app.py", 10)
LEAF = Frame("leaf", "/srv/lib.py", 3, "lib")


def rich_profile() -> Profile:
    """Every part of a profile filled in, including odd strings."""
    b = ProfileBuilder([SAMPLES, CPU, WALL], {
        "collector": "sampler", "rate_hz": 100, "pid": 42, "complete": True,
        "sys_path": ["/srv"], "nested": {"a": [1, 2.5, None, "é"]}})
    b.add([MAIN, TOOL, LEAF], [2, 20, 30], {L.METHOD: "tools/call", L.TOOL: "echo"})
    b.add([MAIN, TOOL], [1, 10, 10], {L.METHOD: "tools/call", L.TOOL: "echo"})
    b.add([MAIN, Frame("wëird;name (x)", "/srv/\udcff.py", 7)], [1, 5, 5])
    p = b.build()
    p.requests = RequestTable()
    p.requests.record("tools/call", "echo", 1_000, request_id="1", start_ns=5)
    p.requests.record("tools/call", "echo", 3_000, error="ValueError", request_id="2", start_ns=9)
    p.requests.record("initialize", "", 500)
    p.extras = {"gc": {"pauses_ns": [1, 2, 3]}, "memory": []}
    return p


# -- builder ---------------------------------------------------------------------------------

def test_builder_interns_frames_and_stacks_and_aggregates_by_stack_and_labels():
    b = ProfileBuilder([SAMPLES, CPU])
    b.add([MAIN, TOOL], [1, 10], {L.TOOL: "a"})
    b.add([MAIN, TOOL], [2, 20], {L.TOOL: "a"})
    b.add([MAIN, TOOL], [1, 5], {L.TOOL: "b"})
    b.add([MAIN, LEAF], [1, 1])
    b.add([MAIN, TOOL], [1, 1], {L.TOOL: "a", "empty": ""})  # empty label values are dropped
    p = b.build()
    assert p.frames == [MAIN, TOOL, LEAF]
    assert p.stacks == [(0, 1), (0, 2)]
    assert [(s.stack, s.values, s.labels) for s in p.samples] == [
        (0, (4, 31), ((L.TOOL, "a"),)),
        (0, (1, 5), ((L.TOOL, "b"),)),
        (1, (1, 1), ()),
    ]
    assert p.totals() == {"samples/count": 6, "cpu/nanoseconds": 37}
    assert p.total() == 37  # default type is CPU
    assert p.label_values(L.TOOL) == ["a", "b"]


def test_builder_rejects_wrong_number_of_values():
    b = ProfileBuilder([SAMPLES, CPU])
    with pytest.raises(ValueError, match="expected 2 values, got 1"):
        b.add([MAIN], [1])


def test_make_labels_is_canonical():
    assert make_labels({"b": 1, "a": "x", "c": None, "d": ""}) == (("a", "x"), ("b", "1"))
    assert make_labels(None) == ()


def test_value_index_accepts_type_name_or_full_name():
    p = rich_profile()
    assert p.value_index(CPU) == p.value_index("cpu") == p.value_index("cpu/nanoseconds") == 1
    with pytest.raises(KeyError, match="no sample type alloc_space"):
        p.value_index("alloc_space")
    assert ValueType.parse("calls") == ValueType("calls", "count")


def test_folded_parses_frames_and_counts():
    p = profile_from_folded("main;tool (/srv/app.py:10);leaf (lib.py) 3\n# comment\n\nmain 2\n")
    assert p.stack_frames(0) == [Frame("main"), Frame("tool", "/srv/app.py", 10), Frame("leaf", "lib.py")]
    assert p.total() == 5
    assert parse_frame("f (a:b)") == Frame("f", "a:b")
    with pytest.raises(ValueError, match="line 1"):
        profile_from_folded("main;tool x")


# -- the native file -------------------------------------------------------------------------

def test_round_trip_is_lossless(tmp_path):
    p = rich_profile()
    path = tmp_path / "p.mcpprof"
    io.save(p, path)
    q = io.load(path)
    assert q == p  # dataclass equality: frames, stacks, samples, metadata, requests, extras
    assert q.requests.stats[("tools/call", "echo")].slowest[0].request_id == "2"
    assert q.requests.stats[("tools/call", "echo")].error_kinds == {"ValueError": 1}
    assert q.frames[3].file == "/srv/\udcff.py"  # surrogate-escaped file names survive
    assert io.dumps(q) == io.dumps(p)  # deterministic bytes
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_round_trip_without_requests_and_plain_json():
    p = profile_from_folded("a;b 1")
    assert io.loads(io.dumps(p)).requests is None
    assert io.loads(json.dumps(io.to_dict(p)).encode()) == p  # uncompressed JSON reads too


def _write(tmp_path, data: bytes):
    path = tmp_path / "bad.mcpprof"
    path.write_bytes(data)
    return path


def _doc(**changes):
    doc = io.to_dict(rich_profile())
    doc.update(changes)
    return gzip.compress(json.dumps(doc).encode())


BAD_FILES = {
    "empty": (b"", "empty file"),
    "truncated gzip": (io.dumps(rich_profile())[:40], "truncated or corrupt"),
    "corrupt json": (gzip.compress(b'{"format": "mcpprof", "vers'), "truncated or corrupt"),
    "not json at all": (b"\x00\xffgarbage", "truncated or corrupt"),
    "wrong header": (gzip.compress(b'{"format": "speedscope"}'), "not an mcpprof profile"),
    "a json list": (gzip.compress(b"[1, 2]"), "not an mcpprof profile"),
    "future version": (_doc(version=99), "version 99 is newer than this mcpprof reads (1); upgrade"),
    "bool version": (_doc(version=True), "bad format version True"),
    "missing field": (gzip.compress(json.dumps(
        {k: v for k, v in io.to_dict(rich_profile()).items() if k != "stacks"}).encode()),
        "missing field 'stacks'"),
    "bad frame index": (_doc(stacks=[[0, 99]]), "a stack refers to a missing frame"),
    "negative frame index": (_doc(stacks=[[-1]]), "a stack refers to a missing frame"),
    "bad stack index": (_doc(samples=[[7, [1, 1, 1], []]]), "a sample refers to a missing stack"),
    "wrong value count": (_doc(samples=[[0, [1], []]]), "wrong number of values"),
    "frame too short": (_doc(frames=[["f", "x"]]), "corrupt profile"),
    "non-string sample type": (_doc(sample_types=[1, 2, 3]), "corrupt profile"),
    "bad request rows": (_doc(requests=[{"method": "x"}]), "corrupt profile"),
    "bad value": (_doc(samples=[[0, ["x", 1, 1], []]]), "corrupt profile"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_load_errors_are_one_line_profile_file_errors(tmp_path, case):
    data, expected = BAD_FILES[case]
    path = _write(tmp_path, data)
    with pytest.raises(ProfileFileError) as info:
        io.load(path)
    message = str(info.value)
    assert expected in message
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


def test_load_missing_file_and_folder(tmp_path):
    with pytest.raises(ProfileFileError, match="no such file"):
        io.load(tmp_path / "nope.mcpprof")
    with pytest.raises(ProfileFileError, match="is a folder"):
        io.load(tmp_path)


# -- request statistics ----------------------------------------------------------------------

def test_latency_quantiles_are_nearest_rank():
    st = LatencyStats()
    for d in range(1, 101):
        st.add(d)
    assert (st.quantile(0.5), st.quantile(0.95), st.quantile(0.99), st.quantile(1.0)) == (50, 95, 99, 100)
    assert (st.min_ns, st.max_ns, st.count, st.mean_ns) == (1, 100, 100, 50.5)
    assert LatencyStats().quantile(0.5) == 0


def test_request_tables_merge_counts_exactly():
    a, b = RequestTable(), RequestTable()
    a.record("tools/call", "x", 10)
    b.record("tools/call", "x", 30, error="E")
    b.record("tools/call", "y", 5)
    a.merge(b)
    x = a.stats[("tools/call", "x")]
    assert (x.count, x.errors, x.min_ns, x.max_ns, x.total_ns, sorted(x.reservoir)) == (2, 1, 10, 30, 40, [10, 30])
    assert a.total_count == 3
    assert b.stats[("tools/call", "x")].count == 1  # the source is unchanged


def test_merged_reservoir_is_weighted_by_request_count():
    big, small = LatencyStats(), LatencyStats()
    for _ in range(RESERVOIR * 4):
        big.add(1)
    for _ in range(RESERVOIR):
        small.add(2)
    big.merge(small)
    assert len(big.reservoir) == RESERVOIR
    # 4/5 of the requests took 1 ns, so about 4/5 of the kept durations must be 1 ns
    assert big.reservoir.count(1) == round(RESERVOIR * 4 / 5)
    assert big.quantile(0.5) == 1 and big.quantile(0.9) == 2
