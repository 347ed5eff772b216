"""Open-loop load: calls start at a fixed arrival rate whatever the server does.

Call ``i`` of a run is due at ``start + round(i * 1e9 / rate)`` ns (:func:`scheduled_ns`). The
loop wakes, sends every call that is due (catching up in a burst when it woke late, so a slow
server or a late timer never thins out the load) and measures each call's latency from its
*scheduled* time, not from when it was actually sent: a server that stalls for 100 ms is charged
100 ms on every call that should have started in that window (no coordinated omission). How late
sends went out is reported separately (``send_lag_ns``) so the client's own lateness is visible.

:class:`Tally` is what both loops (this one and the closed loop in :mod:`.runner`) record into.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from .rpc import CallError, total_errors
from .drive import Picker
from .results import latency_stats
from .workload import TOOLS_CALL, Step

_clock = time.perf_counter_ns


def scheduled_ns(start_ns: int, index: int, rate: float) -> int:
    """When call ``index`` (0-based) is due, for ``rate`` calls per second from ``start_ns``."""
    return start_ns + round(index * 1e9 / rate)


def due_count(start_ns: int, rate: float, sent: int, now_ns: int, limit: Optional[int] = None) -> int:
    """How many more calls are due at ``now_ns`` when ``sent`` have gone out (capped by ``limit``)."""
    if now_ns < start_ns:
        return 0
    total = int((now_ns - start_ns) * rate // 1e9) + 1  # calls 0..k are due when k/rate <= elapsed
    while total > 0 and scheduled_ns(start_ns, total - 1, rate) > now_ns:  # float rounding guard
        total -= 1
    if limit is not None:
        total = min(total, limit)
    return max(0, total - sent)


@dataclass
class StepTally:
    latencies_ns: List[int] = field(default_factory=list)
    errors: Dict[str, int] = field(default_factory=dict)
    first_errors: Dict[str, str] = field(default_factory=dict)


class Tally:
    """Per-step latencies and errors of one run; also knows what to send next."""

    def __init__(self, steps: Sequence[Step], run: int = 0, seed: int = 0):
        self.steps = list(steps)
        self.per_step = [StepTally() for _ in steps]
        self.params = [s.params_factory(run, seed) for s in steps]
        self.pick = Picker([s.weight for s in steps]).next
        self.issued = self.done = 0
        self.transport_lost = False

    def next_call(self) -> tuple[int, str, Any]:
        k = self.pick()
        step = self.steps[k]
        params = self.params[k](self.issued)
        self.issued += 1
        return k, step.method, params

    def record(self, k: int, t0: int, result: Optional[dict], error: Optional[CallError]) -> None:
        now = _clock()
        if error is None and result is not None and self.steps[k].method == TOOLS_CALL and result.get("isError"):
            error = CallError("tool", f"{self.steps[k].step_id}: the tool reported an error")
        self.done += 1
        st = self.per_step[k]
        if error is None:
            st.latencies_ns.append(now - t0)
            return
        st.errors[error.kind] = st.errors.get(error.kind, 0) + 1
        st.first_errors.setdefault(error.kind, str(error)[:300])
        if error.kind == "transport":
            self.transport_lost = True

    def step_results(self) -> Dict[str, Dict[str, Any]]:
        return {s.step_id: {"ok": len(t.latencies_ns), "errors": dict(t.errors), "first_errors": dict(t.first_errors),
                            "latency_ns": latency_stats(t.latencies_ns)}
                for s, t in zip(self.steps, self.per_step)}

    def all_latencies(self) -> List[int]:
        return [v for t in self.per_step for v in t.latencies_ns]

    def errors(self) -> Dict[str, int]:
        return total_errors(t.errors for t in self.per_step)


async def open_loop(client: Any, tally: Tally, rate: float, requests: Optional[int], seconds: Optional[float],
                    timeout: float, clock: Callable[[], int] = _clock) -> Dict[str, Any]:
    """Send at ``rate`` calls/s until ``requests`` were sent or ``seconds`` passed, then wait for
    the replies. Returns the schedule report (how late sends were, how many in flight at most)."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    limit = requests if requests is not None else max(1, int(round((seconds or 0) * rate)))
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    in_flight = max_in_flight = sent = 0
    lags: List[int] = []

    def on_reply(k: int, t_sched: int, result: Optional[dict], error: Optional[CallError]) -> None:
        nonlocal in_flight
        in_flight -= 1
        tally.record(k, t_sched, result, error)
        if in_flight == 0 and sent >= limit and not finished.done():
            finished.set_result(None)

    start = clock() + 1_000_000  # 1 ms head start so call 0 is not late by construction
    while sent < limit and not tally.transport_lost:
        now = clock()
        for _ in range(due_count(start, rate, sent, now, limit)):
            t_sched = scheduled_ns(start, sent, rate)
            k, method, params = tally.next_call()
            lags.append(now - t_sched)
            sent += 1
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
            try:
                client.send(method, params, functools.partial(on_reply, k, t_sched), timeout)
            except CallError as exc:
                in_flight -= 1
                tally.record(k, t_sched, None, exc)
        if sent < limit:
            wait_ns = scheduled_ns(start, sent, rate) - clock()
            await asyncio.sleep(max(0.0, wait_ns / 1e9))
    if in_flight and not finished.done():
        await finished
    lag = latency_stats(lags) or {}
    return {"rate_per_s": rate, "scheduled": limit, "sent": sent, "max_in_flight": max_in_flight,
            "send_lag_ns": {k: lag[k] for k in ("p50", "p99", "max")} if lag else None,
            "scheduled_span_ns": scheduled_ns(0, max(0, limit - 1), rate)}


__all__ = ["scheduled_ns", "due_count", "Picker", "Tally", "StepTally", "open_loop"]
