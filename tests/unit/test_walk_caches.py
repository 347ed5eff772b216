"""The C walk's caches in front of the sampler's tables ((code, f_lasti) -> frame id, frame ids ->
stack id): whatever they hold, a stack resolves to the frames the thread really runs; deep stacks
(past the walk's stack buffer and the sampler's depth cap), two samplers taking turns, and tables
cleared between ticks (no timing assertions)."""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, List

import pytest

from mcpprof.collect import tick as tick_mod
from mcpprof.collect.sampler import Sampler
from mcpprof.collect.stacktable import TRUNCATED_FUNCTION
from mcpprof.collect.stackutil import _W
from mcpprof.mcp import context

pytestmark = pytest.mark.skipif(tick_mod.sample_threads is None or context._C is None,
                                reason="the C extensions are not built")


def _leaf(ready: threading.Event, lock: Any) -> None:
    ready.set()
    lock.acquire()  # blocked in C: this function stays the top frame
    lock.release()


def _recurse(depth: int, ready: threading.Event, lock: Any) -> None:
    if depth == 0:
        _leaf(ready, lock)
    else:
        _recurse(depth - 1, ready, lock)


def _parked(depth: int) -> Callable[[], Any]:
    """Start a thread parked ``depth`` calls of ``_recurse`` deep; returns (ident, stop())."""
    ready, lock = threading.Event(), threading.Lock()
    lock.acquire()
    t = threading.Thread(target=_recurse, args=(depth, ready, lock), name=f"deep-{depth}", daemon=True)
    t.start()
    ready.wait()

    def stop() -> None:
        lock.release()
        t.join()
    return t.ident, stop


def _functions(sampler: Sampler, ident: int) -> List[str]:
    """Root-first function names of the stack the sampler holds for thread ``ident``."""
    sid = sampler._tstate[ident][3]
    return [f.function for f in sampler.frames_of(sid)]


@pytest.fixture
def deep():
    ident, stop = _parked(200)  # past the walk's 128-frame buffer
    yield ident
    stop()


def test_deep_stack_resolves_whole_and_truncates_like_python(deep):
    sampler = Sampler(rate_hz=100, max_depth=1000)
    for _ in range(3):  # the second and third ticks come from the caches
        sampler.sample_once()
    names = _functions(sampler, deep)
    assert names.count("_recurse") == 201 and names[-1] == "_leaf"
    capped = Sampler(rate_hz=100, max_depth=64)
    for _ in range(3):
        capped.sample_once()
    names = _functions(capped, deep)
    assert len(names) == 65 and names[-1] == TRUNCATED_FUNCTION
    assert names[:3] == ["Thread._bootstrap", "Thread._bootstrap_inner", "Thread.run"]
    assert set(names[3:-1]) == {"_recurse"}


def test_two_samplers_taking_turns_keep_their_own_ids(deep):
    """Each sampler interns in its own order, so the same stack has other ids in each: the caches
    must follow the sampler whose tables they are given."""
    shallow, stop = _parked(3)
    try:
        a, b = Sampler(rate_hz=100), Sampler(rate_hz=100)
        b._intern_location(sys._getframe())  # b's frame ids start one later than a's
        for _ in range(4):
            a.sample_once()
            b.sample_once()
        for s in (a, b):
            assert _functions(s, deep)[-2:] == ["_recurse", "_leaf"]
            assert _functions(s, shallow)[-5:] == ["_recurse"] * 4 + ["_leaf"]
    finally:
        stop()


def test_tables_cleared_between_ticks(deep):
    sampler = Sampler(rate_hz=100)
    sampler.sample_once()
    before = _functions(sampler, deep)
    for _ in range(3):
        sampler._clear_tables()  # as reset() does past half the caps: new dicts, ids from 0
        for st in sampler._tstate.values():
            st[3] = -1
        sampler.sample_once()
        sampler.sample_once()
        assert _functions(sampler, deep) == before


def _distinct_functions(n: int) -> List[Any]:
    """``n`` functions, each its own code object: ``f{k}(out, lock)`` reports ``k`` and blocks on lock."""
    namespace: dict = {}
    for k in range(n):
        exec(f"def f{k}(out, lock):\n    out.put({k})\n    lock.acquire()\n", namespace)
    return [namespace[f"f{k}"] for k in range(n)]


