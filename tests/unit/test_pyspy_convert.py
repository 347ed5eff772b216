"""Converting py-spy's raw output into the model, and finding tools by their frames."""

from __future__ import annotations

import os
import sys

import pytest

from mcpprof.collect import toolframes
from mcpprof.collect.pyspy_collector import check_attach, convert_raw, parse_frame
from mcpprof.errors import TargetError
from mcpprof.model import labels as L
from mcpprof.model.profile import Frame

STD = "/usr/lib/python3.11"
SITE = "/venv/lib/python3.11/site-packages"
APP = "/home/me/app/server.py"

MAIN_ROOT = (f"_run_module_as_main (<frozen runpy>:198);<module> ({APP}:90);main ({APP}:85);"
             f"run ({SITE}/anyio/_core/_eventloop.py:83);BaseEventLoop.run_forever ({STD}/asyncio/base_events.py:607);"
             f"Handle._run ({STD}/asyncio/events.py:80)")
DISPATCH = (f"MCPServer.call_tool ({SITE}/mcp/server/mcpserver/server.py:533);"
            f"FuncMetadata.call_fn ({SITE}/mcp/server/mcpserver/utilities/func_metadata.py:163)")
WORKER_ROOT = (f"Thread._bootstrap ({STD}/threading.py:995);Thread._bootstrap_inner ({STD}/threading.py:1038);"
               f"WorkerThread.run ({SITE}/anyio/_backends/_asyncio.py:1124)")

RAW = "\n".join([
    f"thread (101): MainThread;{MAIN_ROOT};{DISPATCH};cpu_async ({APP}:40);fib ({APP}:10);fib ({APP}:10) 7",
    f"thread (101): MainThread;{MAIN_ROOT};fib_task ({APP}:50);fib ({APP}:10) 3",
    f"thread (102): AnyIO worker thread;{WORKER_ROOT};cpu_sync ({APP}:45);fib ({APP}:10) 5",
    f"thread (102): AnyIO worker thread;{WORKER_ROOT};Queue.get ({STD}/queue.py:171);"
    f"Condition.wait ({STD}/threading.py:327) 11",
    f"thread (101): MainThread;Handle._run ({STD}/asyncio/events.py:80);fib ({APP}:10) 2",
    "garbage line without a count",
    "",
]) + "\n"


def _by(profile, key):
    out = {}
    for s in profile.samples:
        d = dict(s.labels)
        k = tuple(d.get(x) for x in key)
        out[k] = out.get(k, 0) + s.values[0]
    return out


def test_threads_tools_idle_and_unrooted():
    p = convert_raw(RAW, 100.0, pid=4242)
    assert [str(t) for t in p.sample_types] == ["samples/count", "cpu/nanoseconds"]
    tools = _by(p, (L.TOOL, L.THREAD_NAME))
    assert tools[("cpu_async", "MainThread")] == 7
    assert tools[("cpu_sync", "AnyIO worker thread")] == 5
    # a task spawned by a tool has no dispatch frame on its stack: left unattributed, not guessed
    assert tools[(None, "MainThread")] == 3 + 2
    assert p.metadata["idle_samples_dropped"] == 11  # Condition.wait leaf
    assert p.metadata["unrooted_samples"] == 2
    assert p.metadata["pid"] == 4242 and p.metadata["collector"] == "pyspy"
    unrooted = [fr for s, fr in p.iter_stacks() if fr[0].function == toolframes.UNROOTED_FUNCTION]
    assert len(unrooted) == 1 and unrooted[0][1].function == "Handle._run"
    assert p.total("cpu") == (7 + 3 + 5 + 2) * 10_000_000
    for s in p.samples:  # every tool-labelled sample also names the method
        d = dict(s.labels)
        assert (L.TOOL in d) == (d.get(L.METHOD) == "tools/call")


def test_exports_of_a_pyspy_profile_are_valid():
    import json

    from mcpprof.export.registry import get_exporter
    from tests.consumers.checks import folded_errors, speedscope_semantic_errors

    p = convert_raw(RAW, 100.0)
    assert folded_errors(get_exporter("folded").render(p).decode()) == []
    assert speedscope_semantic_errors(json.loads(get_exporter("speedscope").render(p))) == []
    assert b"cpu_async" in get_exporter("html").render(p)


@pytest.mark.parametrize("text,expected", [
    ("fib (/a/b.py:10)", Frame("fib", "/a/b.py", 10)),
    ("<lambda> (/a (x)/b.py:3)", Frame("<lambda>", "/a (x)/b.py", 3)),
    ("lock.release (<built-in>)", Frame("lock.release", "<built-in>", 0)),
    ("bare", Frame("bare")),
])
def test_parse_frame(text, expected):
    assert parse_frame(text) == expected


def test_library_classification():
    assert toolframes.is_library_file(f"{SITE}/mcp/x.py")
    assert toolframes.is_library_file(f"{STD}/asyncio/events.py")
    assert toolframes.is_library_file("<frozen runpy>") and toolframes.is_library_file("<built-in>")
    assert toolframes.is_library_file("/tmp/mcpprof-0/stub-0123abcd/mcpprof/mcp/context.py")
    assert not toolframes.is_library_file("/tmp/mcpprof-0/stub-0123abcd/mcpprof/examples/server.py")
    assert not toolframes.is_library_file(APP)


def test_check_attach_missing_pid_is_a_one_line_target_error():
    with pytest.raises(TargetError) as err:
        check_attach(2 ** 22 + 12345)
    assert "no process" in str(err.value) and "\n" not in str(err.value)


def test_check_attach_other_user_without_ptrace_rights():
    """As uid 65534 (a forked child dropping root), attaching to our own process is refused
    with what to do."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another uid")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                check_attach(os.getppid())
                msg = "no error"
            except TargetError as exc:
                msg = str(exc)
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        msg = fh.read().decode()
    os.waitpid(pid, 0)
    assert "another user" in msg and "sudo" in msg, msg
    assert sys.platform.startswith("linux")
