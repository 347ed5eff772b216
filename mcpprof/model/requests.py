"""Per-request latency statistics, bounded in memory.

Every finished MCP request is added to the :class:`LatencyStats` of its key (method and target,
e.g. ``("tools/call", "echo")``). Counts, errors, sums and extremes are exact; percentiles come
from a uniform reservoir of at most ``RESERVOIR`` durations per key (exact below that). The
slowest ``SLOWEST`` requests per key are kept with their request id and start time, so a p99
outlier can be found again. Stdlib only: this runs inside profiled servers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

RESERVOIR = 4_096
SLOWEST = 10

RequestKey = Tuple[str, str]  # (method, target or "")


@dataclass
class SlowRequest:
    duration_ns: int
    request_id: str
    start_ns: int
    error: Optional[str] = None


def _merge_reservoirs(a: List[int], count_a: int, b: List[int], count_b: int) -> List[int]:
    """A uniform sample of both streams: each side keeps a share of the slots proportional to
    the number of requests it stands for, not to the size of its reservoir."""
    if len(a) + len(b) <= RESERVOIR:  # then both are complete
        return a + b
    k_a = round(RESERVOIR * count_a / (count_a + count_b))
    k_a = min(len(a), max(RESERVOIR - len(b), k_a))
    k_b = min(len(b), RESERVOIR - k_a)
    rng = random.Random(0)
    return rng.sample(a, k_a) + rng.sample(b, k_b)


@dataclass
class LatencyStats:
    """Latency summary of one request key; durations in integer nanoseconds."""

    count: int = 0
    errors: int = 0
    total_ns: int = 0
    min_ns: int = 0
    max_ns: int = 0
    reservoir: List[int] = field(default_factory=list)
    slowest: List[SlowRequest] = field(default_factory=list)
    error_kinds: Dict[str, int] = field(default_factory=dict)
    cpu_ns: int = 0  # exact CPU charged to these requests by the adapter (0 when not measured)
    _next: int = field(default=0, repr=False, compare=False)  # request number that next enters the reservoir

    def add(self, duration_ns: int, error: Optional[str] = None, request_id: str = "",
            start_ns: int = 0, rng: Optional[random.Random] = None, cpu_ns: int = 0) -> None:
        self.count += 1
        self.cpu_ns += cpu_ns
        self.total_ns += duration_ns
        if self.count == 1 or duration_ns < self.min_ns:
            self.min_ns = duration_ns
        if duration_ns > self.max_ns:
            self.max_ns = duration_ns
        if error:
            self.errors += 1
            self.error_kinds[error] = self.error_kinds.get(error, 0) + 1
        rng = rng or random
        if len(self.reservoir) < RESERVOIR:
            self.reservoir.append(duration_ns)
            if len(self.reservoir) == RESERVOIR:
                self._draw_next(self.count, rng)
        else:
            if not self._next:  # merged or loaded: draw from here
                self._draw_next(self.count - 1, rng)
            if self.count >= self._next:
                self.reservoir[int(rng.random() * RESERVOIR)] = duration_ns
                self._draw_next(self.count, rng)
        slow = self.slowest
        if len(slow) < SLOWEST or duration_ns > slow[-1].duration_ns:
            slow.append(SlowRequest(duration_ns, request_id, start_ns, error))
            slow.sort(key=lambda r: -r.duration_ns)
            del slow[SLOWEST:]

    def add_tags(self, tags: List[Any]) -> None:
        """:meth:`add` for a batch of ended request tags (``duration_ns``, ``error``, ``request_id``,
        ``start_ns``, ``cpu_ns``), the same result in fewer steps."""
        if not tags:
            return
        durations = [t.duration_ns for t in tags]
        first = self.count
        self.count += len(durations)
        self.total_ns += sum(durations)
        self.cpu_ns += sum([t.cpu_ns for t in tags])
        low, high = min(durations), max(durations)
        if first == 0 or low < self.min_ns:
            self.min_ns = low
        if high > self.max_ns:
            self.max_ns = high
        for error in [t.error for t in tags if t.error]:
            self.errors += 1
            self.error_kinds[error] = self.error_kinds.get(error, 0) + 1
        slow = self.slowest
        floor = slow[-1].duration_ns if len(slow) >= SLOWEST else -1
        faster = [t for t in tags if t.duration_ns > floor]
        if faster:
            faster.sort(key=lambda t: -t.duration_ns)
            slow.extend(SlowRequest(t.duration_ns, t.request_id, t.start_ns, t.error) for t in faster[:SLOWEST])
            slow.sort(key=lambda r: -r.duration_ns)
            del slow[SLOWEST:]
        room = max(0, RESERVOIR - len(self.reservoir))
        reservoir = self.reservoir
        reservoir.extend(durations[:room])
        if len(reservoir) < RESERVOIR:
            return
        if room or not self._next:  # full from now on, or merged / loaded
            self._draw_next(first + room, random)
        while self._next <= self.count:  # the i-th of the batch is request number first + i + 1
            reservoir[int(random.random() * RESERVOIR)] = durations[self._next - first - 1]
            self._draw_next(self._next, random)

    def _draw_next(self, n: int, rng: Any) -> None:
        """After request number ``n`` (1-based, the reservoir full), the number of the next request
        whose duration enters it: n + 1 + S with P(S >= s) = (n / (n + s)) ** RESERVOIR, the skip law
        of Algorithm R in closed form (as Vitter's algorithms draw it), so recording costs one draw
        per replacement instead of one per request."""
        u = 1.0 - rng.random()  # in (0, 1]
        self._next = n + 1 + int(n * (u ** (-1.0 / RESERVOIR) - 1.0))

    @property
    def mean_ns(self) -> float:
        return self.total_ns / self.count if self.count else 0.0

    def quantile(self, q: float) -> int:
        """Nearest-rank quantile (``q`` in 0..1) of the kept durations; 0 when empty."""
        if not self.reservoir:
            return 0
        data = sorted(self.reservoir)
        rank = max(1, min(len(data), int(-(-q * len(data) // 1))))  # ceil(q * n), clamped
        return data[rank - 1]

    def merge(self, other: "LatencyStats") -> None:
        if not other.count:
            return
        if not self.count or other.min_ns < self.min_ns:
            self.min_ns = other.min_ns
        self.max_ns = max(self.max_ns, other.max_ns)
        self.reservoir = _merge_reservoirs(self.reservoir, self.count, other.reservoir, other.count)
        self._next = 0
        self.count += other.count
        self.errors += other.errors
        self.total_ns += other.total_ns
        self.cpu_ns += other.cpu_ns
        for k, v in other.error_kinds.items():
            self.error_kinds[k] = self.error_kinds.get(k, 0) + v
        self.slowest = sorted(self.slowest + other.slowest, key=lambda r: -r.duration_ns)[:SLOWEST]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "count": self.count, "errors": self.errors, "total_ns": self.total_ns,
            "min_ns": self.min_ns, "max_ns": self.max_ns, "reservoir": list(self.reservoir),
            "error_kinds": dict(self.error_kinds), "cpu_ns": self.cpu_ns,
            "slowest": [[r.duration_ns, r.request_id, r.start_ns, r.error] for r in self.slowest],
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LatencyStats":
        return cls(
            count=int(d["count"]), errors=int(d["errors"]), total_ns=int(d["total_ns"]),
            min_ns=int(d["min_ns"]), max_ns=int(d["max_ns"]),
            reservoir=[int(x) for x in d.get("reservoir", [])],
            slowest=[SlowRequest(int(a), str(b), int(c), e) for a, b, c, e in d.get("slowest", [])],
            error_kinds={str(k): int(v) for k, v in d.get("error_kinds", {}).items()},
            cpu_ns=int(d.get("cpu_ns", 0)),
        )


@dataclass
class RequestTable:
    """Latency statistics per request key (method, target)."""

    stats: Dict[RequestKey, LatencyStats] = field(default_factory=dict)

    def record(self, method: str, target: str, duration_ns: int, error: Optional[str] = None,
               request_id: str = "", start_ns: int = 0, cpu_ns: int = 0) -> None:
        key = (method, target or "")
        st = self.stats.get(key)
        if st is None:
            st = self.stats[key] = LatencyStats()
        st.add(duration_ns, error, request_id, start_ns, cpu_ns=cpu_ns)

    def record_tags(self, tags: List[Any]) -> None:
        """:meth:`record` for a batch of ended request tags (what a request sink gets)."""
        groups: Dict[RequestKey, List[Any]] = {}
        for t in tags:
            key = (t.method, t.target)
            group = groups.get(key)
            if group is None:
                groups[key] = [t]
            else:
                group.append(t)
        stats = self.stats
        for key, group in groups.items():
            st = stats.get(key)
            if st is None:
                st = stats[key] = LatencyStats()
            st.add_tags(group)

    def merge(self, other: "RequestTable") -> None:
        for key, st in other.stats.items():
            mine = self.stats.get(key)
            if mine is None:
                mine = self.stats[key] = LatencyStats()
            mine.merge(st)

    def thin(self, keep: int) -> None:
        """Keep at most ``keep`` latencies per request kind (a uniform subsample of each reservoir;
        counts, sums, extremes and the slowest requests stay exact)."""
        rng = random.Random(0)
        for st in self.stats.values():
            if len(st.reservoir) > keep:
                st.reservoir = rng.sample(st.reservoir, keep)
                st._next = 0

    @property
    def total_count(self) -> int:
        return sum(s.count for s in self.stats.values())

    def to_list(self) -> List[Dict[str, Any]]:
        return [{"method": m, "target": t, **st.to_dict()} for (m, t), st in sorted(self.stats.items())]

    @classmethod
    def from_list(cls, rows: List[Dict[str, Any]]) -> "RequestTable":
        return cls({(str(r["method"]), str(r["target"])): LatencyStats.from_dict(r) for r in rows})
