"""The per-request table: what each tool, resource and prompt cost, and where in the code.

``summarize(profile)`` is what ``mcpprof profile`` prints and ``mcpprof summary FILE`` shows.
One row per request name (``tools/call cpu_sync``, ``resources/read example://config``,
``initialize``, ...) plus :data:`~mcpprof.model.labels.OUTSIDE_REQUESTS` for work outside any
request. Requests the request table saw but the sampler never caught still get a row, with 0 CPU.

Metadata keys read (all optional, as the sampler and agent write them): ``collector``,
``rate_hz`` (or ``period_ns``), ``duration_ns``, ``overhead`` (``{"fraction": 0..1}`` or a bare
fraction), ``complete`` (False when the profile was cut short) with ``end_reason``,
``overflow_samples`` (or ``overflow``: samples that hit a size bound).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..model import CPU, SAMPLES, WALL, Frame, Profile, Sample
from ..model import labels as L
from .loopcpu import loop_cpu_by_request
from .ops import function_stats
from .paths import PathView

SUMMARY_FORMAT = "mcpprof-summary"
SUMMARY_VERSION = 1


@dataclass
class RequestRow:
    """One request name's line. Durations are integer nanoseconds; ``None`` means unknown (the
    profile has no such column, or the request table has no row for it)."""

    name: str
    method: str = ""
    target: str = ""
    calls: Optional[int] = None
    errors: Optional[int] = None
    p50_ns: Optional[int] = None
    p95_ns: Optional[int] = None
    p99_ns: Optional[int] = None
    max_ns: Optional[int] = None
    cpu_ns: Optional[int] = None
    cpu_ms_per_call: Optional[float] = None
    cpu_share: Optional[float] = None
    wall_ns: Optional[int] = None
    samples: Optional[int] = None
    hottest_function: Optional[str] = None
    hottest_is_library: bool = False
    hottest_share: Optional[float] = None
    loop_blocked_ns: Optional[int] = None  # event loop blocked by sync tools run inline (mcp 1.x FastMCP, fastmcp 2)
    loop_blocked_max_ns: Optional[int] = None  # the longest single block


@dataclass
class Summary:
    """Per-request rows (sorted by CPU, heaviest first) and profile-wide totals."""

    rows: List[RequestRow] = field(default_factory=list)
    total_cpu_ns: Optional[int] = None
    cpu_source: str = "sampled"  # how per-request CPU was found (see to_dict)
    total_wall_ns: Optional[int] = None
    duration_ns: Optional[int] = None
    sample_count: Optional[int] = None
    collector: str = ""
    rate_hz: Optional[float] = None
    overhead: Optional[float] = None
    complete: bool = True
    incomplete_reason: str = ""
    overflow: int = 0
    weight: str = "cpu/nanoseconds"
    sync_on_loop: List[str] = field(default_factory=list)  # frameworks running sync tools on the event loop

    def row(self, name: str) -> RequestRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no request named {name!r} in this summary")

    def to_dict(self) -> Dict[str, Any]:
        """A stable JSON-able structure (what ``--json`` prints)::

            {"format": "mcpprof-summary", "version": 1,
             "totals": {"cpu_ns", "wall_ns", "duration_ns", "samples": int | null,
                        "collector": str, "rate_hz": float | null,
                        "overhead": float | null (fraction 0..1),
                        "complete": bool, "incomplete_reason": str, "overflow": int,
                        "weight": "cpu/nanoseconds" (the column hottest functions use),
                        "cpu_source": "exact" (per-request CPU measured by the adapter, total =
                                      process CPU while serving) | "sampled on the loop, measured
                                      on workers" (the default agent: samples on the event-loop
                                      threads plus measured worker-thread CPU, total = process
                                      CPU while serving) | "sampled" (from samples)},
             "rows": [{"name", "method", "target": str,
                       "calls", "errors": int | null,
                       "p50_ns", "p95_ns", "p99_ns", "max_ns": int | null (request latency),
                       "cpu_ns", "wall_ns", "samples": int | null (sampled in this request),
                       "cpu_ms_per_call": float | null (milliseconds),
                       "cpu_share": float | null (of total CPU, 0..1; rows sum to 1),
                       "hottest_function": str | null ("func (short/path.py:line)"),
                       "hottest_is_library": bool,
                       "hottest_share": float | null (of the row's CPU, 0..1),
                       "loop_blocked_ns", "loop_blocked_max_ns": int | null (a sync tool run
                                      inline blocked the event loop this long, in all / at most)},
                      ...]}

        Integers are nanoseconds; rows come heaviest first, the outside-requests bucket included.
        """
        return {
            "format": SUMMARY_FORMAT,
            "version": SUMMARY_VERSION,
            "totals": {
                "cpu_ns": self.total_cpu_ns, "wall_ns": self.total_wall_ns, "cpu_source": self.cpu_source,
                "duration_ns": self.duration_ns, "samples": self.sample_count,
                "collector": self.collector, "rate_hz": self.rate_hz, "overhead": self.overhead,
                "complete": self.complete, "incomplete_reason": self.incomplete_reason,
                "overflow": self.overflow, "weight": self.weight,
            },
            "rows": [asdict(r) for r in self.rows],
        }

    def __str__(self) -> str:
        return format_text(self)


# -- building --------------------------------------------------------------------------------

def _column(profile: Profile, value_type: Any) -> Optional[int]:
    return profile.value_index(value_type) if profile.has_type(value_type) else None


def _sum(samples: Sequence[Sample], idx: Optional[int]) -> Optional[int]:
    return None if idx is None else sum(s.values[idx] for s in samples)


def _opt_int(value: Any) -> Optional[int]:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _opt_float(value: Any) -> Optional[float]:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _hottest(profile: Profile, samples: Sequence[Sample], idx: int,
             paths: PathView) -> Tuple[Optional[str], bool, Optional[float]]:
    """(label, is_library, share of the row) of the row's hottest code.

    Each sample is charged to its innermost frame of the server's own code, library frames it
    called included, so ``my_tool`` calling a slow parser is the answer, not the parser. The
    server's entry point (the run of own-code frames at the stack's root, ``<module>`` and
    ``main`` calling ``mcp.run()``) only counts for its own lines, never for the library code
    below it. If no sample is charged, the function with the most self value overall is named,
    as library code.
    """
    total = sum(s.values[idx] for s in samples)
    if not samples or total <= 0:
        return None, False, None
    user: Dict[Tuple[str, str], int] = {}
    lines: Dict[Tuple[str, str, int], int] = {}
    user_cache: Dict[int, bool] = {}
    for s in samples:
        value = s.values[idx]
        ids = profile.stacks[s.stack]
        flags = []
        for fid in ids:
            is_user = user_cache.get(fid)
            if is_user is None:
                is_user = user_cache[fid] = paths.is_user_frame(profile.frames[fid])
            flags.append(is_user)
        # the root run of own-code frames (after launcher frames such as runpy's) is the entry point
        first_user = next((k for k, u in enumerate(flags) if u), len(ids))
        first_lib = next((k for k in range(first_user, len(ids)) if not flags[k]), len(ids))
        k = next((k for k in range(len(ids) - 1, -1, -1) if flags[k]), -1)
        if k >= 0 and (k == len(ids) - 1 or k > first_lib):
            f = profile.frames[ids[k]]
            user[(f.function, f.file)] = user.get((f.function, f.file), 0) + value
            lines[(f.function, f.file, f.line)] = lines.get((f.function, f.file, f.line), 0) + value
    if user and max(user.values()) > 0:
        (func, file), value = min(user.items(), key=lambda kv: (-kv[1], kv[0]))
        line = min(((-v, ln) for (fn, fl, ln), v in lines.items() if (fn, fl) == (func, file)))[1]
        return paths.label(Frame(func, file, line)), False, value / total
    sub = Profile(profile.sample_types, profile.frames, profile.stacks, list(samples))
    stats = function_stats(sub, profile.sample_types[idx])
    if not stats or stats[0].self_value <= 0:
        return None, True, None
    top = stats[0]
    return paths.label(top.frame), True, top.self_value / total


def summarize(profile: Profile, *, full_paths: bool = False) -> Summary:
    """The per-request summary of ``profile`` (see :class:`Summary.to_dict` for the fields).

    CPU comes from the ``cpu/nanoseconds`` column; when the profile has none (or it is all
    zero), the hottest function uses wall time, else sample counts (``Summary.weight`` says
    which) and ``cpu_share`` is unknown.
    """
    cpu_i, wall_i, n_i = _column(profile, CPU), _column(profile, WALL), _column(profile, SAMPLES)
    present = [i for i in (cpu_i, wall_i, n_i) if i is not None]
    if not present and profile.sample_types:
        present = [profile.value_index(profile.default_type())]
    # the first column with data: a CPU column of zeros (no per-thread CPU clock) falls back
    weight_i = next((i for i in present if _sum(profile.samples, i)), present[0] if present else None)
    paths = PathView(profile.metadata, full_paths)

    groups: Dict[str, List[Sample]] = {}
    ident: Dict[str, Tuple[str, str]] = {}
    for s in profile.samples:
        labels = dict(s.labels)
        name = L.request_name(labels)
        groups.setdefault(name, []).append(s)
        if name not in ident:
            method = labels.get(L.METHOD, "")
            target = next((labels[k] for k in L.TARGET_KEYS if labels.get(k)), "") if method else ""
            ident[name] = (method, target)
    stats_by_name: Dict[str, Any] = {}
    if profile.requests is not None:
        for (method, target), st in profile.requests.stats.items():
            name = f"{method} {target}" if target else method  # as labels.request_name names it
            stats_by_name[name] = st
            ident.setdefault(name, (method, target))
            groups.setdefault(name, [])

    total_cpu = _sum(profile.samples, cpu_i)
    # Per-request CPU measured by the request hooks beats sampled CPU where a sampler inside the
    # process is biased (towards where threads release the GIL): "exact" measured every step of a
    # request; "workers" measured its sync code on worker threads, and its CPU on the event-loop
    # threads is their CPU split by running samples (mcpprof.analyse.loopcpu).
    mode = profile.metadata.get("request_cpu")
    loop_names = set(profile.metadata.get("loop_threads") or ()) if mode == "workers" else set()
    measured = bool(stats_by_name) and cpu_i is not None and (
        (mode == "exact" and any(st.cpu_ns for st in stats_by_name.values())) or bool(loop_names))
    process_cpu = _opt_int(profile.metadata.get("process_cpu_ns")) if measured else None
    loop_cpu: Dict[str, int] = {}
    if measured and process_cpu:
        total_cpu = process_cpu
        if loop_names:
            loop_cpu = loop_cpu_by_request(profile, loop_names, cpu_i, wall_i if wall_i is not None else n_i)
        measured_sum = sum(st.cpu_ns for st in stats_by_name.values()) + sum(
            loop_cpu.get(name, 0) for name in stats_by_name)
    else:
        measured = False
    rows: List[RequestRow] = []
    for name, samples in groups.items():
        method, target = ident.get(name, ("", ""))
        row = RequestRow(name, method, target, cpu_ns=_sum(samples, cpu_i),
                         wall_ns=_sum(samples, wall_i), samples=_sum(samples, n_i))
        st = stats_by_name.get(name)
        if measured:
            if st is not None:
                row.cpu_ns = st.cpu_ns + loop_cpu.get(name, 0)
            elif name == L.OUTSIDE_REQUESTS:
                row.cpu_ns = max(0, total_cpu - measured_sum)
            elif name == L.STARTUP_BUCKET:  # before serving: not part of the serving CPU total
                row.cpu_ns = _opt_int(profile.metadata.get("startup_cpu_ns"))
            else:
                row.cpu_ns = None
        if st is not None:
            row.calls, row.errors = st.count, st.errors
            if st.count:
                row.p50_ns, row.p95_ns, row.p99_ns = st.quantile(0.5), st.quantile(0.95), st.quantile(0.99)
                row.max_ns = st.max_ns
        if row.cpu_ns is not None:
            if row.calls:
                row.cpu_ms_per_call = row.cpu_ns / row.calls / 1e6
            if total_cpu and not (measured and name == L.STARTUP_BUCKET):
                row.cpu_share = row.cpu_ns / total_cpu
        if weight_i is not None and samples:
            row.hottest_function, row.hottest_is_library, row.hottest_share = _hottest(
                profile, samples, weight_i, paths)
        rows.append(row)
    rows.sort(key=lambda r: (-(r.cpu_ns or 0), -(r.wall_ns or 0), -(r.samples or 0),
                             -(r.calls or 0), r.name))

    md = profile.metadata
    blocked = md.get("loop_blocked") if isinstance(md.get("loop_blocked"), dict) else {}
    for r in rows:
        b = blocked.get(r.name)
        if isinstance(b, dict):
            r.loop_blocked_ns, r.loop_blocked_max_ns = _opt_int(b.get("total_ns")), _opt_int(b.get("max_ns"))
    sync_on_loop = [f"{f.get('package', '')} {f.get('version', '')}".strip() for f in md.get("frameworks") or ()
                    if isinstance(f, dict) and f.get("sync_tools") == "event loop"]
    overhead = md.get("overhead")
    if isinstance(overhead, dict):
        overhead = overhead.get("fraction")
    complete = md.get("complete", True) is not False
    reason = "" if complete else str(md.get("incomplete_reason") or md.get("end_reason") or "")
    rate = _opt_float(md.get("rate_hz"))
    period = _opt_float(md.get("period_ns"))
    if rate is None and period:
        rate = 1e9 / period
    if measured and not any(r.name == L.OUTSIDE_REQUESTS for r in rows):
        rows.append(RequestRow(L.OUTSIDE_REQUESTS, "", "", cpu_ns=max(0, total_cpu - measured_sum),
                               cpu_share=max(0, total_cpu - measured_sum) / total_cpu))
        rows.sort(key=lambda r: (-(r.cpu_ns or 0), r.name))
    return Summary(
        sync_on_loop=sync_on_loop,
        cpu_source=("sampled on the loop, measured on workers" if loop_names else "exact") if measured else "sampled",
        rows=rows,
        total_cpu_ns=total_cpu,
        total_wall_ns=_sum(profile.samples, wall_i),
        duration_ns=_opt_int(md.get("duration_ns")),
        sample_count=_sum(profile.samples, n_i),
        collector=str(md.get("collector") or ""),
        rate_hz=rate,
        overhead=_opt_float(overhead),
        complete=complete,
        incomplete_reason=reason,
        overflow=_opt_int(md.get("overflow_samples", md.get("overflow"))) or 0,
        weight=str(profile.sample_types[weight_i]) if weight_i is not None else "",
    )


# -- formatting ------------------------------------------------------------------------------


# the text views live in summary_text (imported here so both names keep working)
from .summary_text import COLUMNS, fmt_count, fmt_ms, fmt_pct, format_table, format_text  # noqa: E402,F401

__all__ = ["RequestRow", "Summary", "summarize", "format_table", "format_text", "fmt_ms", "fmt_pct"]
