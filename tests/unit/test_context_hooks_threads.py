"""The per-request hook layer of mcpprof.mcp.context: the finished queue, the task factory, the
to_thread hooks, the mcp 2.x ProfilingMiddleware (with the real SDK, in process) and what samplers read.

Shares fixtures and helpers with test_context_hooks.py, which also re-runs this file on the
pure-Python path (MCPPROF_PURE_PYTHON=1).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import json
import os
import sys
import threading
from types import SimpleNamespace

import anyio
import anyio.to_thread
import pytest

from mcpprof.mcp import context, sdk2

from .test_context_hooks import (IS_C, burn, c_only, clean_state, hooks,  # noqa: F401 (fixtures)
                                 run_child, run_measured, task_tag)


async def _probe():
    return task_tag(asyncio.current_task()), context.CURRENT.get()


# -- the finished queue and the sinks -------------------------------------------------------------

def _run_requests(names):
    async def body(name):
        await asyncio.sleep(0)
        if name == "bad":
            raise ValueError(name)
        return name

    async def main():
        tags = []
        for i, name in enumerate(names):
            tag = context.tag_for("tools/call", {"name": name}, i)
            tags.append(tag)
            try:
                await context.request(body(name), tag, True)
            except ValueError:
                pass
        return tags

    return asyncio.run(main())


def test_finished_requests_are_queued_and_drained_in_order():
    got, other = [], []

    def failing(tags):
        raise RuntimeError("a broken sink")

    context.request_sinks.extend([failing, lambda tags: got.append(list(tags)), lambda tags: other.extend(tags)])
    tags = _run_requests(["a", "bad", "c"])
    assert list(context.finished) == tags and not got
    context.drain()
    assert got == [tags] and other == tags  # one batch, oldest first, every sink
    assert [t.error for t in tags] == [None, "ValueError", None] and all(t.duration_ns > 0 for t in tags)
    assert not context.finished
    context.drain()  # an empty queue: nothing happens
    assert len(got) == 1


def test_nothing_is_queued_without_sinks():
    tags = _run_requests(["a", "b"])
    assert not context.finished and all(t.duration_ns > 0 for t in tags)


def test_reset_clears_state():
    tag = context.tag_for("ping", None)
    context.request_sinks.append(lambda tags: None)
    _run_requests(["x"])
    context.task_tags[object()] = tag
    context.thread_tags[1] = tag
    assert context.finished and context.serving and (IS_C or context.loops)
    context.reset()
    assert not (context.finished or context.loops or context.task_tags or context.thread_tags)
    assert context.serving is False


# -- the task factory ---------------------------------------------------------------------------

def test_spawned_task_carries_the_tag_and_is_metered(hooks):
    seen = {}

    async def child():
        seen["child"] = await _probe()
        seen["burned"] = burn(10_000_000)
        await asyncio.sleep(0)
        return asyncio.current_task()

    async def outside():
        seen["outside"] = await _probe()
        burn(10_000_000)

    async def main():
        tag = context.tag_for("tools/call", {"name": "spawner"}, 1)

        async def body():  # burns nothing itself: what it is charged comes from the child task
            return await asyncio.create_task(child())

        spawned = await context.request(body(), tag, True)
        await asyncio.sleep(0)
        charged = tag.cpu_ns
        await asyncio.create_task(outside())  # the factory is installed, the task is outside requests
        return tag, spawned, charged, asyncio.get_running_loop().get_task_factory()

    (tag, spawned, charged, factory), total = run_measured(main)
    assert getattr(factory, "_mcpprof", False)
    assert seen["child"] == (tag, tag) and seen["outside"] == (None, None)
    assert seen["burned"] <= charged <= total - 10_000_000
    assert tag.cpu_ns == charged and spawned not in context.task_tags


def test_spawned_task_that_handles_a_failed_future(hooks):
    async def child():
        fut = asyncio.get_running_loop().create_future()
        fut.get_loop().call_soon(fut.set_exception, ValueError("failed"))
        try:
            await fut
        except ValueError:
            pass
        await asyncio.sleep(0)
        return "recovered"

    async def main():
        async def body():
            return await asyncio.create_task(child())

        return await context.request(body(), context.tag_for("tools/call", {"name": "t"}, 1))

    assert asyncio.run(main()) == "recovered"


def test_explicit_task_context_is_honoured(hooks):
    async def main():
        plain = contextvars.copy_context()  # before any request
        tag = context.tag_for("tools/call", {"name": "ctx"}, 1)

        async def body():
            return contextvars.copy_context(), await asyncio.create_task(_probe(), context=plain)

        inside, untagged = await context.request(body(), tag)
        tagged = await asyncio.create_task(_probe(), context=inside)  # spawned outside the request
        return tag, untagged, tagged

    tag, untagged, tagged = asyncio.run(main())
    assert untagged == (None, None) and tagged == (tag, tag)


def test_previous_task_factory_is_chained_and_restored(hooks):
    calls = []

    def custom(loop, coro, **kwargs):
        calls.append(kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_task_factory(custom)
        tag = context.tag_for("tools/call", {"name": "chained"}, 1)
        ctx = contextvars.copy_context()

        async def body():
            return await asyncio.create_task(_probe())

        seen = await context.request(body(), tag)
        ours = loop.get_task_factory()
        via_ctx = await asyncio.create_task(_probe(), context=ctx)
        context.remove_task_factories()
        return tag, seen, ours, via_ctx, ctx, loop.get_task_factory()

    tag, seen, ours, via_ctx, ctx, restored = asyncio.run(main())
    assert seen == (tag, tag) and via_ctx == (None, None)
    assert ours is not custom and ours._mcpprof and restored is custom
    assert calls[:2] == [{}, {"context": ctx}]  # (then asyncio.run's own shutdown tasks)
    if IS_C:
        assert ours.previous is custom


# -- the to_thread hooks ------------------------------------------------------------------------

@pytest.mark.parametrize("runner", ["asyncio", "anyio"])
def test_to_thread_inside_a_request_is_tagged_and_metered(hooks, runner):
    record = []
    limiter = anyio.CapacityLimiter(1)

    def work(ns, **kwargs):
        record.append((context.tag_for_thread(threading.get_ident()), threading.get_ident(), kwargs,
                       limiter.borrowed_tokens))
        record.append(burn(ns))
        return "w"

    async def body():
        if runner == "asyncio":
            return await asyncio.to_thread(work, 8_000_000, flag="x")
        return await anyio.to_thread.run_sync(work, 8_000_000, limiter=limiter, abandon_on_cancel=False)

    async def main():
        tag = context.tag_for("tools/call", {"name": "sync"}, 1)
        return tag, await context.request(body(), tag, True)

    (tag, result), loop_cpu = run_measured(main)
    (seen, ident, kwargs, borrowed), burned = record
    assert result == "w" and seen is tag and ident != threading.get_ident()
    assert ident not in context.thread_tags and context.tag_for_thread(ident) is None
    assert (kwargs, borrowed) == (({"flag": "x"}, 0) if runner == "asyncio" else ({}, 1))
    assert burned <= tag.cpu_ns <= burned + loop_cpu + 5_000_000  # the worker's CPU, charged once


@pytest.mark.parametrize("runner", ["asyncio", "anyio"])
def test_to_thread_outside_a_request_passes_through(hooks, runner):
    def work(a, b=0):
        return context.tag_for_thread(threading.get_ident()), context.CURRENT.get(), a + b

    async def main():
        if runner == "asyncio":
            return await asyncio.to_thread(work, 1, b=2)
        return await anyio.to_thread.run_sync(work, 1, 2)

    assert asyncio.run(main()) == (None, None, 3) and not context.thread_tags


def test_thread_hooks_install_and_uninstall():
    def names():
        return asyncio.to_thread, sys.modules["asyncio.threads"].to_thread, anyio.to_thread.run_sync

    originals = names()
    context.install_thread_hooks(exact=True)
    context.install_thread_hooks()  # idempotent
    hooked = names()
    assert context.metering and hooked[0] is hooked[1]
    assert all(h is not o for h, o in zip(hooked, originals))
    assert hooked[0].__wrapped__ is originals[0] and hooked[2].__wrapped__ is originals[2]
    context.uninstall_thread_hooks()
    assert all(n is o for n, o in zip(names(), originals))
    assert not context.metering and not context._thread_patches
    assert context.tagged(len) is len  # outside a request nothing is wrapped


@pytest.mark.parametrize("exact", [False, True])
def test_running_worker_is_visible_to_samplers(exact):
    context.install_thread_hooks(exact=exact)
    started, proceed, idents = threading.Event(), threading.Event(), []

    def work():
        idents.append(threading.get_ident())
        started.set()
        proceed.wait(60)

    async def main():
        tag = context.tag_for("tools/call", {"name": "blocked"}, 1)

        async def body():
            return await asyncio.to_thread(work)

        async def handler():
            return await context.request(body(), tag, True)

        task = asyncio.create_task(handler())
        try:
            while not started.is_set():
                await asyncio.sleep(0.001)
            ident = idents[0]
            during = context.tag_for_thread(ident), context.thread_tag_map().get(ident)
            snap = context._C.frames_and_tags() if IS_C else None
        finally:
            proceed.set()
        await task
        return tag, ident, during, snap

    tag, ident, during, snap = asyncio.run(main())
    assert during == (tag, tag) and ident not in context.thread_tags
    if IS_C:
        frames, tags = snap
        assert tags[ident] is tag and ident in frames


@c_only
def test_frames_and_tags():
    tag = context.tag_for("tools/call", {"name": "x"})
    context.thread_tags[12345] = tag
    frames, tags = context._C.frames_and_tags()
    assert set(frames) == set(sys._current_frames())
    assert frames[threading.get_ident()].f_code.co_name == "test_frames_and_tags"
    assert tags == {12345: tag} and tags is not context.thread_tags
    tags.clear()
    assert context.thread_tags == {12345: tag}


@c_only
def test_samplers_read_the_loop_thread_and_spawned_tasks_from_contexts():
    """No hooks beyond the request itself: another thread finds the request of the event-loop
    thread (inside a request step, and inside a task the request spawned) in its context."""
    loop_ident = threading.get_ident()
    seen = []

    def look():
        def read():
            seen.append((context.thread_tag_map().get(loop_ident), context.tag_for_thread(loop_ident)))
        t = threading.Thread(target=read)
        t.start()
        t.join()  # the loop thread waits here, inside the step, with its context current

    async def spawned():
        look()

    async def main():
        tag = context.tag_for("tools/call", {"name": "ctx"}, 1)

        async def body():
            look()
            await asyncio.create_task(spawned())
            return tag

        await context.request(body(), tag, True)
        look()  # after the request: outside any
        return tag, asyncio.get_running_loop().get_task_factory()

    tag, factory = asyncio.run(main())
    assert factory is None and context._thread_patches == []
    assert seen == [(tag, tag), (tag, tag), (None, None)]


# -- ProfilingMiddleware --------------------------------------------------------------------------

def test_middleware_tags_the_request():
    mw = sdk2.ProfilingMiddleware()
    context.request_sinks.append(lambda tags: None)

    def call_next_for(ctx):
        async def handler():
            await asyncio.sleep(0)
            return {"isError": True, "tag": context.CURRENT.get()}

        def call_next(got):
            assert got is ctx
            return handler()
        return call_next

    async def main():
        a = SimpleNamespace(method="tools/call", params={"name": "t"}, request_id=5)
        b = SimpleNamespace(method="tools/list", params=None, request_id="r-1")
        return (await mw(a, call_next_for(a)))["tag"], (await mw(b, call_next_for(b)))["tag"]

    call, listing = asyncio.run(main())
    assert (call.name, call.request_id, call.error) == ("tools/call t", "5", "tool_error")
    assert (listing.name, listing.request_id, listing.error) == ("tools/list", "r-1", None)
    assert list(context.finished) == [call, listing]


def test_middleware_runs_untagged_when_ctx_lacks_attributes():
    mw = sdk2.ProfilingMiddleware()

    async def handler():
        await asyncio.sleep(0)
        return "ran", context.CURRENT.get(), context.inflight()

    async def main():
        ctxs = [object(), SimpleNamespace(method="tools/call"),
                SimpleNamespace(method="tools/call", params={})]
        return [await mw(ctx, lambda ctx: handler()) for ctx in ctxs]

    assert asyncio.run(main()) == [("ran", None, [])] * 3


def test_middleware_call_next_raising_leaves_no_state():
    mw = sdk2.ProfilingMiddleware()

    def call_next(ctx):
        raise LookupError("no handler")

    async def main():
        with pytest.raises(LookupError):
            mw(SimpleNamespace(method="tools/call", params={"name": "x"}, request_id=1), call_next)
        return context.CURRENT.get(), context.inflight()

    assert asyncio.run(main()) == (None, [])


async def async_boom(x: int = 1) -> int:
    """An async tool that raises."""
    raise ValueError("async boom")


def _drive_sdk(tmp_path, calls, exact=True):
    """The example server, instrumented (with exact CPU or not), driven by the SDK's in-process
    client; the sink's records and the example's burn report (CPU the tools measured themselves)."""
    from mcp import Client

    from mcpprof.examples import server as example

    context.install_thread_hooks(exact=exact)
    server = example.build_server()
    server.tool()(async_boom)
    assert sdk2.instrument(server) and sdk2.is_instrumented(server)
    records = []
    context.request_sinks.append(
        lambda tags: records.extend((tag.name, tag.error, tag.cpu_ns, True) for tag in tags))
    report = tmp_path / "burn.jsonl"
    example._report_fd = os.open(report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def drive():
        async with Client(server) as client:
            for kind, name, args in calls:
                try:
                    await getattr(client, kind)(*([name] if args is None else [name, args]))
                except Exception as exc:  # the missing resource: a JSON-RPC error
                    assert "Unknown resource" in str(exc)

    try:
        asyncio.run(drive())
    finally:
        os.close(example._report_fd)
        example._report_fd = None
        sdk2.uninstall(server)
        context.uninstall_thread_hooks()
    context.drain()
    assert not sdk2.is_instrumented(server)
    burns = collections.Counter()
    for line in report.read_text().splitlines():
        burns[json.loads(line)["tool"]] += json.loads(line)["cpu_ns"]
    return records, burns


CALLS = ([("call_tool", "cpu_async", {"n": 20})] * 3 + [("call_tool", "cpu_sync", {"n": 20})] * 3
         + [("call_tool", "spawn", {"n": 20})] * 2 + [("call_tool", "echo", {"text": "x"})] * 2
         + [("call_tool", "async_boom", {}), ("read_resource", "example://config", None),
            ("read_resource", "example://missing", None), ("get_prompt", "greet", {"name": "a"})])


@pytest.mark.parametrize("exact", [True, False])
def test_profiling_middleware_end_to_end(tmp_path, exact):
    records, burns = _drive_sdk(tmp_path, CALLS, exact)
    assert all(same for *_, same in records)
    counts = collections.Counter(name for name, *_ in records)
    errors = collections.defaultdict(set)
    cpu = collections.Counter()
    for name, error, cpu_ns, _ in records:
        errors[name].add(error)
        cpu[name] += cpu_ns
    for tool, n in [("cpu_async", 3), ("cpu_sync", 3), ("spawn", 2), ("echo", 2), ("async_boom", 1)]:
        assert counts[f"tools/call {tool}"] == n, counts
    assert counts["resources/read example://config"] == counts["resources/read example://missing"] == 1
    assert counts["prompts/get greet"] == 1
    assert errors["tools/call async_boom"] == {"tool_error"}
    assert errors["resources/read example://missing"] == {"-32602"}
    for name in ("tools/call cpu_async", "tools/call cpu_sync", "tools/call spawn", "tools/call echo",
                 "prompts/get greet", "resources/read example://config"):
        assert errors[name] == {None}, (name, errors[name])
    for tool in ("cpu_async", "cpu_sync", "spawn"):  # loop thread, worker thread, spawned task
        assert burns[tool] > 0, burns
        if exact:
            assert cpu[f"tools/call {tool}"] >= burns[tool], (tool, cpu, burns)
    if not exact:  # only worker-thread code is measured
        assert cpu["tools/call cpu_sync"] >= burns["cpu_sync"]
        assert cpu["tools/call cpu_async"] == cpu["tools/call spawn"] == cpu["tools/call echo"] == 0
    assert not context.task_tags and not context.thread_tags


def test_sdk_sync_tool_raising_records_a_tool_error():
    out = run_child("""
import asyncio
from mcp import Client
from mcpprof.examples.server import build_server
from mcpprof.mcp import context, sdk2
def sync_boom(x: int = 1) -> int:
    raise ValueError("sync boom")
server = build_server()
server.tool()(sync_boom)
sdk2.instrument(server)
errors = []
context.request_sinks.append(lambda tags: errors.extend((tag.name, tag.error) for tag in tags))
async def drive():
    async with Client(server) as client:
        return (await client.call_tool("sync_boom", {})).is_error
print(asyncio.run(drive()))
context.drain()
print(dict(errors)["tools/call sync_boom"])
""")
    assert (out.returncode, out.stdout.split()) == (0, ["True", "tool_error"]), out.stderr[-1500:]
