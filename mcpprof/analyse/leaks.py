"""Leak detection from per-tool memory readings: a pure analysis (readings in, verdicts out).

The job (:mod:`mcpprof.jobs.leaks`) drives one tool at a time after a warm-up, in windows of
growing size, and takes a reading after each window with the garbage collected first: tracemalloc's
live bytes and counts per allocation traceback, RSS, gc objects. For each allocation *site*
(innermost frame, file:line) this module computes the growth per call in every window and decides:

* ``leak``: the site grew by at least ``min_rate`` bytes per call in each of the last three
  windows, at a steady rate (slowest window >= ``steady`` x fastest). Objects stay alive in
  proportion to the calls made, whatever the window size: a bounded structure cannot do that for
  long, a leak always does.
* ``filling``: a site grew after the warm-up but its rate fell (or stopped): a bounded cache or
  pool still filling, or one that filled during the measurement. Not a leak.
* ``inconclusive``: growth in some of the last windows but neither steady nor clearly falling.
* ``no leak``: no site grew by ``min_rate`` per call in the last windows.

Only a site whose traceback holds a frame of the *server's own code* can make a ``leak``: growth
whose every kept frame is in a library (the SDK, pydantic, the standard library, mcpprof itself) is
per-request bookkeeping of the framework or of the profiler (the agent keeps the last requests'
spans, each holding the tool name the SDK's JSON parser allocated), or a large library cache still
filling; steady for hundreds of calls, yet not the tool's. It is reported as ``inconclusive`` with
the site, never as a leak. The job passes ``is_library`` (the frame test the attribution uses).

Memory the allocator keeps after objects are freed raises RSS but not the live bytes a site holds,
so it never makes a site grow; the evidence reports RSS beside live bytes to show the difference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..model import labels as L
from ..model.profile import INUSE_OBJECTS, INUSE_SPACE, Frame, Profile, ProfileBuilder

LEAK, FILLING, INCONCLUSIVE, NO_LEAK = "leak", "filling", "inconclusive", "no leak"
VERDICTS = (LEAK, FILLING, INCONCLUSIVE, NO_LEAK)


@dataclass
class Rules:
    """Thresholds, the same for every server (no tuning per case)."""

    min_rate: float = 64.0      # bytes per call a site must grow by to count as growing
    steady: float = 0.6         # slowest / fastest rate over the last windows for a leak
    confirm: int = 3            # windows of steady growth needed for a leak
    falling: float = 0.5        # last rate below this share of the peak rate: filling
    min_total: int = 4096       # bytes a site must have grown in total to be reported as filling


@dataclass
class Site:
    """One allocation site's growth: ``bytes``/``counts`` at the baseline and after every window."""

    file: str
    line: int
    function: str = ""
    stack: List[str] = field(default_factory=list)  # root first, "function (file:line)"
    bytes: List[int] = field(default_factory=list)
    counts: List[int] = field(default_factory=list)
    own: bool = True  # a frame of the server's own code is on the traceback (not only libraries)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def rates(self, windows: Sequence[int]) -> List[float]:
        return [(self.bytes[k + 1] - self.bytes[k]) / n for k, n in enumerate(windows) if n]

    def object_rates(self, windows: Sequence[int]) -> List[float]:
        return [(self.counts[k + 1] - self.counts[k]) / n for k, n in enumerate(windows) if n]


@dataclass
class ToolResult:
    """The verdict for one tool and the evidence behind it."""

    tool: str
    verdict: str
    windows: List[int]
    bytes_per_call: float = 0.0          # growth of live bytes (server's sites) per call, last windows
    objects_per_call: float = 0.0        # growth of live objects (server's sites) per call, last windows
    site: Optional[Site] = None          # the growing site (leak / filling)
    rates: List[float] = field(default_factory=list)   # the site's bytes per call in every window
    flagged_after: Optional[int] = None  # calls after the warm-up when the verdict became "leak"
    evidence: List[str] = field(default_factory=list)
    traced: List[int] = field(default_factory=list)    # all traced bytes (mcpprof's own included)
    live: List[int] = field(default_factory=list)      # live bytes at the server's allocation sites
    rss: List[int] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(self.windows)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["calls"] = self.calls
        if self.site is not None:
            d["site"]["where"] = self.site.where
        return d


