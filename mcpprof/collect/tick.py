"""One tick of the in-process sampler (:mod:`mcpprof.collect.sampler`): a sample of every thread
but mcpprof's own, weighed with the wall time since the previous tick and the thread's CPU time
since its previous sample, labelled with its MCP request and thread name.

With the C extension (:mod:`mcpprof.collect._walk`) the per-thread loop runs in C
(``sample_threads``) for every thread whose state, CPU clock and name the sampler already has; new
locations, stacks, idle rules and label sets are interned through the callbacks below, and only
new threads and full tables go through the Python loop (which is the whole tick without the
extension, with fake frames or another tagger). A mixin of the Sampler; stdlib only.
"""

from __future__ import annotations

import time
from _thread import get_ident
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..model.labels import THREAD_NAME
from ..model.profile import LabelSet
from .stackutil import raw_key, sample_threads
from .threads import is_idle_code, request_tagger

_LABEL_CACHE_MAX = 4096
_RAN_GAP = 10  # a gap between ticks longer than this many periods: the process was stopped


class TickMixin:
    """``sample_once`` and the tick it runs (the Sampler's tables and state are its attributes)."""

    period_ns: int
    max_stacks: int
    sample_hook: Optional[Callable[[int, int, LabelSet, int, int], None]]
    _tagger: Any
    _fast: Optional[Tuple[Any, ...]]
    _take_calls: Optional[Callable[[], Any]]
    _call_sid: Callable[[Any], int]
    _clock: Callable[[], int]
    _cpu_clock: Any
    _frames_fn: Callable[[], Dict[int, Any]]
    _stack_key: Any
    _lock: Any
    _idle: Dict[int, Tuple[Any, bool]]
    _labels: Dict[Tuple[Any, str], LabelSet]
    _agg: Dict[Tuple[int, LabelSet], List[int]]
    _tstate: Dict[int, list]
    _names: Dict[int, str]
    _own_threads: set
    _locs: Dict[int, Dict[int, int]]
    _raw: Dict[Tuple[int, ...], int]
    _stack_ids: Dict[Tuple[int, ...], int]
    _ovf_sid: int
    _refresh_every: int
    _last_tick: Optional[int]
    _end_clock: Optional[int]
    _start_clock: Optional[int]
    _start_ns: Optional[int]
    _ticks: int
    _ran_ns: int
    _samples: int
    _overflow: int
    _note_error: Callable[[BaseException], None]
    _refresh_threads: Callable[[], None]
    _name_of: Callable[[int], str]
    _drop_thread: Callable[[int], None]
    _resolve: Callable[..., int]
    _new_stack: Callable[[Tuple[int, ...]], int]
    _cache_location: Callable[[Any], Optional[int]]
    _overflow_sid: Callable[[], int]

    # -- one tick ------------------------------------------------------------------------------
    def sample_once(self) -> None:
        """Take one sample of every thread but the calling one. Never raises."""
        try:
            if self._tagger is None:
                self._tagger = request_tagger()
            with self._lock:
                self._tick()
        except Exception as exc:
            self._note_error(exc)

    def _tick(self, main_frame: Any = None, main_cpu: Optional[int] = None) -> None:
        """One sample of every thread. From the signal handler: ``main_frame`` is the interrupted
        frame of the calling (main) thread and ``main_cpu`` its CPU clock when the handler began, so
        the handler's own CPU is not charged to the code it interrupted."""
        now = self._clock()
        last = self._last_tick
        wall = self.period_ns if last is None else max(0, now - last)
        self._last_tick = self._end_clock = now
        if self._start_clock is None:  # sampled by hand: the first tick covers one period
            self._start_clock, self._start_ns = now - wall, time.time_ns() - wall
        self._ticks = ticks = self._ticks + 1
        self._ran_ns += wall if wall <= _RAN_GAP * self.period_ns else self.period_ns
        if ticks % self._refresh_every == 1 or self._refresh_every == 1:
            self._refresh_threads()
        take = self._take_calls
        if take is not None:
            calls = take()
            if calls:
                self._charge_worker_calls(calls)
        own = get_ident()
        main_ident = -1
        fast = self._fast_args()
        if fast is not None:  # the frames, the thread -> request map and the labels outside requests
            frames, tags, untagged = fast[0](self._frames_fn)
        else:
            capture = getattr(self._tagger, "capture", None)  # requests read together with the frames
            frames = capture(self._frames_fn) if capture is not None else self._frames_fn()
        if main_frame is not None:  # called from the signal handler: sample the interrupted frame
            frames[own] = main_frame
            main_ident, own = own, -1
        if fast is None:
            n, overflow = self._sample_items(frames.items(), own, main_ident, main_cpu, wall, ticks == 1)
        else:  # C: every thread whose sample needs nothing new; the rest in Python
            slow: List[int] = []
            errors: List[BaseException] = []
            n, overflow = sample_threads(frames, tags, untagged, self._tstate, self._own_threads, own, main_ident,
                                         main_cpu, wall, self._locs, fast[2], self._stack_ids, fast[3], self._idle,
                                         fast[4], self._names, self._labels, fast[5], self._agg, self.max_stacks,
                                         self._ovf_sid, self.sample_hook, fast[1], slow, errors)
            for exc in errors:
                self._note_error(exc)
            if slow:
                more, over = self._sample_items([(ident, frames[ident]) for ident in slow], own, main_ident,
                                                main_cpu, wall, ticks == 1)
                n += more
                overflow += over
        self._samples += n
        self._overflow += overflow
        tstate = self._tstate
        if len(tstate) > n:  # some threads are gone
            for ident in [i for i in tstate if i not in frames or i == own]:
                self._drop_thread(ident)

    def _charge_worker_calls(self, calls: List[Tuple[int, List[Tuple[Any, Any, int, int]]]]) -> None:
        """Charge to their requests the CPU of the sync calls worker threads ran since their last
        sample (``(callable, tag, CPU at start, at end)`` from the ``to_thread`` wrappers): a call
        that fits in one hold of the GIL is never caught mid-call, as ticks run only while the
        event-loop thread holds it. Only the part after the thread's last CPU reading counts (a
        longer call was sampled mid-call before); it goes on a one-frame stack of the called
        function, with no sample count or wall time, and the thread's next sample leaves it out."""
        tstate, names, lcache, agg = self._tstate, self._names, self._labels, self._agg
        for ident, records in calls:
            st = tstate.get(ident)
            if st is None or st[0] is None or ident in self._own_threads:
                continue  # not sampled yet: its first sample charges its CPU so far
            prev = st[0]
            taken = 0
            name = names.get(ident)
            if name is None:
                name = self._name_of(ident)
            for func, tag, t0, t1 in records:
                part = t1 - (t0 if t0 > prev else prev)
                if part <= 0:
                    continue
                tl = getattr(tag, "labels", None)
                labels = lcache.get((tl, name))
                if labels is None:
                    labels = self._make_labels(tl, name)
                key = (self._call_sid(func), labels)
                acc = agg.get(key)
                if acc is None:
                    if len(agg) >= self.max_stacks and key[0] != self._ovf_sid:
                        key = (self._overflow_sid(), labels)
                        acc = agg.get(key)
                    if acc is None:
                        acc = agg[key] = [0, 0, 0]
                acc[2] += part
                taken += part
            if taken:
                st[0] = prev + taken

    def _sample_items(self, items: Any, own: int, main_ident: int, main_cpu: Optional[int], wall: int,
                      first_tick: bool) -> Tuple[int, int]:
        """The tick's Python loop over ``(ident, top frame)`` pairs: every thread without the C
        extension, else only those the C loop left (new threads, full tables). Returns (samples,
        samples that went to the overflow stack). ``first_tick``: threads seen now were there before
        sampling began."""
        idle_codes = self._idle
        cpu_clock, tagger, tstate, names = self._cpu_clock, self._tagger, self._tstate, self._names
        lcache, agg, raw = self._labels, self._agg, self._raw
        n = overflow = 0
        hook = self.sample_hook
        ovf_sid = self._ovf_sid
        stack_key, stack_ids = self._stack_key, self._stack_ids
        own_threads = self._own_threads
        for ident, top in items:
            if ident == own or ident in own_threads:
                continue
            n += 1
            try:
                st = tstate.get(ident)
                if st is not None and st[5] and st[1] == id(top) and st[2] == top.f_lasti:
                    # Still waiting where it waited last tick (an idle leaf): its wall time goes on
                    # the same key (counters in st[8]); no CPU clock or request read (CPU used since
                    # is read at its next running sample, where the idle rule would have carried it).
                    acc = st[8]
                    acc[0] += 1
                    acc[1] += wall
                    if st[3] == ovf_sid:
                        overflow += 1
                    if hook is not None and st[6] is not None:
                        hook(ident, st[3], st[7][1], wall, 0)
                    continue
                if st is None and ident not in names and (self._name_of(ident) and ident in own_threads):
                    continue  # a thread of mcpprof's started since the names were read
                cur = main_cpu if ident == main_ident and main_cpu is not None else cpu_clock(ident)
                if st is None:  # a thread started since the last tick used all its CPU since then
                    st = tstate[ident] = [cur, 0, -1, -1, 0, False, None, None, None]
                    cpu = cur if cur is not None and not first_tick else 0
                else:
                    prev, st[0] = st[0], cur
                    cpu = 0 if cur is None or prev is None or cur < prev else cur - prev
                lasti = top.f_lasti
                if cpu == 0 and cur is not None and st[3] >= 0 and st[1] == id(top) and st[2] == lasti:
                    sid = st[3]  # the thread has not run since the last tick: same stack
                elif stack_key is not None:  # C: frame ids straight from the location cache
                    key = stack_key(top, self._locs, self._cache_location)
                    sid = stack_ids.get(key) if key is not None else None
                    if sid is None:
                        sid = self._resolve(top) if key is None else self._new_stack(key)
                    st[1], st[2], st[3] = id(top), lasti, sid
                else:
                    ids = raw_key(top)
                    sid = raw.get(ids)
                    if sid is None:
                        sid = self._resolve(top, ids)
                    st[1], st[2], st[3] = id(top), lasti, sid
                # CPU since the last sample goes to this stack only if the thread is running here;
                # a thread found waiting keeps it pending for its next running sample.
                code = top.f_code
                idle = idle_codes.get(id(code))
                st[5] = idle = idle[1] if idle is not None else self._idle_of(code)
                if idle:
                    st[4] += cpu
                    cpu = 0
                elif st[4]:
                    cpu += st[4]
                    st[4] = 0
                name = names.get(ident)
                if name is None:
                    name = self._name_of(ident)
                try:
                    tl = tagger(ident)  # type: ignore[misc]
                except Exception as exc:
                    self._note_error(exc)
                    tl = None
                labels = lcache.get((tl, name))
                if labels is None:
                    labels = self._make_labels(tl, name)
                key = (sid, labels)
                acc = agg.get(key)
                if acc is None:
                    if len(agg) >= self.max_stacks and sid != self._ovf_sid:
                        sid = self._overflow_sid()
                        key = (sid, labels)
                        acc = agg.get(key)
                    if acc is None:
                        acc = agg[key] = [0, 0, 0]
                st[6], st[7], st[8] = tl, key, acc
                if sid == self._ovf_sid:
                    overflow += 1
                acc[0] += 1
                acc[1] += wall
                acc[2] += cpu
                if hook is not None and tl is not None:  # the hook wants requests' samples only
                    hook(ident, sid, labels, wall, cpu)
            except Exception as exc:
                self._note_error(exc)
        return n, overflow

    def _fast_args(self) -> Optional[Tuple[Any, ...]]:
        """What the C tick needs beyond the sampler's tables, or None where the Python loop does all
        (no C walk, fake frames, another tagger or CPU clock): ``(capture_now, clock ids,
        _cache_location, _new_stack, _idle_of, _make_labels, tagger)`` - the tagger's ``capture_now``
        (frames, thread -> request map, labels outside any request), the CPU clock ids, the
        sampler's bound callbacks. Kept while the tagger stays the same, so a tick reads one
        attribute."""
        fast, tagger = self._fast, self._tagger
        if fast is not None and fast[6] is tagger:
            return fast
        if sample_threads is None or self._stack_key is None:
            return None
        capture_now = getattr(tagger, "capture_now", None)
        clocks = getattr(self._cpu_clock, "ids", None)  # never rebound (ThreadCpuClocks)
        if capture_now is None or clocks is None:
            return None
        self._fast = fast = (capture_now, clocks, self._cache_location, self._new_stack, self._idle_of,
                             self._make_labels, tagger)
        return fast

    def _idle_of(self, code: Any) -> bool:
        """Whether ``code`` at the top of a stack means "waiting" (cached by id, code kept alive)."""
        idle = is_idle_code(code)
        self._idle[id(code)] = (code, idle)
        return idle

    def _make_labels(self, tl: Optional[LabelSet], name: str) -> LabelSet:
        labels = tuple(sorted([p for p in (tl or ()) if p[0] != THREAD_NAME] + [(THREAD_NAME, name)]))
        if len(self._labels) >= _LABEL_CACHE_MAX:
            self._labels.clear()
        self._labels[(tl, name)] = labels
        return labels
