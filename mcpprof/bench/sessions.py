"""Memory per session (streamable HTTP) and per process (stdio).

HTTP, from outside: open sessions in steps up to each count in ``counts`` (handshake + one call
each; the connection is then closed, the session stays on the server), read the server's anonymous
RSS, USS and PSS (``/proc/<pid>/smaps_rollup``, ``/proc/<pid>/status``) after each step; the
per-session cost is the least-squares slope with its R² (a single delta depends on the count and
the allocator's history: 34-80 KiB/session for the same server in research). Then end every
session (``DELETE``), wait, and read again: what stays per closed session.

HTTP, from inside (when the server runs under the mcpprof agent, which this starts it under): the
agent's memory control channel (``memctl``) starts tracemalloc after that first pass and the same
steps are read as live Python bytes (after ``gc.collect()``), with the allocation sites that grew;
then the sessions are closed, and a second round of as many sessions is opened and closed. Traced
bytes that stay in both rounds are a leak; anonymous RSS that stays while the traced bytes went
is allocator retention (:mod:`.retention` has the definitions and the verdict). RSS is read with
tracemalloc off, since tracemalloc's own tables grow with every traced allocation.

stdio: one server process per client, so the cost of one more client is that process's USS
(private pages) and its PSS (fair share of the shared ones); reported per process for ``processes``
servers running at once.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence

from ..errors import UsageError
from .http_client import HttpClient
from .retention import DEFINITIONS, per_session, retained, site_growth, slope, verdict
from .runner import server_memory, start_server
from .workload import Step, Target

KEYS = ("rss_anon_bytes", "uss_bytes", "pss_bytes", "rss_bytes")
COUNTS = (0, 25, 50, 100, 200)
_BATCH = 10  # sessions opened or ended at once


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


async def _open(url: str, call: Step, sids: List[str], n: int) -> None:
    while len(sids) < n:
        sids += await asyncio.gather(*(_open_session(url, call) for _ in range(min(_BATCH, n - len(sids)))))


async def _end_all(url: str, sids: List[str]) -> None:
    for i in range(0, len(sids), _BATCH):
        await asyncio.gather(*(_end_session(url, s) for s in sids[i:i + _BATCH]))
    sids.clear()


class _Inside:
    """The agent's memory control channel of the server, or nothing (readings then are None)."""

    def __init__(self, folder: Optional[str]):
        self.folder, self.control, self.pid, self.why = folder, None, None, "the server was not started by mcpprof"

    async def connect(self, timeout: float) -> None:
        from ..memory.control import ControlClient, ControlError

        if self.folder is None:
            return
        control = ControlClient(self.folder)
        try:
            self.pid = await control.wait_ready(timeout)
        except ControlError:
            self.why = "the mcpprof agent did not load in the server (not CPython, or started with -E/-I/-S?)"
            return
        self.control = control

    async def call(self, cmd: str, **args: Any) -> Optional[Dict[str, Any]]:
        from ..memory.control import ControlError

        if self.control is None:
            return None
        try:
            return await self.control.call(cmd, **args)
        except ControlError as exc:
            self.why, self.control = str(exc), None
            return None

    async def reading(self, collect: bool = True) -> Optional[Dict[str, Any]]:
        r = await self.call("reading", collect=collect)
        if r is None or "traced" not in r:
            return None
        sites = r.get("sites") or []
        # the server's own allocations: the sites leave out mcpprof's (its agent records every request)
        return {"traced_bytes": sum(int(site[1]) for site in sites), "traced_total_bytes": r["traced"],
                "gc_objects": r.get("gc_objects"), "sites": sites}


def _agent_target(target: Target, folder: str) -> Target:
    """``target`` with the agent injected and its ``memctl`` service on (CPU sampler at 10 Hz)."""
    import os

    from ..launch.config import AgentConfig
    from ..launch.run import agent_env
    from ..memory.control import ENV_DIR

    config = AgentConfig(out_dir=folder, rate_hz=10.0, flush_s=0.0, quiet=True, recorders="", services="memctl",
                         command=" ".join(target.command or []), extra={ENV_DIR: os.path.join(folder, "memctl")})
    return replace(target, env=agent_env(config, {**os.environ, **target.env}))


