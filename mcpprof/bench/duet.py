"""Duet runs: baseline and candidate servers side by side, calls alternated, so both see the
same background noise and each run yields a paired ratio (Bulej et al., ICPE 2020, adapted to
request-level alternation; research: bench-and-regression.md §1.2).

Every run starts both servers afresh (concurrently), does the handshake and ``warmup`` calls on
each, then makes ``requests`` measured calls per side: the same step and arguments on both, one in
flight, the order inside each pair drawn at random (seeded). Per side and run it keeps the same
row as :mod:`.runner` (latency per step, server CPU per request, memory), so the result document
holds the candidate under ``workloads`` and the baseline under ``baseline.workloads``.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import results
from .client import CallError
from .gate import Rule, compare_paired
from .openloop import Tally
from .runner import Server, describe, process_cpu_ns, resolve, server_memory, start_server
from .workload import Target, Workload

_clock = time.perf_counter_ns
SIDES = ("baseline", "candidate")


async def _alternate(servers: Sequence[Server], tallies: Sequence[Tally], n: int, rng: random.Random,
                     timeout: float) -> None:
    clients = [s.clients[0] for s in servers]
    for _ in range(n):
        k, method, params = tallies[0].next_call()
        tallies[1].next_call()  # keep both tallies' pickers and indices in step
        order = (0, 1) if rng.random() < 0.5 else (1, 0)
        for side in order:
            t0 = _clock()
            try:
                result: Optional[dict] = await clients[side].request(method, params, timeout)
                err = None
            except CallError as exc:
                result, err = None, exc
            tallies[side].record(k, t0, result, err)
            if tallies[side].transport_lost:
                return


def _row(tally: Tally, run: int, wall_ns: int, cpu: Tuple[Any, Any], client_cpu_ns: int,
         pid: int) -> Dict[str, Any]:
    calls = tally.done
    errors = tally.errors()
    (c0, src), (c1, _) = cpu
    return {"run": run, "wall_ns": wall_ns, "calls": calls, "ok": calls - sum(errors.values()),
            "errors": {k: errors.get(k, 0) for k in results.ERROR_KINDS},
            "throughput_per_s": round(calls / (wall_ns / 1e9), 2) if wall_ns else 0.0,
            "latency_ns": results.latency_stats(tally.all_latencies()), "steps": tally.step_results(),
            "server_cpu_ns_per_req": int((c1 - c0) / calls) if calls and c0 is not None and c1 is not None else None,
            "server_cpu_source": src, "client_cpu_ns_per_req": int(client_cpu_ns / (2 * calls)) if calls else None,
            "server_memory": server_memory(pid) if pid else None, "load1": round(os.getloadavg()[0], 2)}


async def duet_workload(baseline: Target, candidate: Target, workload: Workload, runs: int, seed: int = 0,
                        profile_dirs: Optional[Dict[str, str]] = None,
                        progress: Optional[Callable[[str, int, int], None]] = None,
                        stderr: Any = subprocess.DEVNULL) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, Any]]:
    """Run ``workload`` as a duet ``runs`` times; returns ({side: result entry}, candidate facts)."""
    workload = replace(workload, concurrency=1, sessions=1, mode="closed", rate=None)
    rows: Dict[str, List[Dict[str, Any]]] = {s: [] for s in SIDES}
    rng = random.Random(seed)
    facts: Dict[str, Any] = {}
    resolved = workload
    dirs = profile_dirs or {}
    for run in range(runs):
        if progress is not None:
            progress(workload.name, run, runs)
        started = await asyncio.gather(
            *(start_server(t, 1, workload.timeout, dirs.get(side), stderr) for t, side in zip((baseline, candidate), SIDES)),
            return_exceptions=True)
        servers = [s for s in started if isinstance(s, Server)]
        try:
            for s in started:
                if isinstance(s, BaseException):
                    raise s
            if run == 0:
                resolved = await resolve(workload, servers[1].clients[0])
                facts = {"protocol": servers[1].protocol, "server_info": servers[1].server_info}
            if workload.warmup:
                await _alternate(servers, [Tally(resolved.steps, run, seed) for _ in SIDES], workload.warmup, rng,
                                 workload.timeout)
            tallies = [Tally(resolved.steps, run, seed) for _ in SIDES]
            cpu0 = [process_cpu_ns(s.pids[0]) if s.pids else (None, "none") for s in servers]
            c0, w0 = time.process_time_ns(), _clock()
            await _alternate(servers, tallies, resolved.requests or 1000, rng, workload.timeout)
            w1, c1 = _clock(), time.process_time_ns()
            cpu1 = [process_cpu_ns(s.pids[0]) if s.pids else (None, "none") for s in servers]
            for i, side in enumerate(SIDES):
                rows[side].append(_row(tallies[i], run, w1 - w0, (cpu0[i], cpu1[i]), c1 - c0,
                                       servers[i].pids[0] if servers[i].pids else 0))
        finally:
            await asyncio.gather(*(s.close() for s in servers), return_exceptions=True)
    entries = {}
    for side in SIDES:
        entry = describe(resolved, runs)
        entry["pairing"] = "duet"
        entry["per_run"] = rows[side]
        entry["summary"] = results.summarize_runs(rows[side])
        entries[side] = entry
    return entries, facts


def paired_p50s(entries: Dict[str, Dict[str, Any]]) -> Dict[Tuple[str, str], Tuple[List[int], List[int]]]:
    """``{(workload_id, step_id): (baseline p50s, candidate p50s)}`` over runs where both sides
    had successful calls of that step."""
    out: Dict[Tuple[str, str], Tuple[List[int], List[int]]] = {}
    base, cand = entries["baseline"], entries["candidate"]
    for b_run, c_run in zip(base["per_run"], cand["per_run"]):
        for step_id, b_step in b_run["steps"].items():
            c_step = c_run["steps"].get(step_id) or {}
            if b_step.get("latency_ns") and c_step.get("latency_ns"):
                pair = out.setdefault((cand["workload_id"], step_id), ([], []))
                pair[0].append(b_step["latency_ns"]["p50"])
                pair[1].append(c_step["latency_ns"]["p50"])
    return out


async def duet(baseline: Target, candidate: Target, workloads: Sequence[Workload], rule: Rule, runs: int,
               seed: int = 0, profile_dirs: Optional[Dict[str, str]] = None,
               progress: Optional[Callable[[str, int, int], None]] = None,
               revision_cwds: Tuple[Optional[str], Optional[str]] = (None, None)) -> Dict[str, Any]:
    """Run every workload as a duet and gate it; the whole result document (with ``comparison``)."""
    doc = results.new_document({**candidate.describe(), "revision": results.git_revision(revision_cwds[1])},
                               client=candidate.client)
    doc["baseline"] = {"target": {**baseline.describe(), "revision": results.git_revision(revision_cwds[0])},
                       "workloads": []}
    pairs: Dict[Tuple[str, str], Tuple[List[int], List[int]]] = {}
    for i, workload in enumerate(workloads):
        entries, facts = await duet_workload(baseline, candidate, workload, runs, seed + i, profile_dirs, progress)
        doc["target"].update(facts)
        doc["workloads"].append(entries["candidate"])
        doc["baseline"]["workloads"].append(entries["baseline"])
        pairs.update(paired_p50s(entries))
    ref = " ".join(baseline.command or []) or baseline.url or ""
    doc["comparison"] = compare_paired(pairs, rule, baseline_ref=ref)
    if profile_dirs:
        doc["profiles"] = {side: sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".mcpprof"))
                           for side, d in profile_dirs.items() if os.path.isdir(d)}
    return results.finish_document(doc)


__all__ = ["duet", "duet_workload", "paired_p50s", "SIDES"]
