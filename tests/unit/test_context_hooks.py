"""The per-request hook layer of mcpprof.mcp.context: tags and request().

Runs against whatever ``context._C`` is (the C extension ``mcpprof.mcp._hooks`` when built); one
test re-runs this file and ``test_context_hooks_threads.py`` in a subprocess with
``MCPPROF_PURE_PYTHON=1`` so the pure-Python path passes the same tests. Tests a bug makes crash
the interpreter run in a child process of their own.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mcpprof.mcp import context, sdk2
from mcpprof.model import labels as L

PURE_RUN = os.environ.get("MCPPROF_TEST_HOOKS_PURE_RUN") == "1"  # set by the subprocess re-run
IS_C = context._C is not None
c_only = pytest.mark.skipif(not IS_C, reason="C extension only")
ROOT = Path(__file__).resolve().parents[2]

@pytest.fixture(autouse=True)
def clean_state():
    saved = list(context.request_sinks)
    context.request_sinks.clear()
    context.uninstall_thread_hooks()
    context.reset()
    yield
    context.uninstall_thread_hooks()
    context.reset()
    context.request_sinks[:] = saved
    assert context.CURRENT.get() is None, "a test leaked the request ContextVar"


@pytest.fixture
def hooks():
    """The thread hooks with exact CPU on (request metering, task factory, to_thread wrappers)."""
    context.install_thread_hooks(exact=True)
    yield
    context.uninstall_thread_hooks()


def task_tag(task):
    """The request tag :func:`context.inflight` gives for ``task``, or None."""
    return next((tag for t, tag in context.inflight() if t is task), None)


def burn(ns: int = 5_000_000) -> int:
    """Spin until this thread has used ``ns`` of CPU; the CPU it used."""
    t0 = time.thread_time_ns()
    while time.thread_time_ns() - t0 < ns:
        pass
    return time.thread_time_ns() - t0


def run_measured(main):
    """asyncio.run(main()) and the CPU this thread used doing it."""
    t0 = time.thread_time_ns()
    result = asyncio.run(main())
    return result, time.thread_time_ns() - t0


def isolated(fn):
    """Run fn in a copy of the current context: a request entered synchronously cannot leak."""
    return contextvars.copy_context().run(fn)


def run_child(code: str) -> subprocess.CompletedProcess:
    """Run a snippet in a fresh interpreter (same MCPPROF_PURE_PYTHON): a crash stays there."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


# -- which implementation runs ------------------------------------------------------------------

def test_implementation_under_test():
    if PURE_RUN:
        assert context._C is None and context.RequestTag is context.PyRequestTag
        assert sdk2.ProfilingMiddleware.__call__ is not getattr(context._C, "sdk2_call", None)
    else:
        assert context._C is not None, ("the C extension mcpprof.mcp._hooks is not importable: build it "
                                        "with `.venv/bin/python setup.py build_ext --inplace`")
        assert context.RequestTag is context._C.RequestTag
        assert context.tag_for is context._C.tag_for


@pytest.mark.skipif(PURE_RUN, reason="this is the re-run")
def test_same_tests_pass_on_the_pure_python_path():
    env = dict(os.environ, MCPPROF_PURE_PYTHON="1", MCPPROF_TEST_HOOKS_PURE_RUN="1")
    files = [str(Path(__file__)), str(Path(__file__).with_name("test_context_hooks_threads.py"))]
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rxXs", *files],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = out.stdout[-3000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    last = out.stdout.strip().splitlines()[-1]
    assert " passed" in last and "failed" not in last and "error" not in last, tail


# -- tag_for and RequestTag -----------------------------------------------------------------------
class _Named:
    def __str__(self) -> str:
        return "named-object"


