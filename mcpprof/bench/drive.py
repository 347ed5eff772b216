"""The workload behind ``mcpprof profile``: a closed loop of MCP calls against one client.

:func:`drive` keeps ``concurrency`` calls in flight, picks each next call by smooth weighted
round-robin over a list of :class:`CallSpec`, and records client-side latencies (ns) and errors
by kind per spec. What to call is chosen in :mod:`.calls` (its names are re-exported here).
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import UsageError
from .calls import (PROMPTS_GET, RESOURCES_READ, TOOLS_CALL, CallSpec, arguments_from_schema, example_arguments,
                    load_args_file, select_tools)
from .rpc import ERROR_KINDS, CallError, total_errors

_clock = time.perf_counter_ns


@dataclass
class CallStats:
    """What happened to the calls of one :class:`CallSpec`."""

    spec: CallSpec
    latencies_ns: list[int] = field(default_factory=list)  # successful calls only
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count
    first_errors: dict[str, str] = field(default_factory=dict)  # kind -> first message

    @property
    def ok(self) -> int:
        return len(self.latencies_ns)

    @property
    def calls(self) -> int:
        return self.ok + sum(self.errors.values())


@dataclass
class DriveResult:
    """Per-spec statistics (in the order of the specs given), wall time and why the loop stopped:
    ``time``, ``max_calls``, ``transport`` (the server went away) or ``error`` (a bug raised)."""

    stats: list[CallStats]
    wall_s: float
    concurrency: int
    stopped: str

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stats)

    @property
    def ok(self) -> int:
        return sum(s.ok for s in self.stats)

    @property
    def errors(self) -> dict[str, int]:
        return total_errors(s.errors for s in self.stats)

    @property
    def throughput(self) -> float:
        """Completed calls per second."""
        return self.calls / self.wall_s if self.wall_s > 0 else 0.0

    def by_label(self) -> dict[str, CallStats]:
        return {s.spec.label: s for s in self.stats}

    def to_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "concurrency": self.concurrency, "stopped": self.stopped,
                "calls": [{"method": s.spec.method, "target": s.spec.name_or_uri, "label": s.spec.label,
                           "weight": s.spec.weight, "ok": s.ok, "errors": dict(s.errors),
                           "first_errors": dict(s.first_errors), "latencies_ns": list(s.latencies_ns)}
                          for s in self.stats]}


class _Loop:
    """The closed loop's shared state: what to call next, when to stop, what happened."""

    def __init__(self, calls: Sequence[CallSpec], seconds: float | None, max_calls: int | None):
        self.stats = [CallStats(c) for c in calls]
        self.work = [(c.method, c.params(), c.method == TOOLS_CALL, s) for c, s in zip(calls, self.stats)]
        self.pick = Picker([c.weight for c in calls]).next
        self.start = _clock()
        self.deadline = self.start + int(seconds * 1e9) if seconds else None
        self.max_calls = max_calls
        self.issued = self.done = self.errors = 0
        self.stopped = ""

    def admit(self) -> bool:
        """May one more call start? Sets ``stopped`` when not."""
        if self.stopped:
            return False
        if self.max_calls is not None and self.issued >= self.max_calls:
            self.stopped = "max_calls"
        elif self.deadline is not None and _clock() >= self.deadline:
            self.stopped = "time"
        else:
            self.issued += 1
        return not self.stopped

    def record(self, st: CallStats, is_tool: bool, t0: int, result: dict[str, Any] | None,
               error: CallError | None) -> None:
        if error is None and is_tool and result is not None and result.get("isError"):
            error = CallError("tool", f"{st.spec.label}: the tool reported an error")
        self.done += 1
        if error is None:
            st.latencies_ns.append(_clock() - t0)
            return
        st.errors[error.kind] = st.errors.get(error.kind, 0) + 1
        st.first_errors.setdefault(error.kind, str(error))
        self.errors += 1
        if error.kind == "transport":
            self.stopped = "transport"


