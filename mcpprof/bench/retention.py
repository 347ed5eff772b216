"""What an HTTP session costs and what stays after it closes: per-session figures and the verdict.

Pure functions over readings (no I/O), used by :mod:`.sessions`. Every figure is in bytes per
session, with its written definition in :data:`DEFINITIONS` (copied into every report).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

VERDICTS = ("leak", "leak + allocator retention", "allocator retention", "returned", "inconclusive")

DEFINITIONS = {
    "per_session": "least-squares slope of a reading over the open-session counts (R² beside it): what one more "
                   "open session costs. Sessions are idle after their handshake and one call; their connections "
                   "are closed, so this is the session state the server keeps, not an open stream.",
    "traced_bytes": "bytes of live Python allocations tracemalloc sees in the server (through the mcpprof agent's "
                    "memory control channel), read after gc.collect(), mcpprof's own allocations left out: memory "
                    "that the server's objects still use.",
    "rss_anon_bytes": "anonymous resident memory of the server process (RssAnon, /proc/<pid>/status), read from "
                      "outside with tracemalloc off: what the operating system pays, objects or not.",
    "retained_per_closed_session": "(reading after every session was ended with DELETE and the settle time "
                                   "passed, minus the reading before the sessions opened) / sessions.",
    "leak": "Python objects that outlive their sessions and keep accumulating: traced bytes retained per closed "
            "session in the first round, and again when as many sessions are opened and closed a second time.",
    "one_time": "traced bytes retained after the first round only (a cache or pool filled once): not a leak.",
    "allocator_retention": "memory the process keeps after the objects that used it are freed (pymalloc arenas, "
                           "the C allocator's free lists): anonymous RSS retained per closed session minus "
                           "traced bytes retained per closed session.",
    "returned": "neither traced bytes nor anonymous RSS stay above their thresholds after the sessions close.",
}


def slope(xs: Sequence[float], ys: Sequence[float]) -> Tuple[float, float]:
    """Least-squares slope of ys over xs and its R² (1.0 when ys are constant)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, 0.0
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (my + b * (x - mx))) ** 2 for x, y in zip(xs, ys))
    return b, (1 - ss_res / ss_tot) if ss_tot else 1.0


def per_session(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """``{key: {bytes_per_session, r2}}`` for every key read at every count (two counts at least)."""
    out: Dict[str, Dict[str, float]] = {}
    xs = [r["sessions"] for r in rows]
    for key in keys:
        if len(rows) >= 2 and all(r.get(key) is not None for r in rows):
            b, r2 = slope(xs, [r[key] for r in rows])
            out[key] = {"bytes_per_session": round(b), "r2": round(r2, 4)}
    return out


def retained(before: Mapping[str, Any], after: Mapping[str, Any], sessions: int,
             keys: Sequence[str]) -> Dict[str, int]:
    """``(after - before) / sessions`` for each key both readings have."""
    if not sessions:
        return {}
    return {k: round((after[k] - before[k]) / sessions) for k in keys
            if after.get(k) is not None and before.get(k) is not None}


def site_growth(before: Sequence[Sequence[Any]], after: Sequence[Sequence[Any]], sessions: int,
                top: int = 10) -> List[Dict[str, Any]]:
    """The allocation sites (``file:line``) whose traced bytes grew most, per session, from two
    ``reading`` site lists (``[[frames innermost first], bytes, count]``)."""
    def by_site(sites: Sequence[Sequence[Any]]) -> Dict[str, Tuple[int, int]]:
        acc: Dict[str, Tuple[int, int]] = {}
        for frames, size, count in sites:
            key = f"{frames[0][0]}:{frames[0][1]}" if frames else "<unknown>"
            b, c = acc.get(key, (0, 0))
            acc[key] = (b + int(size), c + int(count))
        return acc

    if not sessions:
        return []
    b0, b1 = by_site(before), by_site(after)
    rows = []
    for key, (size, count) in b1.items():
        size0, count0 = b0.get(key, (0, 0))
        if size > size0:
            rows.append({"site": key, "bytes_per_session": round((size - size0) / sessions),
                         "objects_per_session": round((count - count0) / sessions, 2)})
    rows.sort(key=lambda r: -r["bytes_per_session"])
    return [r for r in rows[:top] if r["bytes_per_session"] > 0]


def verdict(traced_slope: Optional[float], traced_round1: Optional[float], traced_round2: Optional[float],
            rss_slope: Optional[float], rss_retained: Optional[float], leak_floor: float = 256.0,
            retention_floor: float = 2048.0) -> Dict[str, Any]:
    """Split what stays after the sessions close into leak and allocator retention.

    Thresholds per closed session: a leak needs ``max(leak_floor, 5 % of the traced cost per
    session)`` retained in both rounds; allocator retention ``max(retention_floor, 10 % of the
    anonymous RSS per session)`` of RSS retained beyond the traced bytes retained.
    """
    out: Dict[str, Any] = {"leak_bytes_per_session": None, "one_time_bytes_per_session": None,
                           "allocator_retention_bytes_per_session": None}
    if traced_round1 is None or traced_round2 is None or rss_retained is None:
        missing = "traced bytes (the agent's memory channel)" if rss_retained is not None else "anonymous RSS"
        out.update(verdict="inconclusive", reason=f"no reading of {missing}: leak and allocator retention "
                                                   "cannot be told apart")
        return out
    leak_th = max(leak_floor, 0.05 * abs(traced_slope or 0.0))
    ret_th = max(retention_floor, 0.10 * abs(rss_slope or 0.0))
    leaking = traced_round1 >= leak_th and traced_round2 >= leak_th
    leak = min(traced_round1, traced_round2) if leaking else 0.0
    allocator = rss_retained - max(0.0, traced_round1)
    out.update(leak_bytes_per_session=round(leak), one_time_bytes_per_session=round(max(0.0, traced_round1 - leak)),
               allocator_retention_bytes_per_session=round(max(0.0, allocator)),
               thresholds={"leak_bytes_per_session": round(leak_th), "allocator_bytes_per_session": round(ret_th)})
    retaining = allocator >= ret_th
    if leaking:
        out["verdict"] = "leak + allocator retention" if retaining else "leak"
        out["reason"] = (f"{traced_round1:,.0f} and {traced_round2:,.0f} traced bytes stayed per closed session in "
                         f"two rounds (threshold {leak_th:,.0f}): objects outlive their sessions")
    elif retaining:
        out["verdict"] = "allocator retention"
        out["reason"] = (f"{rss_retained:,.0f} B of anonymous RSS stayed per closed session but only "
                         f"{max(0.0, traced_round1):,.0f} traced bytes (and {max(0.0, traced_round2):,.0f} in a second "
                         "round): the objects are gone, the allocators keep their memory")
    else:
        out["verdict"] = "returned"
        out["reason"] = (f"{rss_retained:,.0f} B of anonymous RSS and {max(0.0, traced_round1):,.0f} traced bytes "
                         "stayed per closed session, under the thresholds")
    return out


__all__ = ["DEFINITIONS", "VERDICTS", "slope", "per_session", "retained", "site_growth", "verdict"]
