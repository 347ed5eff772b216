"""The per-request summary table: exact numbers from a hand-built profile."""

from __future__ import annotations

import json
import math

import pytest

from rich.console import Console

from mcpprof.analyse import ops
from mcpprof.analyse.summary import (RequestRow, Summary, fmt_ms, fmt_pct, format_table,
                                     format_text, summarize)
from mcpprof.model import CPU, SAMPLES, WALL, Frame, Profile, ProfileBuilder, RequestTable
from mcpprof.model import labels as L
from mcpprof.model.folded import profile_from_folded

SRV = "/srv/server.py"
STD = "/usr/lib/python3.11"
SITE = "/venv/lib/python3.11/site-packages"
META = {"collector": "sampler", "rate_hz": 100, "duration_ns": 2_000_000_000, "overhead": 0.015,
        "samples": 19, "complete": True, "end_reason": "exit",
        "sys_path": ["/srv", STD, SITE], "stdlib_dirs": [STD], "site_dirs": [SITE], "pid": 7}

MAIN = Frame("main", SRV, 90)
RUN = Frame("run", f"{STD}/asyncio/base_events.py", 600)
SELECT = Frame("select", f"{STD}/selectors.py", 468)
DISPATCH = Frame("_handle_request", f"{SITE}/mcp/server/lowlevel/server.py", 700)
LOADS = Frame("loads", f"{SITE}/json5/lib.py", 50)

CALL = {L.METHOD: "tools/call"}
MS = 1_000_000


def server_profile() -> Profile:
    """Values are (samples, cpu ns, wall ns)."""
    b = ProfileBuilder([SAMPLES, CPU, WALL], META)
    # tools/call cpu_sync: all in the server's own loop
    b.add([MAIN, DISPATCH, Frame("cpu_sync", SRV, 10)], [6, 60 * MS, 60 * MS], {**CALL, L.TOOL: "cpu_sync"})
    b.add([MAIN, DISPATCH, Frame("cpu_sync", SRV, 11)], [2, 20 * MS, 20 * MS], {**CALL, L.TOOL: "cpu_sync"})
    # tools/call parse: a library does most of the work, called from the server's own parse_cfg
    b.add([MAIN, DISPATCH, Frame("parse", SRV, 20), Frame("parse_cfg", SRV, 30), LOADS],
          [3, 30 * MS, 30 * MS], {**CALL, L.TOOL: "parse"})
    b.add([MAIN, DISPATCH, Frame("parse", SRV, 21)], [1, 10 * MS, 10 * MS], {**CALL, L.TOOL: "parse"})
    # resources/read, prompts/get, initialize
    b.add([MAIN, DISPATCH, Frame("config", SRV, 40)], [1, 5 * MS, 6 * MS],
          {L.METHOD: "resources/read", L.RESOURCE_URI: "example://config"})
    b.add([MAIN, DISPATCH, Frame("greet", SRV, 50)], [1, 5 * MS, 5 * MS],
          {L.METHOD: "prompts/get", L.PROMPT: "greet"})
    b.add([MAIN, DISPATCH], [1, 10 * MS, 10 * MS], {L.METHOD: "initialize"})
    # outside requests: only stdlib and library frames
    b.add([RUN, SELECT], [3, 3 * MS, 300 * MS])
    b.add([RUN, DISPATCH], [1, 1 * MS, 1 * MS])
    p = b.build()
    p.requests = RequestTable()
    for i in range(1, 11):  # cpu_sync: 10 calls of 1..10 ms, one failed
        p.requests.record("tools/call", "cpu_sync", i * MS, error="Boom" if i == 10 else None)
    p.requests.record("tools/call", "parse", 40 * MS)
    p.requests.record("resources/read", "example://config", 7 * MS)
    p.requests.record("prompts/get", "greet", 6 * MS)
    p.requests.record("initialize", "", 12 * MS)
    p.requests.record("tools/call", "echo", 1 * MS)  # called but never sampled
    return p


def test_rows_cover_every_request_sorted_by_cpu():
    s = summarize(server_profile())
    assert [(r.name, r.cpu_ns) for r in s.rows] == [
        ("tools/call cpu_sync", 80 * MS),
        ("tools/call parse", 40 * MS),
        ("initialize", 10 * MS),
        ("resources/read example://config", 5 * MS),  # equal CPU: more wall time first
        ("prompts/get greet", 5 * MS),
        (L.OUTSIDE_REQUESTS, 4 * MS),
        ("tools/call echo", 0),
    ]
    assert (s.row("resources/read example://config").method, s.row("resources/read example://config").target) == (
        "resources/read", "example://config")
    assert (s.row("initialize").method, s.row("initialize").target) == ("initialize", "")
    bucket = s.row(L.OUTSIDE_REQUESTS)
    assert (bucket.method, bucket.calls, bucket.p50_ns, bucket.wall_ns, bucket.samples) == ("", None, None, 301 * MS, 4)


