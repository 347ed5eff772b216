"""Memory per session (streamable HTTP) and per process (stdio), measured from outside.

HTTP: open sessions in steps up to each count in ``counts`` (handshake + one call each; the
connection is then closed, the session stays on the server), read the server's anonymous RSS,
USS and PSS (``/proc/<pid>/smaps_rollup``, ``/proc/<pid>/status``) after each step, and report the
per-session cost as the least-squares slope with its R² (a single delta depends on the count and
the allocator's history: 34-80 KiB/session for the same server in research). Then end every
session (``DELETE``), wait, and read again: what stays per closed session. RSS that stays while
the sessions are gone is mostly allocator retention; telling a leak apart needs the traced bytes
(``mcpprof leaks``), which an outside reading cannot see.

stdio: one server process per client, so the cost of one more client is that process's USS
(private pages) and its PSS (fair share of the shared ones); reported per process for ``processes``
servers running at once.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .http_client import HttpClient
from .runner import server_memory, start_server
from .workload import Step, Target

KEYS = ("rss_anon_bytes", "uss_bytes", "pss_bytes", "rss_bytes")


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


async def _open_session(url: str, call: Step) -> str:
    c = HttpClient(url, protocol="legacy")
    await c.start()
    await c.initialize()
    await c.request(call.method, call.params_factory()(0))
    sid = c.session_id or ""
    c.session_id = None  # close the connection but keep the session on the server
    await c.aclose()
    return sid


async def _end_session(url: str, sid: str) -> None:
    c = HttpClient(url, protocol="legacy")
    await c.start()
    c.session_id, c.protocol_version = sid, "2025-11-25"
    await c.aclose()  # DELETE


async def http_session_memory(target: Target, counts: Sequence[int] = (0, 25, 50, 100, 200),
                              call: Step = Step("tools/call", "echo", {"text": "hello"}),
                              settle_s: float = 1.0) -> Dict[str, Any]:
    """Per-session memory of a streamable HTTP server started from ``target`` (command + url)."""
    if not target.url or not target.command:
        raise ValueError("needs a target with both command and url (the server must be ours to measure)")
    srv = await start_server(target)  # one session of our own: the server is up and answering
    pid = srv.pids[0]
    sids: List[str] = []
    rows: List[Dict[str, Any]] = []
    try:
        for n in sorted(set(counts)):
            while len(sids) < n:
                sids += await asyncio.gather(*(_open_session(target.url, call) for _ in range(min(10, n - len(sids)))))
            await asyncio.sleep(settle_s)
            rows.append({"sessions": n, **(server_memory(pid) or {})})
        for i in range(0, len(sids), 10):
            await asyncio.gather(*(_end_session(target.url, s) for s in sids[i:i + 10]))
        await asyncio.sleep(settle_s)
        after = server_memory(pid) or {}
    finally:
        await srv.close()
    xs = [r["sessions"] for r in rows]
    per_session = {}
    for key in KEYS:
        if all(key in r for r in rows) and len(rows) >= 2:
            b, r2 = slope(xs, [r[key] for r in rows])
            per_session[key] = {"bytes_per_session": round(b), "r2": round(r2, 4)}
    top = rows[-1]["sessions"] if rows else 0
    retained = {k: round((after[k] - rows[0][k]) / top) for k in KEYS if top and k in after and k in rows[0]}
    return {"transport": "http", "counts": xs, "readings": rows, "per_session": per_session,
            "after_close": after, "retained_per_closed_session_bytes": retained,
            "note": "sessions idle, connections closed; RSS retained after DELETE is mostly allocator "
                    "retention unless `mcpprof leaks` shows traced bytes growing"}


async def stdio_process_memory(target: Target, processes: int = 4, calls: int = 20,
                               call: Step = Step("tools/call", "echo", {"text": "hello"})) -> Dict[str, Any]:
    """USS/PSS/RSS per stdio server process with ``processes`` running at once."""
    srv = await start_server(target, sessions=processes)
    try:
        make = call.params_factory()
        for c in srv.clients:
            for i in range(calls):
                await c.request(call.method, make(i))
        time.sleep(0.2)
        readings = [server_memory(pid) or {} for pid in srv.pids]
    finally:
        await srv.close()
    med = {k: int(statistics.median(r[k] for r in readings)) for k in KEYS if readings and all(k in r for r in readings)}
    return {"transport": "stdio", "processes": processes, "per_process_median": med, "readings": readings}


def session_memory(target: Target, counts: Optional[Sequence[int]] = None, processes: int = 4) -> Dict[str, Any]:
    """Dispatch by transport (blocking)."""
    if target.url:
        return asyncio.run(http_session_memory(target, counts or (0, 25, 50, 100, 200)))
    return asyncio.run(stdio_process_memory(target, processes))


__all__ = ["slope", "http_session_memory", "stdio_process_memory", "session_memory"]