def _site_series(readings: Sequence[Dict[str, Any]], function_at: Any = None,
                 is_library: Optional[Callable[[str], bool]] = None) -> Dict[Tuple[str, int], Site]:
    """Sum every reading's tracebacks by site (innermost frame in a real file); keep the biggest
    traceback as the stack. With ``is_library``, a site is ``own`` when any of its tracebacks
    holds a frame of a file that is not a library's."""
    sites: Dict[Tuple[str, int], Site] = {}
    n = len(readings)
    best: Dict[Tuple[str, int], Tuple[int, list]] = {}
    for k, reading in enumerate(readings):
        for frames, size, count in reading.get("sites", ()):
            if not frames:
                continue
            real = next((f for f in frames if not str(f[0]).startswith("<")), frames[0])  # skip exec'd code
            key = (str(real[0]), int(real[1]))
            site = sites.get(key)
            if site is None:
                site = sites[key] = Site(key[0], key[1], bytes=[0] * n, counts=[0] * n,
                                         own=is_library is None)
            if not site.own and is_library is not None:
                site.own = any(not is_library(str(f[0])) for f in frames)
            site.bytes[k] += int(size)
            site.counts[k] += int(count)
            if k == n - 1 and size > best.get(key, (-1, []))[0]:
                best[key] = (int(size), frames)
    for key, (_, frames) in best.items():
        site = sites[key]
        names = [(function_at(f, ln) if function_at else "") for f, ln in frames]
        site.function = names[0] if names else ""
        site.stack = [f"{nm or '?'} ({f}:{ln})" for nm, (f, ln) in reversed(list(zip(names, frames)))]
    return sites


def _classify(rates: Sequence[float], total: int, rules: Rules, own: bool = True) -> str:
    last = list(rates[-rules.confirm:])
    if len(last) >= rules.confirm and min(last) >= rules.min_rate and min(last) >= rules.steady * max(last):
        return LEAK if own else INCONCLUSIVE  # library-only growth: see the module docstring
    peak = max(rates) if rates else 0.0
    if peak >= rules.min_rate and total >= rules.min_total and rates[-1] < rules.falling * peak:
        return FILLING
    if any(r >= rules.min_rate for r in last):
        return INCONCLUSIVE
    return NO_LEAK


def analyse_tool(tool: str, readings: Sequence[Dict[str, Any]], windows: Sequence[int],
                 rules: Optional[Rules] = None, function_at: Any = None,
                 is_library: Optional[Callable[[str], bool]] = None) -> ToolResult:
    """Judge one tool from ``readings`` (baseline first, then one per window of ``windows`` calls).
    ``is_library(file)``: True for files that are not the server's own code (None: every file is)."""
    rules = rules or Rules()
    windows = list(windows)[: max(0, len(readings) - 1)]
    result = ToolResult(tool, NO_LEAK, windows, traced=[int(r.get("traced", 0)) for r in readings],
                        rss=[int(r.get("rss", 0)) for r in readings])
    if not windows:
        result.verdict = INCONCLUSIVE
        result.evidence.append("no window was measured")
        return result
    sites = _site_series(readings, function_at, is_library)
    result.live = [sum(s.bytes[k] for s in sites.values()) for k in range(len(readings))]
    order = {LEAK: 0, FILLING: 1, INCONCLUSIVE: 2, NO_LEAK: 3}
    ranked = []
    for site in sites.values():
        rates = site.rates(windows)
        verdict = _classify(rates, site.bytes[-1] - site.bytes[0], rules, site.own)
        ranked.append((order[verdict], -(site.bytes[-1] - site.bytes[0]), verdict, site, rates))
    ranked.sort(key=lambda t: (t[0], t[1]))
    verdict, site, rates = (ranked[0][2], ranked[0][3], ranked[0][4]) if ranked else (NO_LEAK, None, [])
    result.verdict = verdict
    tail = windows[-rules.confirm:]
    n_tail = sum(tail)
    k0 = len(readings) - 1 - len(tail)
    if n_tail:
        result.bytes_per_call = round((result.live[-1] - result.live[k0]) / n_tail, 1)
        objs = [sum(s.counts[k] for s in sites.values()) for k in (k0, len(readings) - 1)]
        result.objects_per_call = round((objs[1] - objs[0]) / n_tail, 2)
    if verdict != NO_LEAK and site is not None:
        result.site, result.rates = site, [round(r, 1) for r in rates]
    if verdict == LEAK:
        result.flagged_after = sum(windows)
    result.evidence = _evidence(result, site, rates, rules)
    return result


