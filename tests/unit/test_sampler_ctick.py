"""The sampler's C tick (``mcpprof.collect._walk.sample_threads``) against its Python loop, on the
same real threads: the same samples, labels, hook calls and overflow; and which threads it leaves
to Python (no timing assertions)."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List

import pytest

from mcpprof.collect import tick as tick_mod
from mcpprof.collect.sampler import Sampler
from mcpprof.mcp import context
from mcpprof.model import labels as L
from .sampler_fakes import MS, by_stack

pytestmark = pytest.mark.skipif(tick_mod.sample_threads is None or context._C is None,
                                reason="the C extensions are not built")

NAMES = ("ct-idle", "ct-blocked", "ct-tagged")


class Ticking:
    """A wall clock read once per tick: each tick is 10 ms after the previous one."""

    def __init__(self) -> None:
        self.t = 1_000_000 * MS

    def __call__(self) -> int:
        self.t += 10 * MS
        return self.t


def _idle(ready: threading.Event, release: threading.Event) -> None:
    ready.set()
    release.wait()  # an idle leaf (threading.py Condition.wait)


def _blocked_inner(ready: threading.Event, lock: Any) -> None:
    ready.set()
    lock.acquire()  # blocked in C: the top frame is this function, not an idle leaf
    lock.release()


def _blocked(ready: threading.Event, lock: Any) -> None:
    _blocked_inner(ready, lock)


def _tagged(ready: threading.Event, lock: Any) -> None:
    context.CURRENT.set(context.tag_for("tools/call", {"name": "ctick"}, 7))
    _blocked_inner(ready, lock)


@pytest.fixture
def threads():
    """Three threads parked for the test: waiting on an Event, blocked on a lock, blocked on a
    lock inside a request."""
    release, lock = threading.Event(), threading.Lock()
    lock.acquire()
    started = []
    for name, target, arg in zip(NAMES, (_idle, _blocked, _tagged), (release, lock, lock)):
        ready = threading.Event()
        t = threading.Thread(target=target, args=(ready, arg), name=name, daemon=True)
        t.start()
        ready.wait()
        started.append(t)
    time.sleep(0.05)  # each is now blocked where it will stay
    yield {t.name: t.ident for t in started}
    release.set()
    lock.release()
    for t in started:
        t.join()


def _ours(profile) -> Dict[Any, List[int]]:
    return {k: v for k, v in by_stack(profile).items() if dict(k[1]).get("thread.name") in NAMES}


def _spy_on_the_c_tick(monkeypatch) -> List[List[int]]:
    """Per tick from now on, the idents the C tick left to the Python loop."""
    slow: List[List[int]] = []
    real = tick_mod.sample_threads

    def spy(*args):
        out = real(*args)
        slow.append(list(args[-2]))
        return out

    monkeypatch.setattr(tick_mod, "sample_threads", spy)
    return slow


def _sample(monkeypatch, c_tick: bool, ticks: int = 6, hook: Any = None, **kwargs) -> Dict[str, Any]:
    """Run ``ticks`` ticks with the C tick or the Python loop; what came out."""
    if c_tick:
        slow = _spy_on_the_c_tick(monkeypatch)
    else:
        slow = []
        monkeypatch.setattr(tick_mod, "sample_threads", None)
    s = Sampler(clock=Ticking(), **kwargs)
    calls: List[tuple] = []
    s.sample_hook = hook or (lambda ident, sid, labels, wall, cpu: calls.append(
        (tuple(f.function for f in s.frames_of(sid)), labels, wall, cpu)))
    for _ in range(ticks):
        s.sample_once()
    p = s.snapshot()
    return {"profile": p, "slow": slow, "hook": sorted(c for c in calls if dict(c[1]).get("thread.name") in NAMES)}


def test_the_c_tick_gives_what_the_python_loop_gives(threads, monkeypatch):
    c = _sample(monkeypatch, True)
    py = _sample(monkeypatch, False)
    assert _ours(c["profile"]) == _ours(py["profile"])
    ours = _ours(c["profile"])
    assert len(ours) == 3 and all(v[0] == 6 and v[1] == 60 * MS and v[2] == 0 for v in ours.values())
    tagged = [dict(k[1]) for k in ours if dict(k[1])["thread.name"] == "ct-tagged"]
    assert tagged[0][L.TOOL] == "ctick" and tagged[0][L.METHOD] == "tools/call"
    blocked = [k[0] for k in ours if dict(k[1])["thread.name"] == "ct-blocked"]
    assert blocked[0][-2:] == ("_blocked", "_blocked_inner")
    assert c["profile"].metadata["errors"] == py["profile"].metadata["errors"] == 0
    # the hook saw each labelled sample once, the same way (before serving: start-up labels too)
    assert c["hook"] == py["hook"] and len(c["hook"]) == 18
    assert sum(dict(call[1]).get(L.TOOL) == "ctick" for call in c["hook"]) == 6
    # new threads go to Python on the first tick; after that the C tick takes ours
    assert set(threads.values()) <= set(c["slow"][0])
    assert not any(set(threads.values()) & set(later) for later in c["slow"][1:])


def test_the_c_tick_sends_samples_beyond_a_full_table_to_the_overflow_stack(threads, monkeypatch):
    c = _sample(monkeypatch, True, max_stacks=2)
    py = _sample(monkeypatch, False, max_stacks=2)
    assert by_stack(c["profile"]) == by_stack(py["profile"])
    assert c["profile"].metadata["overflow_samples"] == py["profile"].metadata["overflow_samples"] > 0


def test_a_failing_hook_is_counted_as_an_error_and_the_samples_stay(threads, monkeypatch):
    def hook(ident, sid, labels, wall, cpu):
        raise ValueError("hook broke")

    c = _sample(monkeypatch, True, hook=hook)
    py = _sample(monkeypatch, False, hook=hook)
    assert _ours(c["profile"]) == _ours(py["profile"]) and len(_ours(c["profile"])) == 3
    for out in (c, py):
        meta = out["profile"].metadata
        assert meta["errors"] >= 18 and meta["last_error"] == "ValueError: hook broke"


def _spin(ready: threading.Event, stop: threading.Event) -> None:
    ready.set()
    x = 0
    while not stop.is_set():
        x += 1


def test_the_c_tick_walks_a_running_thread_and_interns_its_new_stacks(monkeypatch):
    stop, ready = threading.Event(), threading.Event()
    t = threading.Thread(target=_spin, args=(ready, stop), name="ct-spin", daemon=True)
    t.start()
    ready.wait()
    try:
        slow = _spy_on_the_c_tick(monkeypatch)
        s = Sampler()
        for _ in range(30):
            s.sample_once()
            time.sleep(0.002)  # the spinner runs between ticks
        p = s.snapshot()
    finally:
        stop.set()
        t.join()
    spin = [(smp, frames) for smp, frames in p.iter_stacks() if smp.label("thread.name") == "ct-spin"]
    assert sum(smp.values[0] for smp, _ in spin) == 30
    assert all(any(f.function == "_spin" for f in frames) for _, frames in spin)
    assert sum(smp.values[p.value_index("cpu")] for smp, _ in spin) > 0
    assert not any(t.ident in later for later in slow[1:])  # new locations interned from C
    assert p.metadata["errors"] == 0


def test_the_c_tick_arguments_follow_the_tagger(threads, monkeypatch):
    """The C tick's arguments are kept between ticks but made again for another tagger; a tagger
    without ``capture_now`` sends every thread through the Python loop."""
    s = Sampler(clock=Ticking())
    s.sample_once()
    first = s._fast_args()
    assert first is not None and first is s._fast_args()  # kept: one read per tick
    calls = []
    default = s.tagger

    def plain(ident):  # another tagger, with no capture_now: the Python loop does all
        calls.append(ident)
        return default(ident)

    s._tagger = plain
    assert s._fast_args() is None
    s.sample_once()
    assert {threads["ct-blocked"], threads["ct-tagged"]} <= set(calls)  # (the idle one keeps its key)
    s._tagger = default
    again = s._fast_args()
    assert again is not None and again[0] is default.capture_now
    s.sample_once()
    p = s.snapshot()
    assert _ours(p) and p.metadata.get("errors", 0) == 0
