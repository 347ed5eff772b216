"""Folded-stack exporter: golden output, the safe grammar subset, sanitising, round trip."""

from __future__ import annotations

import pytest

from mcpprof.errors import UsageError
from mcpprof.export import folded
from mcpprof.model import CPU, SAMPLES, WALL, Frame, ProfileBuilder
from mcpprof.model.folded import profile_from_folded
from tests.consumers.checks import folded_errors


def test_golden_default_cpu(mcp_profile, golden):
    out = folded.render(mcp_profile)
    golden("mcp.cpu.folded", out)
    assert folded_errors(out.decode()) == []


def test_golden_request_and_thread_frames(mcp_profile, golden):
    out = folded.render(mcp_profile, value_type="wall", request_frames=True, thread_frames=True)
    golden("mcp.wall.request-thread.folded", out)
    text = out.decode()
    assert folded_errors(text) == []
    assert "tools/call echo;thread: MainThread;main (server.py:88);" in text
    assert "tools/call slow_report;thread: worker-1;_bootstrap (threading.py:995);" in text
    assert "(transport & dispatch);thread: MainThread;main (server.py:88);run (" in text


@pytest.mark.parametrize("value_type", [None, "samples", "cpu", "wall/nanoseconds", WALL])
@pytest.mark.parametrize("request_frames", [False, True])
@pytest.mark.parametrize("thread_frames", [False, True])
def test_round_trip_keeps_totals(mcp_profile, value_type, request_frames, thread_frames):
    out = folded.render(mcp_profile, value_type=value_type, request_frames=request_frames,
                        thread_frames=thread_frames)
    back = profile_from_folded(out.decode())
    assert back.total() == mcp_profile.total(value_type or mcp_profile.default_type())


def test_format_is_the_safe_subset(mcp_profile):
    text = folded.render(mcp_profile, request_frames=True).decode()
    lines = text.split("\n")
    assert lines[-1] == ""  # \n after the last line
    for line in lines[:-1]:
        stack, count = line.rsplit(" ", 1)
        assert count.isdigit() and int(count) > 0
        assert stack == stack.strip() and all(f == f.strip() and f for f in stack.split(";"))
    frames = [line.rsplit(" ", 1)[0].split(";") for line in lines[:-1]]
    assert frames == sorted(frames)


def test_lines_sorted_frame_by_frame():
    # plain string order would put "f (a.py:10)" first (';' > '0') and "a b" before "a;x";
    # inferno --no-sort (and any frame-merging reader) wants the frames compared one by one
    b = ProfileBuilder([SAMPLES])
    b.add([Frame("f", "a.py", 10)], [1])
    b.add([Frame("f", "a.py", 1), Frame("g", "a.py", 2)], [2])
    b.add([Frame("a b")], [3])
    b.add([Frame("a"), Frame("x")], [4])
    b.add([Frame("a")], [5])
    assert folded.render(b.build()).decode() == (
        "a 5\na;x 4\na b 3\nf (a.py:1);g (a.py:2) 2\nf (a.py:10) 1\n")


def test_zero_lines_dropped_and_same_line_summed(mcp_profile):
    text = folded.render(mcp_profile, value_type="samples").decode()
    echo = ("main (server.py:88);run (mcp/server/lowlevel/server.py:620);"
            "handle (mcp/server/lowlevel/server.py:701);echo (server.py:20) ")
    # the idle section's echo line has 0 samples: summed into the echo request's line
    assert [line for line in text.splitlines() if line.startswith(echo)] == [echo + "5"]
    assert " 0\n" not in text


def test_labels_merge_without_leading_frames():
    b = ProfileBuilder([SAMPLES])
    stack = [Frame("main", "a.py", 1), Frame("work", "a.py", 2)]
    b.add(stack, [2], {"gen_ai.tool.name": "x", "mcp.method.name": "tools/call"})
    b.add(stack, [3], {"gen_ai.tool.name": "y", "mcp.method.name": "tools/call"})
    p = b.build()
    assert folded.render(p) == b"main (a.py:1);work (a.py:2) 5\n"
    assert folded.render(p, request_frames=True) == (
        b"tools/call x;main (a.py:1);work (a.py:2) 2\ntools/call y;main (a.py:1);work (a.py:2) 3\n")


