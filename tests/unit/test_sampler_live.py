"""The in-process sampler on real threads, a fork and the signal timer (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from mcpprof.collect.sampler import Sampler
from mcpprof.collect import timer
from mcpprof.collect.timer import _late_alarm
from mcpprof.mcp import context
from mcpprof.model import labels as L
from .sampler_fakes import MAIN, MS, Clock, Code, Env, by_stack, chain


def wait_here(ready, release):
    ready.set()
    release.wait()  # LINE: wait_here


def _blocked_thread():
    ready, release = threading.Event(), threading.Event()
    t = threading.Thread(target=wait_here, args=(ready, release), name="blocked", daemon=True)
    t.start()
    ready.wait()
    return t, release


def test_real_frames_give_the_right_file_and_line():
    import inspect

    src, first = inspect.getsourcelines(wait_here)
    line = first + next(i for i, text in enumerate(src) if "# LINE: wait_here" in text)
    t, release = _blocked_thread()
    try:
        s = Sampler(tagger=lambda i: None, clock=Clock())
        for _ in range(3):  # first walk, then the idle shortcut
            s.sample_once()
        s2 = Sampler(tagger=lambda i: None, clock=Clock(), cpu_clock=lambda i: None)
        for _ in range(3):  # no CPU clock: re-walked every tick through the raw-stack cache
            s2.sample_once()
    finally:
        release.set()
        t.join()
    for p in (s.snapshot(), s2.snapshot()):
        blocked = [(smp, fr) for smp, fr in p.iter_stacks() if smp.label("thread.name") == "blocked"]
        assert len(blocked) == 1  # one stack, three samples
        smp, frames = blocked[0]
        assert smp.values[0] == 3
        (frame,) = [f for f in frames if f.function == "wait_here"]
        assert frame.file == __file__ and frame.line == line
        assert frames[0].function.endswith("_bootstrap")  # root first (Thread._bootstrap on 3.11+)
        assert p.metadata["errors"] == 0


# -- real threads ----------------------------------------------------------------------------------

def burn_cpu_for_test(seconds, started):
    started.set()
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def _run_burner(sampler, target):
    started = threading.Event()
    t = threading.Thread(target=target, args=(started,), name="burner")
    t.start()
    started.wait()
    sampler.start()
    t.join()
    sampler.stop()
    return sampler.snapshot()


def _burn_share(profile):
    cpu = profile.value_index("cpu")
    total = profile.total("cpu")
    burn = sum(s.values[cpu] for s, frames in profile.iter_stacks()
               if any(f.function == "burn_cpu_for_test" for f in frames))
    return burn, total


def test_real_thread_cpu_is_attributed_to_the_burning_function():
    p = _run_burner(Sampler(500, tagger=lambda i: None), lambda started: burn_cpu_for_test(0.3, started))
    burn, total = _burn_share(p)
    assert burn > 0 and burn >= 0.8 * total, (burn, total)
    assert "mcpprof-sampler" not in p.label_values("thread.name")
    assert not any(f.function.endswith(("_run", "sample_once", "_tick")) and "collect" in f.file
                   for f in p.frames)
    assert p.metadata["ticks"] > 0 and p.metadata["errors"] == 0


def test_real_thread_samples_carry_the_request_tag():
    tag = context.RequestTag("tools/call", "burn", L.TOOL)

    def tagged_burn(started):
        ident = threading.get_ident()
        context.thread_tags[ident] = tag
        try:
            burn_cpu_for_test(0.2, started)
        finally:
            context.thread_tags.pop(ident, None)

    p = _run_burner(Sampler(500), tagged_burn)  # the default tagger reads mcpprof.mcp.context
    burning = [s for s, frames in p.iter_stacks() if any(f.function == "burn_cpu_for_test" for f in frames)]
    assert burning
    for s in burning:
        assert s.label(L.TOOL) == "burn" and s.label(L.METHOD) == "tools/call"
        assert s.label("thread.name") == "burner"


def test_the_default_tagger_reads_thread_requests_as_captured_with_the_frames():
    from mcpprof.collect.threads import request_tagger

    tag = context.RequestTag("tools/call", "burn", L.TOOL)
    t, release = _blocked_thread()
    tagger = request_tagger()
    try:
        context.thread_tags[t.ident] = tag
        frames = tagger.capture(sys._current_frames)
        context.thread_tags.pop(t.ident, None)  # the request ends while the tick runs
        assert t.ident in frames and frames[t.ident] is not None
        assert tagger(t.ident) == tag.labels  # as captured with the frames
        tagger.capture(sys._current_frames)
        assert tagger(t.ident) is None or tagger(t.ident) == ((L.PHASE, L.STARTUP),)
    finally:
        context.thread_tags.pop(t.ident, None)
        release.set()


def test_snapshot_and_reset_while_sampling_stay_consistent():
    t, release = _blocked_thread()
    s = Sampler(1000, tagger=lambda i: None)
    try:
        for _run in range(2):  # restartable
            s.start()
            deadline = time.monotonic() + 2.0
            snaps = 0
            while time.monotonic() < deadline:
                p = s.snapshot()
                snaps += 1
                assert all(0 <= smp.stack < len(p.stacks) for smp in p.samples)
                assert all(0 <= f < len(p.frames) for stack in p.stacks for f in stack)
                if p.metadata["ticks"] >= 5:
                    break
                if snaps == 50:
                    s.reset()
            s.stop()
            assert not s.is_running
    finally:
        release.set()
        t.join()
    p = s.snapshot()
    assert p.metadata["ticks"] >= 5 and p.metadata["errors"] == 0
    assert "blocked" in p.label_values("thread.name")
    assert p.metadata["overhead"]["sampler_cpu_ns"] > 0


def test_a_forked_child_can_still_snapshot():
    import os

    env = Env()
    env.frames = {1: chain(Code("main"))}
    env.tick()
    env.sampler._lock.acquire()  # as if the parent's sampler thread held it at fork time
    env.sampler._pid = -1  # as if we were the child
    p = env.profile()
    assert p.metadata["samples"] == 1 and env.sampler._pid == os.getpid()


# -- CPU found waiting is carried to the next running sample ---------------------------------------

def test_cpu_of_a_thread_found_waiting_goes_to_its_next_running_stack():
    env = Env()
    select = Code("select", "/usr/lib/python3.11/selectors.py", qualname="EpollSelector.select")
    loop = Code("run_forever", "/usr/lib/python3.11/asyncio/base_events.py")
    tool = Code("fib", "/app/server.py")
    env.cpu = {1: 0}
    env.names = {1: ("MainThread", 101)}
    env.frames = {1: chain(loop, select)}
    env.tick()                       # first sight
    env.tick(cpu_ms={1: 4})          # ran 4 ms since, but is waiting now: pending
    env.tick(cpu_ms={1: 3})          # still waiting: 7 ms pending
    env.frames = {1: chain(loop, tool)}
    env.tick(cpu_ms={1: 2})          # running fib: gets its 2 ms and the 7 pending
    got = by_stack(env.profile())
    assert got[(("run_forever", "EpollSelector.select"), MAIN)][2] == 0
    assert got[(("run_forever", "fib"), MAIN)] == (1, 10 * MS, 9 * MS)


def test_signal_timer_samples_the_interrupted_main_thread_frame():
    """timer='signal' arms ITIMER_REAL on the main thread; the handler samples the frame it interrupted."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    s = Sampler(1000.0, timer="signal", tagger=lambda ident: None)
    s.start()
    try:
        aimed = timer._thread_timer is not None and timer._thread_timer.armed()
        assert s.is_running and (aimed or signal.getitimer(signal.ITIMER_REAL)[1] > 0)

        def spin_in_main_thread_for_test():
            end = time.perf_counter() + 0.3
            while time.perf_counter() < end:
                sum(range(200))

        spin_in_main_thread_for_test()
    finally:
        s.stop()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert timer._thread_timer is None or not timer._thread_timer.armed()
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None, _late_alarm)
    p = s.snapshot()
    assert p.metadata["timer"] == "signal"
    assert p.metadata["alarm_target"] == ("thread" if aimed else "process")
    cpu = p.value_index("cpu")
    spin = sum(smp.values[cpu] for smp, frames in p.iter_stacks()
               if any(f.function.endswith("spin_in_main_thread_for_test") for f in frames))
    total = sum(smp.values[cpu] for smp in p.samples)
    assert total > 0 and spin / total > 0.5
    assert not any(f.function == "_on_alarm" for f in p.frames)  # the handler itself is never sampled


