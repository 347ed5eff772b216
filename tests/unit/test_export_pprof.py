"""pprof exporter: golden bytes, the wire format decoded back by a tiny independent reader, the
rules ``go tool pprof`` enforces (CheckValid), leaf-first locations, labels and sample types."""

from __future__ import annotations

import gzip
from typing import Any, Dict, List, Tuple

import pytest

from mcpprof.errors import UsageError
from mcpprof.export import pprof
from mcpprof.export import pyroscope as PY
from mcpprof.export.registry import get_exporter, guess_from_filename
from mcpprof.model import ALLOC_OBJECTS, ALLOC_SPACE, CPU, SAMPLES, Frame, ProfileBuilder


# -- an independent protobuf reader (wire format only) -------------------------------------------

def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def fields(buf: bytes) -> List[Tuple[int, Any]]:
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            out.append((field, v - (1 << 64) if v >= 1 << 63 else v))
        elif wire == 2:
            n, i = _varint(buf, i)
            out.append((field, buf[i:i + n]))
            i += n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def packed(buf: bytes) -> List[int]:
    out, i = [], 0
    while i < len(buf):
        v, i = _varint(buf, i)
        out.append(v - (1 << 64) if v >= 1 << 63 else v)
    return out


def decode(data: bytes) -> Dict[str, Any]:
    """profile.proto, the fields mcpprof writes, with strings resolved."""
    top = fields(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    strings = [b.decode() for f, b in top if f == 6]
    st = lambda i: strings[i]  # noqa: E731
    p: Dict[str, Any] = {"strings": strings, "sample_type": [], "samples": [], "locations": {}, "functions": {}}
    for f, v in top:
        if f == 1:
            d = dict(fields(v))
            p["sample_type"].append(f"{st(d.get(1, 0))}/{st(d.get(2, 0))}")
        elif f == 2:
            locs, vals, labels = [], [], []
            for g, w in fields(v):
                if g == 1:
                    locs += packed(w)
                elif g == 2:
                    vals += packed(w)
                elif g == 3:
                    d = dict(fields(w))
                    labels.append((st(d.get(1, 0)), st(d.get(2, 0))))
            p["samples"].append((locs, vals, dict(labels)))
        elif f == 4:
            d = fields(v)
            lid = dict(d)[1]
            [line] = [dict(fields(w)) for g, w in d if g == 4]
            p["locations"][lid] = (line.get(1, 0), line.get(2, 0))
        elif f == 5:
            d = dict(fields(v))
            p["functions"][d[1]] = (st(d.get(2, 0)), st(d.get(3, 0)), st(d.get(4, 0)))
        elif f in (9, 10, 12):
            p[{9: "time_nanos", 10: "duration_nanos", 12: "period"}[f]] = v
        elif f == 11:
            d = dict(fields(v))
            p["period_type"] = f"{st(d.get(1, 0))}/{st(d.get(2, 0))}"
        elif f == 13:
            p.setdefault("comments", []).append(st(v))
        elif f == 14:
            p["default_sample_type"] = st(v)
    return p


def frames_of(p: Dict[str, Any], locs: List[int]) -> List[str]:
    out = []
    for lid in locs:
        fid, line = p["locations"][lid]
        out.append(f"{p['functions'][fid][0]}:{line}")
    return out


def check_valid(p: Dict[str, Any]) -> None:
    """What pprof's CheckValid and reader reject (research/formats-and-viewers.md §3.2)."""
    assert p["strings"][0] == ""
    if p["samples"]:
        assert p["sample_type"], "samples but no sample_type"
    for locs, vals, _ in p["samples"]:
        assert len(vals) == len(p["sample_type"])
        assert locs and all(lid in p["locations"] for lid in locs)
    assert 0 not in p["locations"] and 0 not in p["functions"]
    for fid, _line in p["locations"].values():
        assert fid in p["functions"]
    for name, system, _file in p["functions"].values():
        assert name and name != system  # equal names make pprof demangle <module> into <unknown>


# -- tests --------------------------------------------------------------------------------------

def test_golden_and_deterministic(mcp_profile, golden):
    data = pprof.render(mcp_profile)
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # gzip, mtime 0
    assert pprof.render(mcp_profile) == data
    golden("mcp.pb.gz", data)
    check_valid(decode(data))


def test_locations_are_leaf_first(mcp_profile):
    p = decode(pprof.render(mcp_profile))
    model = {tuple(f.function for f in mcp_profile.stack_frames(s.stack)): s for s in mcp_profile.samples
             if any(s.values)}
    for locs, vals, labels in p["samples"]:
        names = [n.split(":")[0] for n in frames_of(p, locs)]
        assert tuple(reversed(names)) in model, names  # reversed = root first, as the model
    # the echo -> dumps stack: leaf (dumps) first, root (main) last, lines kept
    [dumps] = [s for s in p["samples"] if frames_of(p, s[0])[0].startswith("dumps")]
    assert frames_of(p, dumps[0]) == ["dumps:231", "echo:20", "handle:701", "run:620", "main:88"]


def test_types_labels_and_metadata(mcp_profile):
    mcp_profile.metadata.update(period_ns=10_000_000, start_ns=1_700_000_000_000_000_000,
                                duration_ns=2_500_000_000)
    p = decode(pprof.render(mcp_profile))
    assert p["sample_type"] == ["samples/count", "cpu/nanoseconds", "wall/nanoseconds"]
    assert p["default_sample_type"] == "cpu"
    assert p["period_type"] == "cpu/nanoseconds" and p["period"] == 10_000_000
    assert p["time_nanos"] == 1_700_000_000_000_000_000 and p["duration_nanos"] == 2_500_000_000
    assert "collector: sampler" in p["comments"]
    totals = [sum(v[i] for _, v, _ in p["samples"]) for i in range(3)]
    assert totals == [mcp_profile.total(t) for t in mcp_profile.sample_types]
    labels = [lab for _, _, lab in p["samples"]]
    assert {"mcp.method.name": "tools/call", "gen_ai.tool.name": "slow_report",
            "thread.name": "worker-1"} in labels
    assert {"thread.name": "MainThread"} in labels
    assert all(any(v) for _, v, _ in p["samples"])  # the all-zero sample is left out
    # shortened paths by default, absolute with full_paths
    files = {f for _, _, f in p["functions"].values()}
    assert "server.py" in files and not any(f.startswith("/") for f in files)
    full = decode(pprof.render(mcp_profile, full_paths=True))
    assert "/home/alice/srv/server.py" in {f for _, _, f in full["functions"].values()}
    assert decode(pprof.render(mcp_profile, value_type="wall"))["default_sample_type"] == "wall"
    with pytest.raises(UsageError):
        pprof.render(mcp_profile, value_type="alloc_space")


def test_memory_diff_and_odd_frames():
    b = ProfileBuilder([ALLOC_OBJECTS, ALLOC_SPACE])
    b.add([Frame("<module>", "/app/m.py", 1, "m"), Frame("", "", 0)], [3, 300], {"mcpprof.diff": "base"})
    b.add([Frame("<module>", "/app/m.py", 1, "m"), Frame("load", "/app/m.py", 9, "m")], [-2, -64])
    b.add([], [1, 8])
    p = decode(pprof.render(b.build()))
    check_valid(p)
    assert p["default_sample_type"] == "alloc_space" and "period_type" not in p
    names = {n: s for n, s, _ in p["functions"].values()}
    assert names["<module>"] == "m.<module>" and "[unknown]" in names
    assert [-2, -64] in [v for _, v, _ in p["samples"]]  # negative values survive (two's complement)
    [empty] = [locs for locs, v, _ in p["samples"] if v == [1, 8]]
    assert frames_of(p, empty) == ["[unknown]:0"]


def test_pyroscope_ingestion_rules(mcp_profile):
    """What Pyroscope's ``POST /ingest?format=pprof`` requires (the docs and server code it comes
    from are cited in mcpprof/export/pyroscope.py), asserted on the decoded file."""
    mcp_profile.metadata.update(period_ns=10_000_000, start_ns=1_700_000_000_000_000_000,
                                duration_ns=2_500_000_000)
    data = pprof.render(mcp_profile, pyroscope=True)
    p = decode(data)
    check_valid(p)  # ids never 0 (ValidateProfile), string table starts with ""
    assert len(gzip.decompress(data)) <= PY.LIMITS["max_profile_size_bytes"]
    assert 0 < len(p["samples"]) <= PY.LIMITS["max_profile_stacktrace_samples"]
    assert not any("-" in t.split("/")[0] for t in p["sample_type"])  # "sample type contains -"
    assert p["time_nanos"] == 1_700_000_000_000_000_000  # else the request's `from` is used
    assert p["period_type"] == "cpu/nanoseconds" and p["period"] == 10_000_000  # the profile type id's tail
    keys = set()
    for locs, _vals, labels in p["samples"]:
        assert len(labels) <= PY.LIMITS["max_profile_stacktrace_sample_labels"]
        assert len(locs) <= PY.LIMITS["max_profile_stacktrace_depth"]
        assert all(labels.values())  # string values: Pyroscope skips numeric and empty ones
        keys |= set(labels)
    assert {"mcp_method_name", "gen_ai_tool_name", "thread_name"} <= keys
    assert all(PY.is_legacy_label_name(k) for k in keys), keys
    assert not keys & set(PY.SERIES_LABELS)
    assert len(keys) + len(PY.SERIES_LABELS) <= PY.LIMITS["max_label_names_per_series"]
    # the default (OpenTelemetry keys) becomes the same series on a server that sanitizes dots
    otel = decode(pprof.render(mcp_profile))
    assert "gen_ai.tool.name" in {k for _, _, lab in otel["samples"] for k in lab}
    assert {PY.label_name(k) for _, _, lab in otel["samples"] for k in lab} == keys
    assert [v for _, v, _ in otel["samples"]] == [v for _, v, _ in p["samples"]]


def test_pyroscope_label_names():
    # the cases of Pyroscope's Test_SanitizeLegacyLabelName that a valid result comes from
    assert PY.label_name("service.name.type") == "service_name_type"
    assert PY.label_name(".a.") == "_a_" and PY.label_name("a.0") == "a_0"
    assert PY.label_name("9lives") == "_9lives" and PY.label_name("a-b c") == "a_b_c"
    assert PY.is_legacy_label_name("gen_ai_tool_name") and not PY.is_legacy_label_name("gen_ai.tool.name")


def test_varint():
    assert pprof.varint(0) == b"\0" and pprof.varint(300) == b"\xac\x02"
    assert pprof.varint(-1) == b"\xff" * 9 + b"\x01"
    assert packed(pprof.varint(-5)) == [-5]


def test_empty_profile_and_uncompressed():
    raw = pprof.render(ProfileBuilder([SAMPLES, CPU]).build(), compress=False)
    p = decode(raw)
    assert p["samples"] == [] and p["sample_type"] == ["samples/count", "cpu/nanoseconds"]


def test_registered():
    exporter = get_exporter("pprof")
    assert exporter.binary and exporter.render is pprof.render
    assert guess_from_filename("cpu.pb.gz") is exporter
    assert "full_paths" in exporter.options and "pyroscope" in exporter.options
