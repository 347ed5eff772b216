"""The in-process sampler: deterministic tests with fake frames, clocks and threads (the checks on
real threads are in test_sampler_live.py)."""

from __future__ import annotations

import json
import threading

import pytest

from mcpprof.collect.sampler import OVERFLOW_FUNCTION, TRUNCATED_FUNCTION, Sampler, ThreadCpuClocks
from mcpprof.model import labels as L
from mcpprof.model.io import from_dict, to_dict
from .sampler_fakes import MAIN, MS, WORKER, Clock, Code, Env, FakeFrame, by_stack, chain


# -- values, order, labels -------------------------------------------------------------------------

def test_exact_values_after_n_ticks_and_root_first_order():
    env = Env()
    env.frames = {1: chain(Code("main"), Code("handle"), Code("compute")),
                  2: chain(Code("worker_loop"), Code("wait"))}
    env.cpu = {1: 0, 2: 0}
    env.tick(cpu_ms={1: 3})  # first sight: cpu 0 for everyone, wall = one period
    env.tick(advance_ms=10, cpu_ms={1: 4})
    env.tick(advance_ms=20, cpu_ms={1: 6})
    p = env.profile()
    assert [str(t) for t in p.sample_types] == ["samples/count", "wall/nanoseconds", "cpu/nanoseconds"]
    got = by_stack(p)
    assert got == {
        (("main", "handle", "compute"), MAIN): (3, 40 * MS, 10 * MS),
        (("worker_loop", "wait"), WORKER): (3, 40 * MS, 0),  # idle: wall but no CPU
    }
    assert p.metadata["ticks"] == 3 and p.metadata["samples"] == 6
    assert p.metadata["duration_ns"] == 40 * MS  # first tick covers one period


def test_function_file_and_line_come_from_code_and_frame():
    env = Env()
    code = Code("run", "/srv/app/tools.py", qualname="Tool.run")
    env.frames = {1: chain((Code("main", "/srv/app/main.py"), 0, 3), (code, 8, 42))}
    env.tick()
    p = env.profile()
    (frames,) = [fr for _, fr in p.iter_stacks()]
    assert [(f.function, f.file, f.line) for f in frames] == [
        ("main", "/srv/app/main.py", 3), ("Tool.run", "/srv/app/tools.py", 42)]


def test_labels_from_tagger_plus_thread_name():
    tool = ((L.TOOL, "echo"), (L.METHOD, "tools/call"))
    env = Env(tagger=lambda ident: tool if ident == 1 else None)
    env.frames = {1: chain(Code("echo")), 2: chain(Code("idle"))}
    env.tick()
    labels = {s.labels for s in env.profile().samples}
    assert labels == {tuple(sorted(tool + MAIN)), WORKER}


def test_requests_are_read_with_the_frames_of_the_tick():
    # the tagger's capture() takes the thread -> request map together with the frames: a worker
    # whose request ends while the tick runs is still labelled with the request its stack shows
    tool = ((L.TOOL, "cpu_sync"), (L.METHOD, "tools/call"))
    live = {2: tool}
    captured = {}
    seen = []

    def tagger(ident):
        return captured.get(ident)

    def capture(frames_fn):
        seen.append(frames_fn)
        frames = frames_fn()
        captured.clear()
        captured.update(live)
        live.clear()  # the worker's request ends right after the capture
        return frames

    tagger.capture = capture
    env = Env(tagger=tagger)
    env.frames = {2: chain(Code("worker_run"), Code("fib")), 1: chain(Code("select"))}
    env.tick()
    labels = {s.labels for s in env.profile().samples}
    assert labels == {tuple(sorted(tool + WORKER)), MAIN} and len(seen) == 1


def test_tagger_errors_are_counted_and_the_sample_kept():
    def tagger(ident):
        raise RuntimeError("boom")

    env = Env(tagger=tagger)
    env.frames = {1: chain(Code("main"))}
    env.tick()
    p = env.profile()
    assert [s.labels for s in p.samples] == [MAIN]
    assert p.metadata["errors"] == 1 and "boom" in p.metadata["last_error"]


def test_mcpprofs_own_threads_are_not_sampled():
    env = Env()
    env.names[3] = ("mcpprof-flush", 103)
    env.frames = {1: chain(Code("main")), 3: chain(Code("flush_loop"))}
    env.tick()
    env.tick()
    assert list(by_stack(env.profile())) == [(("main",), MAIN)]