def _evidence(r: ToolResult, site: Optional[Site], rates: Sequence[float], rules: Rules) -> List[str]:
    out: List[str] = []
    windows = ", ".join(str(n) for n in r.windows)
    if site is not None and r.verdict != NO_LEAK:
        grew = site.bytes[-1] - site.bytes[0]
        objs = site.counts[-1] - site.counts[0]
        rate_text = ", ".join(f"{x:.0f}" for x in rates)
        out.append(f"{site.where} ({site.function or '?'}) holds {grew} more bytes in {objs} more objects "
                   f"after {r.calls} calls; bytes per call in windows of {windows} calls: {rate_text}")
    if r.verdict == LEAK:
        out.append(f"steady growth in each of the last {rules.confirm} windows (garbage collected before "
                   "every reading): objects stay alive in proportion to the calls")
    elif r.verdict == FILLING:
        out.append("the growth rate fell from window to window: a bounded structure (cache, pool) filling, "
                   "not a leak; call more to see it level off")
    elif r.verdict == INCONCLUSIVE and site is not None and not site.own and \
            _classify(rates, site.bytes[-1] - site.bytes[0], rules) == LEAK:
        out.append("steady growth, but only library frames on its traceback (none of the server's code): "
                   "per-request records the framework or the profiler keeps, or a library cache still "
                   "filling - not called a leak; call more (--windows) or keep more frames (--frames)")
    elif r.verdict == INCONCLUSIVE:
        out.append("growth in some of the last windows, neither steady nor falling; call more (--windows)")
    else:
        out.append(f"no allocation site grew by {rules.min_rate:g} bytes per call or more in the last windows "
                   f"({windows} calls; garbage collected before every reading)")
    if len(r.rss) > 1 and r.calls:
        d_rss = r.rss[-1] - r.rss[0]
        d_live = r.live[-1] - r.live[0]
        line = f"RSS {d_rss / r.calls:+.0f} B/call, live bytes {d_live / r.calls:+.0f} B/call"
        if r.verdict != LEAK and d_rss > max(1 << 20, 4 * max(d_live, 0)):
            line += ": RSS grew without live objects - memory the allocator keeps after frees (retention), not a leak"
        out.append(line)
    return out


def leak_profile(tool: str, readings: Sequence[Dict[str, Any]], function_at: Any = None,
                 metadata: Optional[Dict[str, Any]] = None) -> Profile:
    """The growth between the first and last reading as a profile (positive growth only), per
    traceback, labelled with the tool: a flame graph of what kept growing."""
    builder = ProfileBuilder([INUSE_SPACE, INUSE_OBJECTS], metadata)
    first = {tuple(map(tuple, f)): (s, c) for f, s, c in readings[0].get("sites", ())} if readings else {}
    for frames, size, count in (readings[-1].get("sites", ()) if readings else ()):
        key = tuple(map(tuple, frames))
        s0, c0 = first.get(key, (0, 0))
        if size - s0 > 0:
            stack = [Frame(function_at(f, ln) if function_at else "?", f, int(ln)) for f, ln in reversed(key)]
            builder.add(stack, (size - s0, max(0, count - c0)), {L.METHOD: "tools/call", L.TOOL: tool})
    return builder.build()