STOP_RACE = r'''
import os, signal, threading, time
from mcpprof.collect.sampler import Sampler
from mcpprof.collect.timer import _late_alarm

stop = threading.Event()

def busy():  # other threads running Python: a process-directed SIGALRM may land on one of them
    while not stop.is_set():
        sum(range(500))

workers = [threading.Thread(target=busy, daemon=True) for _ in range(2)]
for w in workers:
    w.start()
current = []
signal.signal(signal.SIGUSR1, lambda *_: current.pop().stop())  # stopped from another handler
for _ in range(20):
    current.append(Sampler(2000.0, timer="signal", tagger=lambda ident: None).start())
    threading.Timer(0.002, os.kill, (os.getpid(), signal.SIGUSR1)).start()
    sum(range(3_000_000))  # one C call: both signals trip before the handlers run, SIGUSR1 first
    while current:
        time.sleep(0.001)
stop.set()
'''


def test_stopping_the_signal_timer_leaves_no_alarm_behind():
    """An alarm already in flight when the timer stops (here: stopped from a SIGUSR1 handler, which
    CPython runs before a SIGALRM tripped at the same time) is taken by mcpprof, never by the restored
    default disposition (CPython then prints "Signal 14 ignored due to race condition" on the
    server's stderr)."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", STOP_RACE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "race condition" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_a_signal_handler_run_inside_the_tick_can_snapshot_and_reset():
    """The agent's SIGTERM handler can run inside the SIGALRM tick (both on the main thread): it
    must read the aggregate, not wait forever for the lock its own thread holds."""
    code = textwrap.dedent("""
        import threading
        from mcpprof.collect.sampler import Sampler
        s = Sampler(100)
        s._lock.acquire()
        s._tick_owner = threading.get_ident()  # as _on_alarm sets it around the tick
        p = s.snapshot()
        s.reset()
        s._tick_owner = 0
        s._lock.release()
        print("ok", p.metadata["collector"])
    """)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("snapshot() inside the tick waited for the lock its own thread holds")
    assert out.stdout.strip() == "ok sample", out.stderr[-2000:]