def test_row_numbers_are_exact():
    r = summarize(server_profile()).row("tools/call cpu_sync")
    assert (r.calls, r.errors) == (10, 1)
    assert (r.p50_ns, r.p95_ns, r.p99_ns, r.max_ns) == (5 * MS, 10 * MS, 10 * MS, 10 * MS)
    assert (r.cpu_ns, r.wall_ns, r.samples) == (80 * MS, 80 * MS, 8)
    assert r.cpu_ms_per_call == 8.0
    assert r.cpu_share == 80 / 144
    assert (r.hottest_function, r.hottest_is_library, r.hottest_share) == ("cpu_sync (server.py:10)", False, 1.0)


def test_shares_sum_to_one_and_totals():
    s = summarize(server_profile())
    assert math.isclose(sum(r.cpu_share for r in s.rows), 1.0)
    assert (s.total_cpu_ns, s.total_wall_ns, s.sample_count) == (144 * MS, 442 * MS, 19)
    assert (s.collector, s.rate_hz, s.duration_ns, s.overhead) == ("sampler", 100.0, 2_000_000_000, 0.015)
    assert (s.complete, s.overflow, s.weight) == (True, 0, "cpu/nanoseconds")


def test_hottest_function_prefers_the_servers_own_code_over_libraries():
    r = summarize(server_profile()).row("tools/call parse")
    # json5.loads has the most self CPU (30 of 40 ms), but it is charged to the server's own
    # parse_cfg that called it
    assert (r.hottest_function, r.hottest_is_library, r.hottest_share) == ("parse_cfg (server.py:30)", False, 0.75)


def test_hottest_function_falls_back_to_library_code_marked_as_such():
    r = summarize(server_profile()).row(L.OUTSIDE_REQUESTS)
    assert (r.hottest_function, r.hottest_is_library, r.hottest_share) == ("select (selectors.py:468)", True, 0.75)


def test_the_entry_point_is_not_charged_for_library_code_below_it():
    r = summarize(server_profile()).row("initialize")  # main -> SDK dispatch, nothing else
    assert (r.hottest_function, r.hottest_is_library, r.hottest_share) == (
        "_handle_request (mcp/server/lowlevel/server.py:700)", True, 1.0)
    b = ProfileBuilder([CPU], META)
    b.add([MAIN, DISPATCH], [3], {L.METHOD: "initialize"})
    b.add([MAIN], [1], {L.METHOD: "initialize"})  # main's own line still counts
    r = summarize(b.build()).row("initialize")
    assert (r.hottest_function, r.hottest_is_library, r.hottest_share) == ("main (server.py:90)", False, 0.25)


def test_never_sampled_request_has_zero_cpu():
    r = summarize(server_profile()).row("tools/call echo")
    assert (r.calls, r.cpu_ns, r.cpu_share, r.cpu_ms_per_call, r.samples) == (1, 0, 0.0, 0.0, 0)
    assert (r.hottest_function, r.hottest_share) == (None, None)


def test_without_request_table_or_cpu_column():
    p = profile_from_folded("main (/srv/server.py:1);tool (/srv/server.py:5) 30\nmain (/srv/server.py:1) 10\n",
                            WALL, labels={L.METHOD: "tools/call", L.TOOL: "t"},
                            metadata={"sys_path": ["/srv"], "complete": False,
                                      "end_reason": "server was killed", "overflow_samples": 3,
                                      "overhead": {"sampler_cpu_ns": 5, "fraction": 0.25}})
    s = summarize(p)
    [row] = s.rows
    assert (row.name, row.calls, row.cpu_ns, row.cpu_share, row.wall_ns) == ("tools/call t", None, None, None, 40)
    assert (row.hottest_function, row.hottest_share) == ("tool (server.py:5)", 0.75)
    assert (s.weight, s.total_cpu_ns, s.complete, s.overflow, s.overhead) == (
        "wall/nanoseconds", None, False, 3, 0.25)
    text = format_text(s)
    assert "! incomplete profile: server was killed" in text
    assert "! 3 samples over the stack-table limit" in text
    assert "! no CPU time recorded: the hottest function is by wall/nanoseconds" in text


def test_a_cpu_column_of_zeros_falls_back_to_wall_time():
    b = ProfileBuilder([SAMPLES, CPU, WALL], META)
    b.add([MAIN, Frame("t", SRV, 5)], [3, 0, 30], {**CALL, L.TOOL: "t"})
    b.add([MAIN, Frame("u", SRV, 6)], [1, 0, 10], {**CALL, L.TOOL: "t"})
    s = summarize(b.build())
    [row] = s.rows
    assert (s.weight, row.cpu_ns, row.cpu_share, row.hottest_function, row.hottest_share) == (
        "wall/nanoseconds", 0, None, "t (server.py:5)", 0.75)