def test_the_calling_sampler_thread_is_excluded():
    env = Env()
    env.frames = {1: chain(Code("main")), threading.get_ident(): chain(Code("sampler_itself"))}
    env.tick()
    assert list(by_stack(env.profile())) == [(("main",), MAIN)]


def test_unknown_thread_gets_a_placeholder_name_and_dead_threads_are_forgotten():
    env = Env()
    env.frames = {1: chain(Code("main")), 7: chain(Code("c_thread"))}
    env.tick()
    assert (("c_thread",), (("thread.name", "(unnamed)"),)) in by_stack(env.profile())
    del env.frames[7]
    env.tick()
    assert env.forgotten == [7]


def test_reused_thread_ident_starts_afresh():
    env = Env()
    env.frames = {2: chain(Code("first"))}
    env.cpu = {2: 50 * MS}
    env.tick()
    env.names[2] = ("worker", 999)  # a new thread took ident 2 (new native id), its clock restarted
    env.cpu[2] = 70 * MS
    env.sampler._refresh_every = 1
    env.tick()
    # the new thread started after the previous tick: all of its clock (70 ms) is from this period
    assert by_stack(env.profile())[(("first",), WORKER)] == (2, 20 * MS, 70 * MS)


# -- the caches --------------------------------------------------------------------------------

def test_same_code_at_another_lasti_is_another_line_and_lineno_is_cached():
    env = Env()
    code = Code("loop")
    root = Code("main")
    env.frames = {1: chain(root, (code, 10, 5))}
    env.tick(cpu_ms={1: 1})
    env.frames = {1: chain(root, (code, 20, 7))}
    env.tick(cpu_ms={1: 1})
    reads = FakeFrame.lineno_reads
    env.frames = {1: chain(root, (code, 10, 5))}  # new frame objects, known (code, lasti)
    env.tick(cpu_ms={1: 1})
    assert FakeFrame.lineno_reads == reads  # a cache hit computes no line number
    p = env.profile()
    lines = {fr[-1].line: s.values[0] for s, fr in p.iter_stacks()}
    assert lines == {5: 2, 7: 1}


def test_idle_thread_is_not_walked_again_but_a_running_one_is():
    env = Env()
    leaf = chain(Code("main"), Code("wait"))
    env.frames = {1: leaf}
    env.cpu = {1: 0}
    env.tick()
    leaf.f_back = FakeFrame(Code("elsewhere"))  # not observable unless the thread is re-walked
    env.tick()  # CPU did not move, same top frame at the same f_lasti: previous stack reused
    env.tick(cpu_ms={1: 2})  # it ran: walked again
    got = by_stack(env.profile())
    assert got == {(("main", "wait"), MAIN): (2, 20 * MS, 0),
                   (("elsewhere", "wait"), MAIN): (1, 10 * MS, 2 * MS)}


def test_without_cpu_clock_every_tick_walks():
    env = Env()
    leaf = chain(Code("main"), Code("wait"))
    env.frames = {1: leaf}  # no CPU reading for thread 1 at all
    env.tick()
    leaf.f_back = FakeFrame(Code("elsewhere"))
    env.tick()
    assert set(f for f, _ in by_stack(env.profile())) == {("main", "wait"), ("elsewhere", "wait")}


# -- bounds ----------------------------------------------------------------------------------------

def test_overflow_beyond_max_stacks_is_counted_and_keeps_labels():
    env = Env(max_stacks=2, tagger=lambda ident: ((L.TOOL, "t%d" % ident),))
    env.frames = {1: chain(Code("a"))}
    env.tick()
    env.frames = {1: chain(Code("b"))}
    env.tick()
    env.frames = {1: chain(Code("c")), 2: chain(Code("d"))}
    env.tick()
    env.frames = {1: chain(Code("a"))}
    env.tick()  # a known key still aggregates normally
    p = env.profile()
    got = by_stack(p)
    t1 = tuple(sorted(((L.TOOL, "t1"),) + MAIN))
    t2 = tuple(sorted(((L.TOOL, "t2"),) + WORKER))
    assert got == {
        (("a",), t1): (2, 20 * MS, 0),
        (("b",), t1): (1, 10 * MS, 0),
        ((OVERFLOW_FUNCTION,), t1): (1, 10 * MS, 0),
        ((OVERFLOW_FUNCTION,), t2): (1, 10 * MS, 0),
    }
    assert p.metadata["overflow_samples"] == 2 and p.metadata["samples"] == 5