@pytest.mark.parametrize("method, params, target, key", [
    ("tools/call", {"name": "search"}, "search", L.TOOL),
    ("prompts/get", {"name": "greet"}, "greet", L.PROMPT),
    ("resources/read", {"uri": "example://config"}, "example://config", L.RESOURCE_URI),
    ("resources/subscribe", {"uri": "file:///a"}, "file:///a", L.RESOURCE_URI),
    ("tools/call", SimpleNamespace(name="obj_tool"), "obj_tool", L.TOOL),
    ("resources/read", SimpleNamespace(uri="res://x"), "res://x", L.RESOURCE_URI),
    ("tools/call", {"name": 42}, "42", L.TOOL),
    ("tools/call", {"name": _Named()}, "named-object", L.TOOL),  # str() of the object
    ("tools/call", {}, "", L.TOOL),
    ("tools/call", SimpleNamespace(), "", L.TOOL),
    ("tools/call", None, "", ""),
    ("tools/list", {"name": "ignored"}, "", ""),
    ("initialize", SimpleNamespace(uri="ignored"), "", ""),
])
def test_tag_for_labels(method, params, target, key):
    t0 = time.perf_counter_ns()
    tag = context.tag_for(method, params)
    t1 = time.perf_counter_ns()
    assert type(tag) is context.RequestTag
    assert (tag.method, tag.target, tag.target_key) == (method, target, key)
    expected = [(L.METHOD, method)] + ([(key, target)] if target else [])
    assert tag.labels == tuple(sorted(expected))
    assert tag.name == (f"{method} {target}" if target else method)
    assert repr(tag) == f"<RequestTag {tag.name} id=>"
    assert (tag.request_id, tag.session_id, tag.cpu_ns, tag.duration_ns, tag.error) == ("", "", 0, 0, None)
    assert t0 <= tag.start_ns <= t1  # the perf_counter_ns clock


def test_tag_for_request_and_session_ids():
    rid = "-".join(["req", str(12345)])  # made at run time: not an interned constant
    tag = context.tag_for("tools/call", {"name": "t"}, rid, "sess-1")
    assert tag.request_id == rid and type(tag.request_id) is str
    assert tag.request_id is not rid  # a copy: the JSON parser's string is not kept
    assert tag.session_id == "sess-1"
    assert repr(tag) == f"<RequestTag tools/call t id={rid}>"
    assert context.tag_for("ping", None, 7).request_id == "7"
    assert context.tag_for("ping", None, None).request_id == ""
    assert context.tag_for("ping", None, 7, 99).session_id == "99"
    assert context.tag_for("ping", None, 7, None).session_id == ""
    with pytest.raises(Exception):
        context.tag_for("ping")


def test_tag_for_accepts_keyword_ids():
    tag = context.tag_for("tools/call", {"name": "k"}, request_id=5, session_id="s")
    assert (tag.name, tag.request_id, tag.session_id) == ("tools/call k", "5", "s")


def test_request_tag_constructed_directly():
    tag = context.RequestTag("tools/call", "x", L.TOOL, "id1", "s1", 123)
    assert (tag.method, tag.target, tag.target_key, tag.request_id, tag.session_id, tag.start_ns) == (
        "tools/call", "x", L.TOOL, "id1", "s1", 123)
    assert tag.labels == ((L.TOOL, "x"), (L.METHOD, "tools/call"))
    assert tag.name == "tools/call x" and repr(tag) == "<RequestTag tools/call x id=id1>"
    bare = context.RequestTag("initialize")
    assert (bare.name, bare.labels, bare.request_id, bare.error) == (
        "initialize", ((L.METHOD, "initialize"),), "", None)
    assert repr(bare) == "<RequestTag initialize id=>"
    bare.cpu_ns += 5
    bare.duration_ns = 7
    bare.error = "boom"
    assert (bare.cpu_ns, bare.duration_ns, bare.error) == (5, 7, "boom")
    # one shared label tuple and name strings per name (what outlives requests must not grow)
    again = context.tag_for("tools/call", {"name": "x"})
    assert again.labels is tag.labels and again.method is tag.method and again.target is tag.target


# -- request() ----------------------------------------------------------------------------------

class _Awaitable:
    def __await__(self):
        yield from asyncio.sleep(0).__await__()
        return "custom"


def test_request_passes_results_through():
    async def coro():
        await asyncio.sleep(0)
        return {"value": 1}

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 42)
        return [await context.request(coro(), context.tag_for("tools/call", {"name": "a"}), True),
                await context.request(fut, context.tag_for("tools/call", {"name": "b"}), True),
                await context.request(_Awaitable(), context.tag_for("ping", None), False)]

    assert asyncio.run(main()) == [{"value": 1}, 42, "custom"]


def test_request_meters_cpu_of_its_steps(hooks):
    burned = []

    async def work():
        for _ in range(4):
            burned.append(burn(3_000_000))
            await asyncio.sleep(0)
        return "ok"

    async def main():
        outside = burn(20_000_000)  # this loop thread's CPU outside the request is not charged
        tag = context.tag_for("tools/call", {"name": "w"}, 1)
        assert await context.request(work(), tag, True) == "ok"
        return tag, outside

    (tag, outside), total = run_measured(main)
    assert sum(burned) <= tag.cpu_ns <= total - outside
    assert tag.error is None and tag.duration_ns > 0


