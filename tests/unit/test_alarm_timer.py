"""The sampler's SIGALRM timer aimed at one thread (the optional C module ``_timer``, Linux)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mcpprof.collect import timer

pytestmark = pytest.mark.skipif(timer._thread_timer is None or not sys.platform.startswith("linux"),
                                reason="the C timer is not built here (the sampler uses setitimer)")

# A thread arms the timer at 1 kHz and waits in select(); the main thread runs Python meanwhile.
# setitimer would signal the process, and the kernel would pick the running main thread; the aimed
# timer signals the thread that armed it (its wait is interrupted and retried, a context switch each
# time), and Python runs the handler on the main thread as always.
AIMED = textwrap.dedent(r'''
    import os, select, signal, threading, time
    from mcpprof.collect import _timer

    def switches(tid):
        with open(f"/proc/self/task/{tid}/status") as fh:
            return sum(int(line.split()[1]) for line in fh if "ctxt_switches" in line)

    handled = []
    signal.signal(signal.SIGALRM, lambda signum, frame: handled.append(threading.get_ident()))
    signal.siginterrupt(signal.SIGALRM, False)
    r, w = os.pipe()
    armed, done, result = threading.Event(), threading.Event(), {}

    def waiter():
        tid = threading.get_native_id()
        result["ok"] = _timer.start(0.001)
        result["armed"] = _timer.armed()
        before = switches(tid)
        armed.set()
        while not done.is_set():
            select.select([r], [], [], 0.5)
        result["woken"] = switches(tid) - before

    t = threading.Thread(target=waiter)
    t.start()
    armed.wait()
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        sum(range(100))
    _timer.stop()
    done.set()
    os.write(w, b"x")
    t.join()
    main = threading.main_thread().ident
    print(result["ok"], result["armed"], _timer.armed(), result["woken"], len(handled), set(handled) == {main})
''')


def test_the_alarm_goes_to_the_thread_that_armed_the_timer():
    out = subprocess.run([sys.executable, "-c", AIMED], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ok, was_armed, still_armed, woken, handled, on_main = out.stdout.split()
    assert (ok, was_armed, still_armed, on_main) == ("True", "True", "False", "True")
    assert int(woken) >= 50  # about 300 alarms in 0.3 s, each one interrupting the waiting thread
    # Python runs the handler on the main thread, which sees the pending alarm only when it next
    # takes the GIL from the waiting thread: alarms merge (about 50-100 handled here, 49 once on a
    # slow host), so only "many, all on the main thread" is asserted
    assert int(handled) >= 10


def test_start_rejects_a_period_that_is_not_positive():
    with pytest.raises(ValueError):
        timer._thread_timer.start(0.0)
    assert not timer._thread_timer.armed()
    timer._thread_timer.stop()  # nothing armed: nothing happens


FORK = textwrap.dedent(r'''
    import os, signal
    from mcpprof.collect import _timer

    signal.signal(signal.SIGALRM, lambda signum, frame: None)
    assert _timer.start(0.05) and _timer.armed()
    pid = os.fork()
    if pid == 0:  # the child has no timer: it must not say it has one
        os._exit(0 if not _timer.armed() else 3)
    _, status = os.waitpid(pid, 0)
    parent_armed = _timer.armed()
    _timer.stop()
    print(os.waitstatus_to_exitcode(status), parent_armed)
''')


def test_a_forked_child_starts_with_no_timer_armed():
    """Timers are not inherited by fork (as with setitimer), so a sampler in the child can arm its own."""
    out = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True"]