def test_frame_table_cap_sends_new_stacks_to_overflow():
    env = Env(max_frames=2)
    env.frames = {1: chain(Code("a"), Code("b"))}
    env.tick()
    env.frames = {1: chain(Code("a"), Code("c"))}
    env.tick()
    assert set(f for f, _ in by_stack(env.profile())) == {("a", "b"), (OVERFLOW_FUNCTION,)}


def test_max_depth_keeps_the_root_side_and_marks_truncation():
    env = Env(max_depth=4)
    env.frames = {1: chain(*[Code("f%d" % i) for i in range(10)])}
    env.tick()
    (stack,) = [f for f, _ in by_stack(env.profile())]
    assert stack == ("f0", "f1", "f2", "f3", TRUNCATED_FUNCTION)


# -- snapshot, reset, lifecycle ---------------------------------------------------------------------

def test_snapshot_metadata():
    env = Env(metadata={"command": ["python", "server.py"]})
    env.frames = {1: chain(Code("main"))}
    env.tick()
    env.tick()
    meta = env.profile().metadata
    for key in ("collector", "rate_hz", "period_ns", "start_ns", "duration_ns", "ticks", "samples",
                "overflow_samples", "errors", "overhead", "sys_path", "stdlib_dirs", "site_dirs",
                "python", "pid"):
        assert key in meta, key
    assert meta["collector"] == "sample" and meta["rate_hz"] == 100.0 and meta["period_ns"] == 10 * MS
    assert meta["ticks"] == 2 and meta["samples"] == 2 and meta["errors"] == 0
    assert meta["duration_ns"] == 20 * MS and meta["start_ns"] > 0
    assert meta["overhead"] == {"sampler_cpu_ns": 0, "fraction": 0.0}  # the thread never ran
    assert meta["command"] == ["python", "server.py"]
    assert isinstance(meta["sys_path"], list) and meta["stdlib_dirs"]
    json.dumps(meta)  # the native file is JSON


def test_snapshot_round_trips_through_the_native_format():
    env = Env()
    env.frames = {1: chain(Code("main"), Code("work")), 2: chain(Code("idle"))}
    env.tick(cpu_ms={1: 1})
    p = env.profile()
    q = from_dict(json.loads(json.dumps(to_dict(p))))
    assert by_stack(q) == by_stack(p)


def test_reset_starts_a_new_window_and_snapshot_drops_unused_stacks():
    env = Env(max_stacks=4)  # small caps: reset clears the interning tables too
    env.frames = {1: chain(Code("old"), Code("stack"))}
    env.tick()
    env.tick()
    env.sampler.reset()
    env.frames = {1: chain(Code("new"))}
    env.tick()
    p = env.profile()
    assert by_stack(p) == {(("new",), MAIN): (1, 10 * MS, 0)}
    assert len(p.stacks) == 1 and [f.function for f in p.frames] == ["new"]
    assert p.metadata["ticks"] == 1 and p.metadata["duration_ns"] == 10 * MS


def test_reset_with_large_caps_keeps_tables_and_compacts_the_snapshot():
    env = Env()
    env.frames = {1: chain(Code("old"))}
    env.tick()
    env.sampler.reset()
    env.frames = {1: chain(Code("new"))}
    env.tick()
    p = env.profile()
    assert len(p.stacks) == 1 and [f.function for f in p.frames] == ["new"]
    assert all(0 <= s.stack < len(p.stacks) for s in p.samples)


def test_a_failing_frame_source_never_raises():
    def frames():
        raise RuntimeError("no frames")

    s = Sampler(frames=frames, clock=Clock(), tagger=lambda i: None, cpu_clock=lambda i: None,
                threads=dict)
    s.sample_once()
    assert s.snapshot().metadata["errors"] == 1


def test_stop_is_idempotent_and_sample_once_works_after_stop():
    env = Env()
    s = env.sampler
    s.stop()  # never started
    assert not s.is_running
    s.start()
    assert s.is_running
    s.stop()
    s.stop()
    assert not s.is_running
    env.frames = {1: chain(Code("main"))}
    env.tick()
    assert (("main",), MAIN) in by_stack(s.snapshot())


def test_invalid_rate():
    with pytest.raises(ValueError):
        Sampler(0)


def test_thread_cpu_clocks_reads_this_thread():
    clocks = ThreadCpuClocks()
    if not clocks.available:
        pytest.skip("no per-thread CPU clocks on this platform")
    ident = threading.get_ident()
    a = clocks(ident)
    sum(range(10000))
    assert clocks(ident) >= a > 0
    clocks.forget(ident)
    assert clocks(ident) >= a


# -- real frames, sampled by hand ------------------------------------------------------------------