def test_empty_profile():
    s = summarize(ProfileBuilder([SAMPLES, CPU]).build())
    assert s.rows == [] and s.total_cpu_ns == 0
    assert format_text(s).splitlines()[:2] == ["CPU 0 ms (sampled) · 0 samples", "  ".join(
        ["request", "calls", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "CPU ms",
         "CPU ms/call", "CPU %", "hottest function"])]


def test_to_dict_is_stable_json():
    d = summarize(server_profile()).to_dict()
    json.dumps(d, allow_nan=False)
    assert (d["format"], d["version"]) == ("mcpprof-summary", 1)
    assert set(d["totals"]) == {"cpu_ns", "wall_ns", "duration_ns", "samples", "collector", "rate_hz",
                                "overhead", "complete", "incomplete_reason", "overflow", "weight", "cpu_source"}
    assert list(d["rows"][0]) == [
        "name", "method", "target", "calls", "errors", "p50_ns", "p95_ns", "p99_ns", "max_ns",
        "cpu_ns", "cpu_ms_per_call", "cpu_share", "wall_ns", "samples", "hottest_function",
        "hottest_is_library", "hottest_share", "loop_blocked_ns", "loop_blocked_max_ns"]
    assert d["rows"][0]["p50_ns"] == 5 * MS and isinstance(d["rows"][0]["cpu_ns"], int)


def test_format_text_and_table():
    s = summarize(server_profile())
    text = format_text(s)
    lines = text.splitlines()
    assert lines[0] == "sampler @ 100 Hz · 2 s · CPU 144 ms (sampled) · 19 samples · overhead 1.5%"
    assert lines[1].split() == ["request", "calls", "errors", "p50", "ms", "p95", "ms", "p99", "ms",
                                "max", "ms", "CPU", "ms", "CPU", "ms/call", "CPU", "%", "hottest", "function"]
    assert lines[3].split() == ["tools/call", "cpu_sync", "10", "1", "5.00", "10.0", "10.0", "10.0",
                                "80.0", "8.00", "56%", "cpu_sync", "(server.py:10)", "100%"]
    assert "select (selectors.py:468) 75% [library]" in text
    assert str(s) == text
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(format_table(s))
    rendered = console.export_text()
    assert "tools/call cpu_sync" in rendered and "parse_cfg (server.py:30) 75%" in rendered
    assert "sampler @ 100 Hz" in rendered


def test_summary_of_a_merged_profile_adds_up():
    p = server_profile()
    q = server_profile()
    q.metadata = {**META, "pid": 8}
    s = summarize(ops.merge([p, q]))
    r = s.row("tools/call cpu_sync")
    assert (r.calls, r.cpu_ns, r.cpu_ms_per_call) == (20, 160 * MS, 8.0)
    assert s.duration_ns == 2_000_000_000  # equal in both sources, so kept
    assert s.complete and s.sample_count == 38


def test_formatting_helpers():
    assert [fmt_ms(v) for v in (None, 0, 123_456_789, 12_345_678, 1_234_567, 123_456, 100_000, 5_100, 999)] == [
        "-", "0", "123", "12.3", "1.23", "0.12", "0.10", "0.0051", "<0.001"]
    assert fmt_ms(-2_500_000) == "-2.50"
    assert [fmt_pct(v) for v in (None, 0, 1, 0.5555, 0.042, 0.0004)] == ["-", "0%", "100%", "56%", "4.2%", "<0.1%"]
    assert RequestRow("x").calls is None and Summary().rows == []


def test_exact_request_cpu_beats_samples_and_fills_the_bucket() -> None:
    """With adapter-measured CPU, rows use it; the bucket is process CPU minus the requests."""
    from mcpprof.model import CPU, SAMPLES, WALL, Frame, ProfileBuilder
    from mcpprof.model import labels as L
    from mcpprof.model.requests import RequestTable

    b = ProfileBuilder([SAMPLES, WALL, CPU], {"request_cpu": "exact", "process_cpu_ns": 100_000_000})
    b.add([Frame("main", "/srv/server.py", 1), Frame("select", "/usr/lib/python3.11/selectors.py", 2)],
          [10, 10, 90_000_000], {L.THREAD_NAME: "MainThread"})
    b.add([Frame("main", "/srv/server.py", 1), Frame("work", "/srv/server.py", 5)], [1, 1, 10_000_000],
          {L.METHOD: "tools/call", L.TOOL: "work", L.THREAD_NAME: "MainThread"})
    p = b.build()
    p.requests = RequestTable()
    for _ in range(4):
        p.requests.record("tools/call", "work", 1_000_000, cpu_ns=15_000_000)
    s = summarize(p)
    assert s.cpu_source == "exact" and s.total_cpu_ns == 100_000_000
    work = s.row("tools/call work")
    assert work.cpu_ns == 60_000_000 and work.cpu_share == pytest.approx(0.6)
    assert work.cpu_ms_per_call == pytest.approx(15.0)
    assert s.row(L.OUTSIDE_REQUESTS).cpu_ns == 40_000_000


