"""Sync calls on worker threads that no tick catches mid-call (they fit in one hold of the GIL):
their CPU reaches their request through the ``to_thread`` wrappers' notes (no timing assertions)."""

from __future__ import annotations

import functools
import threading
import time

import anyio
import pytest

from mcpprof.collect.sampler import Sampler
from mcpprof.mcp import context, workercalls
from mcpprof.model import labels as L


def short_call(n: int) -> int:
    """About a millisecond of pure Python."""
    return sum(i * i for i in range(n))


def _worker_cpu_by_leaf(profile, tool: str):
    out = {}
    cpu = profile.sample_types.index(next(t for t in profile.sample_types if t.type == "cpu"))
    for sample, stack in profile.iter_stacks():
        labels = dict(sample.labels)
        if labels.get(L.TOOL) == tool and labels.get(L.THREAD_NAME) != "MainThread":
            leaf = stack[-1].function if stack else None
            out[leaf] = out.get(leaf, 0) + sample.values[cpu]
    return out


def test_a_noted_call_is_charged_once_to_its_request_on_its_function():
    """The part of a call after the thread's last CPU reading goes to the request, on a frame of
    the called function (through functools.partial), and the thread's next delta leaves it out."""
    s = Sampler(rate_hz=100)
    ident = threading.get_ident() + 1  # a worker the sampler has read before, at CPU 1 000
    s._tstate[ident] = [1_000, 0, -1, -1, 0, False, None, None, None]
    s._names[ident] = "AnyIO worker thread"
    tag = context.tag_for("tools/call", {"name": "short"}, 7)
    call = functools.partial(short_call, 10)
    s._charge_worker_calls([(ident, [(call, tag, 400, 900),       # before the reading: sampled then
                                     (call, tag, 800, 1_500),     # straddles it: 500 after
                                     (call, tag, 2_000, 2_300)])])  # after it: all 300
    assert s._tstate[ident][0] == 1_800  # the next delta starts after the 800 charged
    [(key, acc)] = [(k, v) for k, v in s._agg.items()]
    assert acc == [0, 0, 800]  # CPU only: no sample count, no wall time
    [frame] = s.frames_of(key[0])
    assert frame.function == "short_call" and frame.line == short_call.__code__.co_firstlineno
    assert dict(key[1])[L.TOOL] == "short" and dict(key[1])[L.THREAD_NAME] == "AnyIO worker thread"


def test_a_thread_not_sampled_yet_keeps_its_cpu_for_its_first_sample():
    s = Sampler(rate_hz=100)
    tag = context.tag_for("tools/call", {"name": "short"}, 7)
    s._charge_worker_calls([(12345, [(short_call, tag, 0, 500)])])
    assert not s._agg


@pytest.fixture
def thread_hooks():
    context.install_thread_hooks()
    yield
    context.uninstall_thread_hooks()


def test_short_sync_calls_reach_their_request_without_double_counting(thread_hooks):
    """Many ~1 ms calls through anyio.to_thread under a request, sampled at 200 Hz from the
    signal timer: the request's CPU on the worker lands on the called function, and what the
    profile charges there is no more than the wrapper measured."""
    tag = context.tag_for("tools/call", {"name": "short"}, 9)

    async def drive() -> None:
        token = context.CURRENT.set(tag)
        try:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                await anyio.to_thread.run_sync(functools.partial(short_call, 20_000))
        finally:
            context.CURRENT.reset(token)

    s = Sampler(rate_hz=200)
    s.start()
    try:
        anyio.run(drive)
    finally:
        s.stop()
    assert context.worker_calls == {} and workercalls.watchers == 0  # stopped watching
    by_leaf = _worker_cpu_by_leaf(s.snapshot(), "short")
    charged = sum(by_leaf.values())
    assert tag.cpu_ns > 0 and by_leaf.get("short_call", 0) > 0
    assert charged <= tag.cpu_ns * 1.05 + 5_000_000  # sampled mid-call plus charged: not twice
    assert charged >= tag.cpu_ns * 0.5  # most of it reached the request