def test_tables_grow_past_their_first_size():
    """A thread parked in 300 different functions in turn: 300 new stacks (the stack table starts
    with 256 slots, kept half full) and a location table fed by a 700-deep chain of distinct
    functions (1 024 slots at first): both grow, and every stack still resolves to its frames."""
    import queue

    funcs = _distinct_functions(300)
    out: "queue.Queue[int]" = queue.Queue()
    locks = [threading.Lock() for _ in funcs]
    for lock in locks:
        lock.acquire()
    worker = threading.Thread(target=lambda: [f(out, lock) for f, lock in zip(funcs, locks)], daemon=True)
    sampler = Sampler(rate_hz=100)
    worker.start()
    try:
        for k in range(len(funcs)):
            assert out.get(timeout=10) == k
            while sampler._tstate.get(worker.ident, [None] * 4)[3] in (None, -1) or \
                    _functions(sampler, worker.ident)[-1] != f"f{k}":
                sampler.sample_once()  # until the worker is seen blocked in f{k}
            locks[k].release()
    finally:
        for lock in locks:
            if lock.locked():
                lock.release()
        worker.join(timeout=10)

    assert _W.cache_sizes()["stack_slots"] > 256  # grew

    leaf = _distinct_functions(1)[0]
    namespace = {"f0": leaf}
    src = "".join(f"def c{k}(out, lock):\n    c{k + 1}(out, lock)\n" for k in range(699))
    exec(src + "def c699(out, lock):\n    f0(out, lock)\n", namespace)
    deep_out: "queue.Queue[int]" = queue.Queue()
    lock = threading.Lock()
    lock.acquire()
    t = threading.Thread(target=namespace["c0"], args=(deep_out, lock), daemon=True)
    t.start()
    try:
        deep_out.get(timeout=10)
        big = Sampler(rate_hz=100, max_depth=1000)
        while big._tstate.get(t.ident, [None] * 4)[3] in (None, -1) or _functions(big, t.ident)[-1] != "f0":
            big.sample_once()
        assert _functions(big, t.ident)[-701:] == [f"c{k}" for k in range(700)] + ["f0"]
        assert _W.cache_sizes()["location_slots"] > 1024  # grew
    finally:
        lock.release()
        t.join(timeout=10)


def _gen_chain(depth: int, ready: threading.Event, lock: Any) -> None:
    """A parked stack through a generator and a finished caller's frame object on the way."""
    def gen():
        yield _recurse(depth, ready, lock)
    next(gen())


@pytest.mark.skipif(sys.version_info[:2] not in ((3, 11), (3, 12)), reason="the frame-chain walk is for 3.11-3.12")
def test_a_known_stack_is_walked_without_making_frame_objects():
    """Once its locations are known, a fresh stack of the same code is read from the interpreter's
    frames: the same frames as the first time, and no frame object made per caller (the public
    API's walk makes one for every caller that has none, which the server then frees)."""
    sampler = Sampler(rate_hz=100, max_depth=1000)
    ident, stop = _parked(150)
    sampler.sample_once()
    first = _functions(sampler, ident)
    stop()
    ident, stop = _parked(150)  # the same code and lines, new frames: none has a frame object yet
    try:
        sampler.sample_once()  # the thread is new: its first sample goes through Python
        ident2, stop2 = _parked(150)
        try:
            import gc
            gc.collect()
            blocks = sys.getallocatedblocks()
            sampler.sample_once()  # ident2: known locations, new frames
            made = sys.getallocatedblocks() - blocks
            assert _functions(sampler, ident2) == first
        finally:
            stop2()
    finally:
        stop()
    assert made < 60, made  # 150 callers walked; the public API would have made ~150 frame objects


def test_generator_frames_resolve_like_python():
    """A stack through a generator: the C walk and the Python walk give the same frames."""
    ready, lock = threading.Event(), threading.Lock()
    lock.acquire()
    t = threading.Thread(target=_gen_chain, args=(5, ready, lock), daemon=True)
    t.start()
    ready.wait()
    try:
        c_walk = Sampler(rate_hz=100)
        c_walk.sample_once()
        c_walk.sample_once()
        frames = sys._current_frames()[t.ident]
        python = []
        f = frames
        while f is not None:
            python.append(f.f_code.co_qualname)
            f = f.f_back
        assert _functions(c_walk, t.ident) == python[::-1]
    finally:
        lock.release()
        t.join()
