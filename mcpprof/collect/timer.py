"""The sampler's two timers. The sampling thread wakes on an absolute schedule (missed ticks skipped,
never bursted). The SIGALRM timer: a kernel interval timer interrupts the main thread wherever it
is, so samples taken from the signal handler are not biased towards the points where the event
loop blocks (as a sampler thread's are, since it runs only when another thread hands it the GIL);
used only when the main thread starts the sampler and nobody else uses SIGALRM. Where the optional C
accelerator ``_timer`` is built (Linux), the alarm goes to the main thread only (a POSIX timer with
``SIGEV_THREAD_ID``); ``setitimer`` signals the process, and the kernel hands about a third of those
signals to other threads (a worker waiting for the GIL, the agent's threads, which then take the GIL
to run no handler). The handler leaves its own CPU out of the CPU it charges to the code it
interrupted. Stdlib only."""

from __future__ import annotations

import contextlib
import threading
import time
from _thread import get_ident
from time import thread_time_ns
from typing import Any

_LONG_WAIT_NS = 50_000_000  # longer sleeps wait on an Event, so stop() is prompt at low rates

try:  # the optional C accelerator: SIGALRM to the main thread only
    from . import _timer as _thread_timer
except ImportError:  # pragma: no cover - not built: setitimer signals the process
    _thread_timer = None  # type: ignore[assignment]


class TimerMixin:
    """Adds the thread loop ``_run``, the lock guard ``_guard`` and ``_signal_usable``,
    ``_start_signal``, ``_on_alarm``, ``_stop_signal`` to the Sampler."""

    _signal_on: bool
    _timer_used: str
    _prev_handler: Any
    _lock: Any
    _missed: int
    _own_cpu_ns: int
    _tick_owner: int
    _tstate: dict
    period_ns: int

    def _guard(self) -> Any:
        """The sampler's lock, unless this thread's SIGALRM tick holds it: another signal's handler
        run inside the tick (the agent's SIGTERM handler writing the profile) reads the aggregate as
        it is instead of waiting for itself forever."""
        if self._tick_owner == threading.get_ident():
            return contextlib.nullcontext()
        return self._lock

    def _run(self) -> None:
        own = threading.get_ident()
        self._own_base = self._read_cpu(own)
        try:
            clock, period, sleep, wake = self._clock, self.period_ns, time.sleep, self._wake
            deadline = clock() + period
            while not self._stopping:
                delay = deadline - clock()
                if delay > 0:
                    (wake.wait if delay > _LONG_WAIT_NS else sleep)(delay / 1e9)
                    if self._stopping:
                        break
                self.sample_once()
                now = clock()
                deadline += period
                if deadline <= now:  # late: skip the missed ticks, keep the schedule
                    missed = (now - deadline) // period + 1
                    self._missed += missed
                    deadline += missed * period
        except Exception as exc:  # pragma: no cover - defensive: never raise into the server
            self._note_error(exc)
        finally:
            end, base = self._read_cpu(own), self._own_base
            if end is not None and base is not None:
                self._own_cpu_ns += end - base
            self._own_base = None
            self._drop_thread(own)

    def _signal_usable(self) -> bool:
        """SIGALRM can drive the sampler: main thread, POSIX, and nobody else uses the timer."""
        import signal

        if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
            return False
        try:
            return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None, _late_alarm) and \
                signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and \
                not (_thread_timer is not None and _thread_timer.armed())
        except Exception:
            return False

    def _start_signal(self) -> bool:
        """Sample from a SIGALRM handler on the main thread: the kernel's interval timer interrupts
        the main thread wherever it is, so (unlike a sampler thread, which only runs when another
        thread hands it the GIL) its samples are not biased towards the points where the event loop
        blocks. Syscalls are restarted (``siginterrupt(False)``). The alarm goes to the main thread
        only where ``_timer`` can aim it (``alarm_target`` "thread"), else to the process
        (``setitimer``, "process")."""
        import signal

        try:
            self._prev_handler = signal.signal(signal.SIGALRM, self._on_alarm)
            signal.siginterrupt(signal.SIGALRM, False)
            period = self.period_ns / 1e9
            aimed = _thread_timer is not None and _thread_timer.start(period)
            if not aimed:
                signal.setitimer(signal.ITIMER_REAL, period, period)
        except Exception as exc:
            self._note_error(exc)
            return False
        self._signal_on = True
        self._timer_used = "signal"
        self.alarm_target = "thread" if aimed else "process"
        return True

    def _on_alarm(self, signum: int, frame: Any) -> None:
        t0 = thread_time_ns()
        lock = self._lock
        if not lock.acquire(False):  # the main thread was interrupted while holding it: skip
            self._missed += 1
            return
        self._tick_owner = ident = get_ident()
        try:
            self._tick(frame, t0)
        except Exception as exc:
            self._note_error(exc)
        finally:
            self._tick_owner = 0
            lock.release()
        t1 = thread_time_ns()
        self._own_cpu_ns += t1 - t0
        st = self._tstate.get(ident)
        if st is not None and st[0] is not None:  # the next CPU delta leaves this handler out
            st[0] += t1 - t0

    def _stop_signal(self) -> None:
        """Disarm the timer. An alarm can already be in flight (stop() called from another signal's
        handler, which CPython runs before a SIGALRM tripped at the same time): the default
        disposition would meet it and print "Signal 14 ignored due to race condition" on the
        server's stderr. So :func:`_late_alarm` takes SIGALRM and puts the previous disposition back
        when it meets that alarm; until then it stands in (and the signal timer can start again)."""
        import signal

        try:
            if _thread_timer is not None:
                _thread_timer.stop()
            signal.setitimer(signal.ITIMER_REAL, 0)
            if threading.current_thread() is threading.main_thread():
                prev = self._prev_handler
                _RESTORE[signal.SIGALRM] = prev if prev not in (None, _late_alarm) else signal.SIG_DFL
                signal.signal(signal.SIGALRM, _late_alarm)
        except Exception as exc:
            self._note_error(exc)
        self._signal_on = False


_RESTORE: dict = {}  # signal number -> the disposition _late_alarm puts back


def _late_alarm(signum: int, frame: Any) -> None:
    """Takes an alarm that was in flight when the signal timer stopped, then restores the
    disposition that was there before the timer started."""
    import signal

    try:
        signal.signal(signum, _RESTORE.pop(signum, signal.SIG_DFL))
    except Exception:
        pass