async def _run_callbacks(client: Any, loop_: _Loop, concurrency: int, timeout: float) -> None:
    """Closed loop on ``client.send``: each reply's callback records it and sends the next call,
    so no task switch happens per request (the cheapest way to drive a server from asyncio)."""
    finished = asyncio.get_running_loop().create_future()
    in_flight = 0

    def issue() -> None:
        nonlocal in_flight
        while in_flight < concurrency and loop_.admit():
            method, params, is_tool, st = loop_.work[loop_.pick()]
            t0 = _clock()
            try:
                client.send(method, params, functools.partial(on_reply, st, is_tool, t0), timeout)
            except CallError as exc:
                loop_.record(st, is_tool, t0, None, exc)
                continue
            in_flight += 1
        if in_flight == 0 and not finished.done():
            finished.set_result(None)

    def on_reply(st: CallStats, is_tool: bool, t0: int, result: dict[str, Any] | None,
                 error: CallError | None) -> None:
        nonlocal in_flight
        in_flight -= 1
        try:
            loop_.record(st, is_tool, t0, result, error)
            issue()
        except BaseException as exc:  # never leave drive() waiting forever
            loop_.stopped = loop_.stopped or "error"
            if not finished.done():
                finished.set_exception(exc)

    issue()
    await finished


async def _run_tasks(client: Any, loop_: _Loop, concurrency: int, timeout: float) -> None:
    """Closed loop on ``await client.request(...)``: one task per concurrency slot."""

    async def worker() -> None:
        while loop_.admit():
            method, params, is_tool, st = loop_.work[loop_.pick()]
            t0 = _clock()
            try:
                result = await client.request(method, params, timeout)
            except CallError as exc:
                loop_.record(st, is_tool, t0, None, exc)
            else:
                loop_.record(st, is_tool, t0, result, None)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class Picker:
    """Smooth weighted round-robin (nginx's): deterministic, interleaved, exact proportions."""

    def __init__(self, weights: Sequence[float]):
        self.weights = list(weights)
        self.total = sum(self.weights)
        self.current = [0.0] * len(self.weights)

    def next(self) -> int:
        cur, best = self.current, 0
        for i, w in enumerate(self.weights):
            cur[i] += w
            if cur[i] > cur[best]:
                best = i
        cur[best] -= self.total
        return best


async def drive(client: Any, calls: Sequence[CallSpec], seconds: float | None, concurrency: int = 16,
                max_calls: int | None = None, progress: Callable[[int, int, float], None] | None = None,
                timeout: float = 30.0, progress_interval: float = 0.5) -> DriveResult:
    """Call the server through ``client`` with ``concurrency`` calls in flight until ``seconds``
    have passed or ``max_calls`` were issued (calls in flight are then waited for).

    ``client`` is a :class:`~.client.StdioClient` (driven through its callback ``send``) or
    anything with ``async request(method, params, timeout) -> result`` that raises
    :class:`~.client.CallError`. ``progress(done, errors, elapsed_s)`` is called every
    ``progress_interval`` seconds and once at the end.
    """
    if not calls:
        raise UsageError("no calls to make: the workload is empty")
    if any(c.weight < 0 for c in calls) or sum(c.weight for c in calls) <= 0:
        raise UsageError("call weights must be >= 0 with a positive sum")
    if not seconds and max_calls is None:
        raise ValueError("drive() needs seconds or max_calls")
    concurrency = max(1, concurrency)
    loop_ = _Loop(calls, seconds, max_calls)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(progress_interval)
            progress(loop_.done, loop_.errors, (_clock() - loop_.start) / 1e9)  # type: ignore[misc]

    tick = asyncio.ensure_future(ticker()) if progress is not None else None
    try:
        run = _run_callbacks if callable(getattr(client, "send", None)) else _run_tasks
        await run(client, loop_, concurrency, timeout)
    finally:
        if tick is not None:
            tick.cancel()
    wall = (_clock() - loop_.start) / 1e9
    if progress is not None:
        progress(loop_.done, loop_.errors, wall)
    return DriveResult(loop_.stats, wall, concurrency, loop_.stopped or "max_calls")


__all__ = ["CallSpec", "CallStats", "DriveResult", "Picker", "drive", "select_tools", "arguments_from_schema",
           "load_args_file", "example_arguments", "ERROR_KINDS", "TOOLS_CALL", "RESOURCES_READ", "PROMPTS_GET"]
