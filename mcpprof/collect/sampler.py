"""The in-process stack sampler, mcpprof's default CPU collector.

A daemon thread (``mcpprof-sampler``), or a SIGALRM timer on the main thread, ticks ``rate_hz``
times a second and adds one sample per other thread but mcpprof's own, weighed ``samples/count``
1, ``wall/nanoseconds`` since the previous tick and ``cpu/nanoseconds`` that thread used since then
(per-thread CPU clock; on first sight 0 at the first tick, else all of the new thread's clock).
Labels: the MCP request's (see :mod:`mcpprof.mcp.context`) plus ``thread.name``. While another
thread holds the GIL the sampler gets it back at most every ``sys.getswitchinterval()`` (5 ms), so
the real rate can be lower than asked; the weights are measured deltas and stay right.
Runs inside the server: stdlib only, nothing at import, never prints, errors counted, not raised.

Hot path: one tick (:mod:`mcpprof.collect.tick`), its per-thread loop in C where the extension is
built. A stack's frame ids come straight from a (code, f_lasti) -> frame cache, else from a
raw-stack cache keyed by its (id(code), f_lasti) pairs; a location not cached yet is resolved once
(lines from ``co_lines()``).
A thread whose CPU clock did not move and whose top frame is the same object at the same f_lasti is
not walked at all (only ``id()`` and f_lasti are kept, never a frame). Code objects are kept alive
while their ids are cache keys.

Memory bound: at most ``max_stacks`` stacks and ``max_stacks`` (stack, labels) keys, plus one key
per label set on the stack ``[mcpprof: stack table full]`` that takes samples beyond the cap
(counted in ``overflow_samples``); at most ``max_frames`` (default ``2 * max_stacks``) frames,
cached code locations and code objects; a raw-stack cache of at most ``RAW_CACHE_FRAMES`` frames
(about 4 MB). Measured by ``benchmarks/sampler_tick_cost.py`` (CPython 3.11, 40-frame stacks, table
full): about 700 bytes per key when stacks share frames (about 14 MB at the default cap of 20 000),
about 900 bytes (18 MB) when every stack brings a new frame.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..model.profile import CPU, SAMPLES, WALL, LabelSet, Profile, Sample
from .stacktable import OVERFLOW_FUNCTION, RAW_CACHE_FRAMES, TRUNCATED_FUNCTION, StackTable  # noqa: F401
from .stackutil import _compact, _environment, stack_key_of
from .threads import (OWN_THREAD_PREFIX, UNNAMED_THREAD, ThreadBookMixin, ThreadCpuClocks,  # noqa: F401
                      python_threads, request_tagger)
from .tick import TickMixin
from .timer import TimerMixin

class Sampler(TickMixin, TimerMixin, ThreadBookMixin, StackTable):
    """Samples every other thread's stack ``rate_hz`` times a second (see the module docstring)."""

    sample_types = (SAMPLES, WALL, CPU)

    def __init__(self, rate_hz: float = 100.0, *,
                 tagger: Optional[Callable[[int], Optional[LabelSet]]] = None,
                 clock: Callable[[], int] = time.perf_counter_ns,
                 cpu_clock: Optional[Callable[[int], Optional[int]]] = None,
                 frames: Callable[[], Dict[int, Any]] = sys._current_frames,
                 threads: Optional[Callable[[], Dict[int, Tuple[str, Optional[int]]]]] = None,
                 max_stacks: int = 20_000, max_depth: int = 256,
                 max_frames: Optional[int] = None, metadata: Optional[Dict[str, Any]] = None,
                 timer: str = "thread"):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        self.rate_hz = float(rate_hz)
        self.period_ns = max(1, int(round(1e9 / self.rate_hz)))
        self.max_stacks = max(1, int(max_stacks))
        self.max_depth = max(1, int(max_depth))
        self.max_frames = max(1, int(max_frames if max_frames is not None else 2 * self.max_stacks))
        self.metadata: Dict[str, Any] = dict(metadata or {})
        if timer not in ("thread", "signal", "auto"):
            raise ValueError(f"timer must be 'thread', 'signal' or 'auto', got {timer!r}")
        self.timer = timer
        self._signal_on = False
        self._timer_used = "thread"
        self.alarm_target = ""  # the signal timer's: "thread" (the main thread only) or "process"
        self._prev_handler: Any = None
        self._idle: Dict[int, Tuple[Any, bool]] = {}  # id(code) -> (code, is an idle leaf)
        self._tagger, self._clock, self._frames_fn = tagger, clock, frames
        self._fast: Optional[Tuple[Any, ...]] = None  # the C tick's arguments (tick.TickMixin._fast_args)
        self._watching: Optional[Callable[[bool], None]] = None  # the tagger's watch_worker_calls, while on
        self._take_calls: Optional[Callable[[], Any]] = None  # its take_worker_calls, while on
        self._stack_key = stack_key_of(frames)
        self._threads_fn = threads if threads is not None else python_threads
        if cpu_clock is None:
            cpu_clock = ThreadCpuClocks()
            self._cpu_kind = "thread" if cpu_clock.available else "unavailable"
        else:
            self._cpu_kind = "custom"
        self._cpu_clock = cpu_clock
        self._forget = getattr(cpu_clock, "forget", None)
        self._refresh_every = max(1, int(self.rate_hz))  # thread names re-read about once a second
        self._lock = threading.Lock()
        self._tick_owner = 0  # ident of the thread whose SIGALRM tick holds the lock (0: none)
        self._pid = os.getpid()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._wake = threading.Event()
        self._clear_tables()
        # ident -> [previous cpu ns, id(top), its f_lasti, stack id, pending cpu, top is idle, labels, key]
        self._tstate: Dict[int, list] = {}
        self._own_threads: set = set()  # idents of mcpprof's own threads (OWN_THREAD_PREFIX)
        self._names: Dict[int, str] = {}
        self._native: Dict[int, Optional[int]] = {}
        self._labels: Dict[Tuple[Any, str], LabelSet] = {}
        self._agg: Dict[Tuple[int, LabelSet], List[int]] = {}  # (stack, labels) -> [n, wall, cpu]
        self._last_tick: Optional[int] = None
        self._ran_ns = 0
        self._own_base: Optional[int] = None  # the running sampler thread's CPU at window start
        self._new_window(None)
        #: Optional ``hook(ident, stack id, labels, wall ns, cpu ns)`` called for every sample taken,
        #: under the sampler's lock (mcpprof.collect.slowest keeps the slowest requests' samples).
        self.sample_hook: Optional[Callable[[int, int, LabelSet, int, int], None]] = None

    # -- control -------------------------------------------------------------------------------
    @property
    def ran_ns(self) -> int:
        """Time the process has run while sampled, summed over the ticks' gaps (a gap longer than
        ``tick._RAN_GAP`` periods, as over a SIGSTOP or a suspend, counts one period). Never reset."""
        return self._ran_ns

    @property
    def samples(self) -> int:
        """Samples taken in the current window (one per thread per tick)."""
        return self._samples

    @property
    def is_running(self) -> bool:
        t = self._thread
        return self._signal_on or (t is not None and t.is_alive())

    @property
    def tagger(self) -> Optional[Callable[[int], Optional[LabelSet]]]:
        """The tagger labelling samples (the default one once started)."""
        return self._tagger

    def start(self) -> "Sampler":
        """Start the sampling thread (no-op if running)."""
        self._check_fork()
        if self.is_running:
            return self
        if self._tagger is None:
            self._tagger = request_tagger()
        self._watch_calls(True)
        now = self._clock()
        with self._guard():
            if self._start_clock is None:
                self._start_clock, self._start_ns = now, time.time_ns()
            self._last_tick = now
        self._stopping = False
        if self.timer != "thread" and self._signal_usable() and self._start_signal():
            return self
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="mcpprof-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and join the sampling thread. Idempotent; never raises."""
        self._watch_calls(False)
        t, self._stopping = self._thread, True
        if self._signal_on:
            self._stop_signal()
            self._end_clock = self._clock()
        self._wake.set()
        if t is None:
            return
        try:
            if t is not threading.current_thread():
                t.join()
            self._end_clock = self._clock()
        except Exception:
            pass
        self._thread = None

    def _watch_calls(self, on: bool) -> None:
        """While running, have the tagger note the sync calls its requests run on worker threads,
        which the ticks charge to them (``TickMixin._charge_worker_calls``)."""
        watch = getattr(self._tagger, "watch_worker_calls", None) if on else self._watching
        if watch is None or (self._watching is not None) == on:
            return
        try:
            watch(on)
        except Exception:
            return
        self._watching = watch if on else None
        self._take_calls = getattr(self._tagger, "take_worker_calls", None) if on else None

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _check_fork(self) -> None:
        """In a forked child the sampler thread is gone and may have died holding the lock."""
        if self._pid != os.getpid():
            self._pid, self._lock, self._thread, self._own_base = os.getpid(), threading.Lock(), None, None
            self._signal_on = False  # interval timers are not inherited across fork
            self._tstate.clear()

    def reset(self) -> None:
        """Clear the aggregate and counters: a new window starts now."""
        self._check_fork()
        with self._guard():
            self._agg.clear()
            for st in self._tstate.values():
                st[5] = False  # no fast path onto a key of the old window
            if len(self._stacks) > self.max_stacks // 2 or len(self._frames) > self.max_frames // 2:
                self._clear_tables()
                for st in self._tstate.values():
                    st[3] = -1
            self._new_window(self._clock())

    def _new_window(self, now: Optional[int]) -> None:
        self._start_clock = self._end_clock = now
        self._start_ns: Optional[int] = time.time_ns() if now is not None else None
        self._ticks = self._samples = self._overflow = self._errors = self._missed = 0
        self._last_error = ""
        self._own_cpu_ns = 0  # CPU of sampler threads that ended in this window
        t = self._thread
        if t is not None and t.ident is not None and self._own_base is not None:
            self._own_base = self._read_cpu(t.ident)

    def _read_cpu(self, ident: int) -> Optional[int]:
        try:
            return self._cpu_clock(ident)
        except Exception:
            return None

    def _note_error(self, exc: BaseException) -> None:
        self._errors += 1
        self._last_error = f"{type(exc).__name__}: {exc}"[:200]

    # -- results -------------------------------------------------------------------------------
    def snapshot(self) -> Profile:
        """A consistent copy of the aggregate as a :class:`Profile` (callable from any thread)."""
        self._check_fork()
        running = self.is_running
        now = self._clock() if running else None
        with self._guard():
            items = [(k, tuple(v)) for k, v in self._agg.items()]
            frames, stacks = list(self._frames), list(self._stacks)
            counters = dict(ticks=self._ticks, samples=self._samples, overflow_samples=self._overflow,
                            errors=self._errors, missed_ticks=self._missed)
            last_error, start_clock, start_ns = self._last_error, self._start_clock, self._start_ns
            end = now if now is not None else self._end_clock
            own_cpu, t, base = self._own_cpu_ns, self._thread, self._own_base
        if running and t is not None and t.ident is not None and base is not None:
            cur = self._read_cpu(t.ident)
            own_cpu += (cur - base) if cur is not None else 0
        used = {k[0] for k, _ in items}
        if len(used) < len(stacks):  # stacks of earlier windows (after reset): drop them
            frames, stacks, items = _compact(frames, stacks, items, used)
        duration = max(0, (end or 0) - start_clock) if start_clock is not None else 0
        meta: Dict[str, Any] = dict(self.metadata)
        meta.update(
            collector="sample", rate_hz=self.rate_hz, period_ns=self.period_ns, start_ns=start_ns or 0,
            duration_ns=duration, **counters,
            overhead={"sampler_cpu_ns": own_cpu, "fraction": own_cpu / duration if duration else 0.0},
            cpu_clock=self._cpu_kind, max_stacks=self.max_stacks, max_depth=self.max_depth,
            timer=self._timer_used, **({"alarm_target": self.alarm_target} if self.alarm_target else {}),
            pid=os.getpid(), python=sys.version.split()[0], sys_path=list(sys.path),
            **_environment())
        if last_error:
            meta["last_error"] = last_error
        samples = [Sample(sid, values, labels) for (sid, labels), values in items]
        return Profile(sample_types=list(self.sample_types), frames=frames, stacks=stacks,
                       samples=samples, metadata=meta)