def test_request_state_inside_and_after():
    outer = context.tag_for("tools/call", {"name": "outer"}, 1)
    inner = context.tag_for("prompts/get", {"name": "inner"}, 2)
    seen = {}

    async def inner_body():
        task = asyncio.current_task()
        seen["inner"] = (context.CURRENT.get(), task_tag(task), context.current())
        await asyncio.sleep(0)

    async def outer_body():
        task = asyncio.current_task()
        seen["outer"] = (context.CURRENT.get(), task_tag(task))
        seen["for_thread"] = context.tag_for_thread(threading.get_ident())
        await context.request(inner_body(), inner)
        seen["restored"] = (context.CURRENT.get(), task_tag(task))
        return task

    async def main():
        task = await context.request(outer_body(), outer, True)
        return task, context.CURRENT.get(), context.inflight()

    task, after, inflight_after = asyncio.run(main())
    assert seen["outer"] == (outer, outer) and seen["for_thread"] is outer
    # the nested request is in flight on the same task (newest first), and is what the thread runs
    assert seen["inner"] == (inner, inner, inner)
    assert seen["restored"] == (outer, outer)
    assert after is None and inflight_after == [] and context.serving


class RpcError(Exception):
    def __init__(self, code):
        super().__init__("rpc")
        self.error = SimpleNamespace(code=code)


class ValidationError(Exception):
    pass


@pytest.mark.parametrize("exc, kind", [(ValueError("v"), "ValueError"), (RpcError(-32601), "-32601"),
                                       (RpcError("E1"), "E1"), (ValidationError(), "-32602"),
                                       (KeyboardInterrupt(), "KeyboardInterrupt")])
def test_request_exception_propagates_with_error_kind(exc, kind):
    assert context.error_kind(exc) == kind

    async def fail():
        await asyncio.sleep(0)
        raise exc

    async def main():
        tag = context.tag_for("tools/call", {"name": "f"}, 1)
        with pytest.raises(type(exc)):
            await context.request(fail(), tag, True)
        return tag, context.CURRENT.get(), context.inflight()

    tag, current, inflight = asyncio.run(main())
    assert tag.error == kind and current is None and not inflight


@pytest.mark.parametrize("result, tool_call, kind", [
    ({"isError": True, "content": []}, True, "tool_error"),
    ({"isError": False}, True, None),
    ({"isError": 1}, True, None),
    ({"isError": True}, False, None),  # only a tools/call result is a tool error
    (SimpleNamespace(is_error=True), True, "tool_error"),
    (SimpleNamespace(is_error=False), True, None),
    (SimpleNamespace(), True, None),
    ("text", True, None),
])
def test_tool_error_results(result, tool_call, kind):
    async def body():
        return result

    async def main():
        tag = context.tag_for("tools/call", {"name": "t"})
        assert await context.request(body(), tag, tool_call) is result
        return tag

    assert asyncio.run(main()).error == kind
    assert context.is_tool_error(result) is (kind == "tool_error" or not tool_call)


def test_cancelled_request_records_error_and_restores_state():
    started = []

    async def forever():
        started.append(asyncio.current_task())
        await asyncio.sleep(3600)

    async def main():
        tag = context.tag_for("tools/call", {"name": "slow"}, 1)

        async def handler():  # enters the request in its own task, as the SDK does
            return await context.request(forever(), tag, True)

        task = asyncio.create_task(handler())
        while not started:
            await asyncio.sleep(0)
        assert task_tag(task) is tag
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return tag, task

    tag, task = asyncio.run(main())
    assert tag.error == "CancelledError" and context.inflight() == []


def test_closed_request_is_left_as_generator_exit():
    tag = context.tag_for("tools/call", {"name": "c"}, 1)

    async def body():
        await asyncio.sleep(0)
        return 1

    def drive():
        aw = context.request(body(), tag, True)
        assert context.CURRENT.get() is tag  # entered at once

        async def awaiter():
            return await aw

        outer = awaiter()
        outer.send(None)  # suspended at body's sleep(0)
        outer.close()
        return context.CURRENT.get()

    assert isolated(drive) is None
    assert tag.error == "GeneratorExit"


def test_request_driven_by_send():
    """What a pure-Python Task, a tracer's await path or a hand-driven coroutine does."""
    tag = context.tag_for("tools/call", {"name": "s"}, 1)

    async def body():
        got = await _Yield("first")
        return ("done", got)

    def drive():
        aw = context.request(body(), tag, True)
        assert aw.send(None) == "first"
        with pytest.raises(StopIteration) as stop:
            aw.send("sent")
        return stop.value.value, context.CURRENT.get()

    assert isolated(drive) == (("done", "sent"), None)
    assert tag.error is None


