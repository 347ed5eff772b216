"""Trace exporter: lanes never overlap, one slice per request, metadata events, the span ring."""

from __future__ import annotations

import json
import random
from collections import defaultdict

from mcpprof.analyse.ops import merge
from mcpprof.export import trace
from mcpprof.export.registry import get_exporter, guess_from_filename
from mcpprof.model import CPU, SAMPLES, ProfileBuilder, RequestTable
from mcpprof.model.spans import EXTRA_KEY, MAX_SPANS, SpanRing, spans_from_extra

MS = 1_000_000


def spans_profile(pid: int = 4242):
    ring = SpanRing(maxlen=100)
    ring._offset = 1_700_000_000_000_000_000  # a fixed clock for golden output
    # echo 1 and 2 overlap; 3 starts exactly when 1 ends; slow spans all of them
    ring.add(0, 10 * MS, "tools/call", "echo", "gen_ai.tool.name", "1", "s1", cpu_ns=2 * MS)
    ring.add(2 * MS, 5 * MS, "tools/call", "echo", "gen_ai.tool.name", "2", "s1")
    ring.add(10 * MS, 3 * MS, "tools/list", request_id="3")
    ring.add(1 * MS, 30 * MS, "tools/call", "<script>alert(1)</script>", "gen_ai.tool.name", "4",
             error="ValueError")
    ring.add(40 * MS, 1 * MS, "resources/read", "file:///a", "mcp.resource.uri", "5")
    p = ProfileBuilder([SAMPLES, CPU], {"collector": "sampler", "pid": pid}).build()
    p.extras[EXTRA_KEY] = ring.to_extra()
    return p


def check_no_overlap(doc):
    tracks = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            tracks[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in tracks.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end < start
    return tracks


def test_golden(golden):
    out = trace.render(spans_profile(), indent=1)
    golden("mcp.trace.json", out)


def test_lanes_and_events():
    doc = json.loads(trace.render(spans_profile()))
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == 5
    tracks = check_no_overlap(doc)
    assert len(tracks) == 3  # peak concurrency: echo 1, echo 2 and the hostile tool at 2 ms
    names = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "thread_name"}
    assert names == {1: "requests lane 1", 2: "requests lane 2", 3: "requests lane 3"}
    assert all(e["pid"] == 4242 for e in doc["traceEvents"])
    [proc] = [e for e in doc["traceEvents"] if e.get("name") == "process_name"]
    assert proc["args"]["name"] == "MCP server (pid 4242)"
    by_id = {e["args"]["jsonrpc.request.id"]: e for e in xs}
    assert by_id["1"]["name"] == "tools/call echo" and by_id["1"]["ts"] == 0 and by_id["1"]["dur"] == 10000
    assert by_id["1"]["args"] == {"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo",
                                  "jsonrpc.request.id": "1", "mcp.session.id": "s1", "cpu_ms": 2.0,
                                  "duration_ms": 10.0}
    assert by_id["4"]["cat"] == "mcp,error" and by_id["4"]["args"]["error"] == "ValueError"
    assert by_id["5"]["args"]["mcp.resource.uri"] == "file:///a"
    assert by_id["3"]["name"] == "tools/list" and by_id["3"]["tid"] != by_id["1"]["tid"]  # touching: new lane
    assert doc["otherData"]["start_ns"] == 1_700_000_000_000_000_000
    assert doc["displayTimeUnit"] == "ms"


def test_assign_lanes_is_optimal_and_never_overlaps():
    rng = random.Random(7)
    spans = [(rng.randrange(0, 10_000), rng.randrange(0, 500)) for _ in range(2000)]
    lanes = assign_lanes = trace.assign_lanes(spans)
    by_lane = defaultdict(list)
    for (s, d), lane in zip(spans, lanes):
        by_lane[lane].append((s, s + d))
    for items in by_lane.values():
        items.sort()
        assert all(a[1] < b[0] for a, b in zip(items, items[1:]))
    # the number of lanes is the peak number of spans alive at one instant (closed intervals)
    points = sorted([(s, 0) for s, d in spans] + [(s + d, 1) for s, d in spans])
    live = peak = 0
    for _, kind in points:
        live += 1 if kind == 0 else -1
        peak = max(peak, live)
    assert max(assign_lanes) + 1 == peak
    assert trace.assign_lanes([]) == []


def test_merged_profiles_are_processes():
    doc = json.loads(trace.render(merge([spans_profile(11), spans_profile(12)])))
    assert {e["pid"] for e in doc["traceEvents"] if e["ph"] == "X"} == {11, 12}
    assert len([e for e in doc["traceEvents"] if e["ph"] == "X"]) == 10
    check_no_overlap(doc)


def test_falls_back_to_slowest_requests():
    p = ProfileBuilder([SAMPLES]).build()
    p.requests = RequestTable()
    for i in range(15):
        p.requests.record("tools/call", "echo", (i + 1) * MS, None, str(i), start_ns=i * MS)
    doc = json.loads(trace.render(p))
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == 10  # the table keeps the 10 slowest
    assert "slowest requests only" in doc["traceEvents"][0]["args"]["name"]
    check_no_overlap(doc)
    empty = json.loads(trace.render(ProfileBuilder([SAMPLES]).build()))
    assert [e["ph"] for e in empty["traceEvents"]] == ["M", "M"]


def test_span_ring_is_bounded_and_round_trips():
    ring = SpanRing(maxlen=3)
    for i in range(5):
        ring.add(i, 1, "ping", request_id=str(i))
    extra = json.loads(json.dumps(ring.to_extra()))
    assert extra["total"] == 5 and extra["dropped"] == 2
    assert [s.request_id for s in spans_from_extra(extra)] == ["2", "3", "4"]
    assert spans_from_extra({"version": 99}) == [] and spans_from_extra(None) == []
    assert SpanRing().spans.maxlen == MAX_SPANS


def test_span_columns_keep_every_field_and_version_1_is_read():
    ring = SpanRing(maxlen=10)
    ring.add(100, 7, "tools/call", "echo", "gen_ai.tool.name", "9", "s1", "tool_error", 55)
    ring.add(200, 8, "ping")
    spans = spans_from_extra(json.loads(json.dumps(ring.to_extra())))
    assert spans[0][1:] == (7, "tools/call", "echo", "gen_ai.tool.name", "9", "s1", "tool_error", 55)
    assert spans[1].start_ns - spans[0].start_ns == 100 and spans[1][2:] == ("ping", "", "", "", "", "", 0)
    v1 = {"version": 1, "total": 1, "dropped": 0, "fields": ["start_ns", "duration_ns", "method", "target"],
          "spans": [[5, 6, "tools/call", "echo"]]}
    assert spans_from_extra(v1)[0][:4] == (5, 6, "tools/call", "echo")


def test_registered():
    exporter = get_exporter("trace")
    assert exporter.render is trace.render and not exporter.binary
    assert guess_from_filename("requests.trace.json") is exporter