def _strip(reading: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    return {k: v for k, v in reading.items() if k != "sites"} if reading else None


async def http_session_memory(target: Target, counts: Sequence[int] = COUNTS,
                              call: Step = Step("tools/call", "echo", {"text": "hello"}),
                              settle_s: float = 1.0, traced: bool = True, warmup: int = 10,
                              top: int = 10) -> Dict[str, Any]:
    """Per-session memory of a streamable HTTP server started from ``target`` (command + url): the
    outside pass, then (``traced``, under the agent) the traced pass, two rounds and the verdict."""
    if not target.url or not target.command:
        raise UsageError("memory per session needs the server's command (after --) as well as --url: "
                         "mcpprof must start the server to read its memory")
    xs = sorted(set(int(n) for n in counts))
    if len(xs) < 2 or xs[0] < 0:
        raise UsageError(f"memory per session needs two or more session counts >= 0, got {list(counts)}")
    folder = tempfile.mkdtemp(prefix="mcpprof-sessions-") if traced else None
    inside = _Inside(None if folder is None else f"{folder}/memctl")
    srv = await start_server(replace(_agent_target(target, folder) if folder else target, client="lean"))
    url, sids = target.url, []
    try:
        await inside.connect(timeout=10.0)
        pid = inside.pid or srv.pids[0]
        await _open(url, call, sids, warmup)  # one-time costs (imports, caches) before the baseline
        await _end_all(url, sids)
        await asyncio.sleep(settle_s)
        outside: List[Dict[str, Any]] = []
        for n in xs:  # pass 1, from outside, tracemalloc off
            await _open(url, call, sids, n)
            await asyncio.sleep(settle_s)
            outside.append({"sessions": n, **(server_memory(pid) or {})})
        await _end_all(url, sids)
        await asyncio.sleep(settle_s)
        after = server_memory(pid) or {}
        traced_rows: List[Dict[str, Any]] = []
        rounds: Dict[str, Any] = {}
        growth: List[Dict[str, Any]] = []
        kept: List[Dict[str, Any]] = []
        if await inside.call("tracemalloc_start", nframe=1) is not None:  # pass 2, from inside
            base = await inside.reading()
            for n in xs:
                await _open(url, call, sids, n)
                await asyncio.sleep(settle_s)
                r = await inside.reading()
                if r is None:
                    break
                traced_rows.append({"sessions": n, **r})
            await _end_all(url, sids)
            await asyncio.sleep(settle_s)
            by_refcount = await inside.reading(collect=False)
            after1 = await inside.reading()
            await _open(url, call, sids, xs[-1])
            await _end_all(url, sids)
            await asyncio.sleep(settle_s)
            after2 = await inside.reading()
            await inside.call("tracemalloc_stop")
            if base and after1 and after2 and len(traced_rows) == len(xs):
                rounds = {"before": _strip(base), "after_close_no_gc": _strip(by_refcount),
                          "after_close": _strip(after1), "after_second_round": _strip(after2)}
                growth = site_growth(traced_rows[0]["sites"], traced_rows[-1]["sites"], xs[-1] - xs[0], top)
                kept = site_growth(after1["sites"], after2["sites"], xs[-1], top)
    finally:
        await srv.close()
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    return _report(xs, outside, after, traced_rows, rounds, growth, kept, inside.why, settle_s)


def _report(xs: List[int], outside: List[Dict[str, Any]], after: Dict[str, Any], traced_rows: List[Dict[str, Any]],
            rounds: Dict[str, Any], growth: List[Dict[str, Any]], kept: List[Dict[str, Any]], why: str,
            settle_s: float) -> Dict[str, Any]:
    top = xs[-1]
    cost = per_session(outside, KEYS)
    cost.update(per_session(traced_rows, ("traced_bytes", "gc_objects")))
    if "gc_objects" in cost:
        cost["gc_objects"] = {"objects_per_session": cost["gc_objects"].pop("bytes_per_session"),
                              "r2": cost["gc_objects"]["r2"]}
    kept_per_session = retained(outside[0], after, top, KEYS)
    t1 = t2 = None
    if rounds:
        kept_per_session["traced_bytes"] = t1 = retained(rounds["before"], rounds["after_close"], top,
                                                         ("traced_bytes",)).get("traced_bytes")
        t2 = retained(rounds["after_close"], rounds["after_second_round"], top, ("traced_bytes",)).get("traced_bytes")
        freed = rounds["after_close_no_gc"]
        if freed is not None and traced_rows:
            kept_per_session["traced_bytes_before_gc"] = round((freed["traced_bytes"] - rounds["before"]["traced_bytes"])
                                                               / top)
    judged = verdict((cost.get("traced_bytes") or {}).get("bytes_per_session"), t1, t2,
                     (cost.get("rss_anon_bytes") or {}).get("bytes_per_session"), kept_per_session.get("rss_anon_bytes"))
    if judged["verdict"] == "inconclusive" and not rounds:
        judged["reason"] += f" ({why})"
    return {"transport": "http", "counts": xs, "settle_s": settle_s,
            "readings": outside, "traced_readings": [_strip(r) for r in traced_rows],
            "per_session": cost, "after_close": after, "retained_per_closed_session_bytes": kept_per_session,
            "second_round_traced_bytes_per_session": t2, "rounds": rounds,
            "top_growth_sites": growth, "sites_kept_in_second_round": kept,
            "traced": bool(rounds), "traced_unavailable": None if rounds else why,
            **judged, "definitions": dict(DEFINITIONS),
            "note": "sessions idle with their connections closed; RSS read with tracemalloc off, traced bytes after "
                    "gc.collect() in a second pass"}


async def stdio_process_memory(target: Target, processes: int = 4, calls: int = 20,
                               call: Step = Step("tools/call", "echo", {"text": "hello"})) -> Dict[str, Any]:
    """USS/PSS/RSS per stdio server process with ``processes`` running at once."""
    srv = await start_server(replace(target, client="lean"), sessions=processes)
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
        return asyncio.run(http_session_memory(target, counts or COUNTS))
    return asyncio.run(stdio_process_memory(target, processes))


__all__ = ["slope", "KEYS", "COUNTS", "http_session_memory", "stdio_process_memory", "session_memory"]