def _loop_profile() -> Profile:
    """A default-agent profile: the loop thread's CPU deltas landed unevenly (a request that ran
    after an idle tick got the idle stretch's CPU), a worker ran a sync tool measured exactly."""
    main, sel = Frame("main", "/srv/server.py", 1), Frame("EpollSelector.select", "/usr/lib/python3.11/selectors.py", 2)
    meta = {"request_cpu": "workers", "loop_threads": ["MainThread"], "process_cpu_ns": 200 * MS}
    b = ProfileBuilder([SAMPLES, WALL, CPU], meta)
    loop = {L.THREAD_NAME: "MainThread"}
    b.add([main, sel], [20, 200 * MS, 10 * MS], loop)  # idle ticks: their CPU is not theirs
    b.add([main, Frame("a", "/srv/server.py", 5)], [10, 100 * MS, 90 * MS], {**loop, L.METHOD: "tools/call", L.TOOL: "a"})
    b.add([main, Frame("b", "/srv/server.py", 9)], [10, 100 * MS, 20 * MS], {**loop, L.METHOD: "tools/call", L.TOOL: "b"})
    b.add([main, Frame("parse", "/srv/server.py", 12)], [5, 50 * MS, 10 * MS], loop)
    b.add([main, Frame("a", "/srv/server.py", 5)], [3, 30 * MS, 0], {**loop, L.PHASE: L.STARTUP})  # not serving yet
    b.add([Frame("run", "/srv/worker.py", 1), Frame("s", "/srv/server.py", 20)], [2, 20 * MS, 60 * MS],
          {L.THREAD_NAME: "AnyIO worker thread", L.METHOD: "tools/call", L.TOOL: "s"})
    p = b.build()
    p.requests = RequestTable()
    for name, cpu in (("a", 0), ("b", 0), ("s", 50 * MS)):
        p.requests.record("tools/call", name, MS, cpu_ns=cpu)
    return p


def test_default_agent_splits_loop_cpu_by_running_samples_and_adds_worker_cpu():
    from mcpprof.analyse.loopcpu import loop_cpu_by_request

    p = _loop_profile()
    # the loop's 130 ms while serving, split 100:100:50 by the running ticks' wall time
    assert loop_cpu_by_request(p, ["MainThread"], 2, 1) == {
        "tools/call a": 52 * MS, "tools/call b": 52 * MS, L.OUTSIDE_REQUESTS: 26 * MS}
    s = summarize(p)
    assert s.cpu_source == "sampled on the loop, measured on workers" and s.total_cpu_ns == 200 * MS
    assert (s.row("tools/call a").cpu_ns, s.row("tools/call b").cpu_ns) == (52 * MS, 52 * MS)
    assert s.row("tools/call s").cpu_ns == 50 * MS  # measured on its worker, not its samples' 60 ms
    assert s.row(L.OUTSIDE_REQUESTS).cpu_ns == 200 * MS - 154 * MS
    assert sum(r.cpu_share for r in s.rows if r.name != L.STARTUP_BUCKET) == pytest.approx(1.0)
    # without the loop threads' names (an older profile) the samples' own CPU is used
    p.metadata.pop("loop_threads")
    old = summarize(p)
    assert old.cpu_source == "sampled" and old.row("tools/call a").cpu_ns == 90 * MS


def test_sync_tools_on_the_event_loop_are_reported():
    p = server_profile()
    p.metadata["frameworks"] = [{"kind": "fastmcp2", "package": "fastmcp", "version": "2.14.7",
                                 "sync_tools": "event loop"}]
    p.metadata["loop_blocked"] = {"tools/call cpu_sync": {"count": 3, "total_ns": 12 * MS, "max_ns": 5 * MS}}
    s = summarize(p)
    row = s.row("tools/call cpu_sync")
    assert (row.loop_blocked_ns, row.loop_blocked_max_ns) == (12 * MS, 5 * MS)
    assert s.sync_on_loop == ["fastmcp 2.14.7"]
    assert ("! tools/call cpu_sync blocked the event loop for 12.0 ms in all, 5.00 ms at most: no other "
            "request ran meanwhile (fastmcp 2.14.7 runs sync tools on the event loop)") in format_text(s)
    assert all(r.loop_blocked_ns is None for r in s.rows if r is not row)