# research/formats-and-viewers.md §1.1: what every consumer splits, drops or misreads
@pytest.mark.parametrize("function, expected", [
    ("handle a b", "handle a b"),                 # spaces inside a frame are fine
    ("weird;name with space", "weird:name with space"),  # ';' would split the frame everywhere
    ("tab\tbed", "tab bed"),                      # a tab drops the line in speedscope
    ("crlf\r\n", "crlf"),                         # CR drops the line in flamegraph.pl
    ("new\nline", "new line"),
    ("  padded  ", "padded"),                      # trailing spaces change flamegraph.pl's frame
    ("", "[unknown]"),
    ("   ", "[unknown]"),
    (";", ":"),
    ("ünïcødé;日本語", "ünïcødé:日本語"),
    ('<module>;a&b "q"', '<module>:a&b "q"'),
    ("sep\u2028arator\x85x\x0bv\x0cf", "sep arator x v f"),  # what str.splitlines() splits on
])
def test_sanitise(function, expected):
    assert folded.sanitise(function) == expected
    b = ProfileBuilder([SAMPLES])
    b.add([Frame("main"), Frame(function)], [5])
    text = folded.render(b.build()).decode()
    assert text == f"main;{expected} 5\n"
    assert folded_errors(text) == []


def test_comment_like_root_frame_is_not_a_comment():
    b = ProfileBuilder([SAMPLES])
    b.add([Frame("# comment"), Frame("x")], [5])
    text = folded.render(b.build()).decode()
    assert text == "\uff03 comment;x 5\n"
    assert folded_errors(text) == []


def test_empty_stack_and_empty_profile():
    b = ProfileBuilder([SAMPLES])
    b.add([], [4])
    assert folded.render(b.build()) == b"[unknown] 4\n"
    assert folded.render(ProfileBuilder([CPU]).build()) == b""


def test_negative_totals_are_left_out():
    b = ProfileBuilder([SAMPLES])
    b.add([Frame("a")], [-3], {"diff": "base"})
    b.add([Frame("a")], [5], {"diff": "new"})
    b.add([Frame("b")], [-2])
    assert folded.render(b.build()) == b"a 2\n"


def test_paths_are_short_unless_asked(mcp_profile):
    short = folded.render(mcp_profile).decode()
    assert "/home/alice" not in short and "/opt/venv" not in short and "/usr/lib" not in short
    assert "json/__init__.py:231" in short
    full = folded.render(mcp_profile, full_paths=True).decode()
    assert "/home/alice/srv/server.py:88" in full


def test_file_outside_sys_path_keeps_only_its_name():
    b = ProfileBuilder([SAMPLES], {"sys_path": ["/usr/lib/python3.11"]})
    b.add([Frame("f", "/secret/project/tool.py", 3)], [1])
    assert folded.render(b.build()) == b"f (tool.py:3) 1\n"


def test_unknown_value_type(mcp_profile):
    with pytest.raises(UsageError, match="no value type 'alloc_space'.*cpu/nanoseconds"):
        folded.render(mcp_profile, value_type="alloc_space")


@pytest.mark.parametrize("names, clash", [
    ({"f (a.py:1)", "f (a.py:10)", "g"}, False),  # ")" ends a name with a location: no clash
    ({"a", "a b"}, True),  # "a;..." would sort after "a b" as plain text
    ({"a", "ab"}, False),  # letters sort above ";"
    ({"a", "a:b"}, True),  # ":" sorts just below it (and ";" in names becomes ":")
    ({"run", "run!"}, True),
    ({"x", "x=1"}, False),
])
def test_prefix_clash(names, clash):
    # the check decides between joining with ";" (plain sort works) and \x01 (then replaced)
    expected = any(b.startswith(a) and len(b) > len(a) and b[len(a)] < ";" for a in names for b in names)
    assert folded._prefix_clash(set(names)) == expected == clash