class _Yield:
    def __init__(self, value):
        self.value = value

    def __await__(self):
        return (yield self.value)


def test_request_under_a_tracer_returns_its_result():
    async def body():
        await asyncio.sleep(0)
        return 7

    async def main():
        tag = context.tag_for("tools/call", {"name": "traced"}, 1)
        sys.settrace(lambda *a: None)
        try:
            result = await context.request(body(), tag, True)
        finally:
            sys.settrace(None)
        return result, tag.duration_ns > 0

    old = sys.gettrace()
    try:
        assert asyncio.run(main()) == (7, True)
    finally:
        sys.settrace(old)


CHILD_PRELUDE = """
import asyncio
from mcpprof.mcp import context
def boom():
    raise ValueError("x")
"""


@pytest.mark.parametrize("body, cancel", [
    ("try:\n        await asyncio.to_thread(boom)\n    except ValueError:\n        return 'handled'", False),
    ("try:\n        await asyncio.sleep(3600)\n    except asyncio.CancelledError:\n        return 'handled'",
     True),
], ids=["worker-error-caught", "cancellation-caught"])
def test_request_that_handles_a_thrown_exception(body, cancel):
    out = run_child(CHILD_PRELUDE + f"""
async def body():
    {body}
async def main():
    tag = context.tag_for("tools/call", {{"name": "x"}}, 1)
    async def handler():
        return await context.request(body(), tag, True)
    task = asyncio.create_task(handler())
    if {cancel}:
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
    print(await task, tag.error, context.CURRENT.get())
asyncio.run(main())
""")
    assert (out.returncode, out.stdout.strip()) == (0, "handled None None"), out.stderr[-2000:]


# -- the default: no exact CPU ---------------------------------------------------------------------

def test_default_hooks_measure_worker_threads_only():
    """Without exact CPU the loop thread's steps are not metered (samples cover them); a sync
    callable a request runs on a worker thread is."""
    context.install_thread_hooks()  # as instrument() does without exact_cpu
    assert context.installed and not context.metering and context.request_cpu_mode() == "workers"
    burned = []

    async def work():
        burn(3_000_000)
        await asyncio.sleep(0)
        if burned:
            burned.append(await asyncio.to_thread(burn, 4_000_000))
        return "ok"

    async def main():
        loop_only = context.tag_for("tools/call", {"name": "w"}, 1)
        assert await context.request(work(), loop_only, True) == "ok"
        burned.append(0)
        with_worker = context.tag_for("tools/call", {"name": "s"}, 2)
        assert await context.request(work(), with_worker, True) == "ok"
        return loop_only, with_worker, asyncio.get_running_loop().get_task_factory()

    loop_only, with_worker, factory = asyncio.run(main())
    assert loop_only.cpu_ns == 0 and loop_only.duration_ns > 0 and loop_only.error is None
    assert burned[1] <= with_worker.cpu_ns < burned[1] + 3_000_000
    assert (factory is None) is IS_C and list(context.loop_threads.values()) == ["MainThread"]


def test_enter_and_exit_request_by_hand():
    """The mcp 1.x adapter's path: enter, run the handler, leave with an error kind."""
    tag = context.tag_for("tools/call", {"name": "h"}, 1)
    context.request_sinks.append(lambda tags: None)

    async def main():
        handle = context.enter_request(tag)
        inside = (context.CURRENT.get(), [t for _, t in context.inflight()],
                  context.tag_for_thread(threading.get_ident()))
        await asyncio.sleep(0)
        context.exit_request(handle, tag, "-32602")
        return inside, context.CURRENT.get(), context.inflight()

    inside, after, inflight = asyncio.run(main())
    assert inside == (tag, [tag], tag)
    assert after is None and inflight == [] and tag.error == "-32602" and tag.duration_ns > 0
    assert list(context.finished) == [tag]


@c_only  # the pure-Python path knows requests in flight by their tasks only
def test_a_request_dropped_unawaited_leaves_the_inflight_list():
    def drive():
        aw = context.request(asyncio.sleep(0), context.tag_for("tools/call", {"name": "d"}, 1), True)
        assert [t.target for _, t in context.inflight()] == ["d"]
        aw.close()
        return context.inflight()

    assert isolated(drive) == []

    def drop():  # freed without being closed: it leaves the list when deallocated
        coro = asyncio.sleep(0)
        context.request(coro, context.tag_for("tools/call", {"name": "e"}, 1), True)
        coro.close()
        return context.inflight()

    assert isolated(drop) == []
