"""The bench result file: one documented, versioned JSON schema for writer, baseline and comparer.

Schema ``mcpprof.bench/1`` (one JSON object per ``mcpprof bench`` / ``compare`` invocation)::

    {"schema": "mcpprof.bench/1", "mcpprof_version": "0.1.0", "created": "2026-11-25T08:00:00Z",
     "argv": [...],
     "environment": {"python", "implementation", "platform", "cpu_model", "cpu_count", "hostname_sha",
                     "mcp_sdk", "load1_start", "load1_end"},
     "target": {"transport": "stdio|http", "command": [...] | null, "url": str | null,
                "protocol": "legacy|modern", "server_info": {...}, "revision": {"describe", "commit", "dirty"}},
     "client": "lean|sdk",                       # who sent the calls: mcpprof's lean clients or the MCP SDK's
     "workloads": [{
         "workload_id": "tool-simple",            # the stable key baseline and comparer join on
         "description": str, "mode": "closed|open|churn",
         "concurrency": int, "rate_per_s": float | null, "warmup_requests": int,
         "requests_per_run": int | null, "duration_s": float | null, "runs": int,
         "steps": [{"step_id": "tools/call echo", "method", "target", "weight", "args_sha256"}],
         "per_run": [{"run": 0, "wall_ns": int, "calls": int, "ok": int,
                      "errors": {"timeout": 0, "jsonrpc": 0, "tool": 0, "transport": 0},
                      "throughput_per_s": float,
                      "latency_ns": {"min", "p50", "p90", "p95", "p99", "max", "mean"},   # integers
                      "steps": {"<step_id>": {"ok", "errors", "latency_ns": {...}}},
                      "server_cpu_ns_per_req": int | null, "server_cpu_source": "clock|psutil|agent|none",
                      "client_cpu_ns_per_req": int,
                      "server_memory": {"rss_bytes", "uss_bytes", "pss_bytes", "rss_anon_bytes"} | null,
                      "load1": float, "schedule": {...open loop only...}}],
         "summary": {"<metric>": {"median", "min", "max", "q1", "q3"}}}],
     "baseline": {"target": {...}, "workloads": [...]},   # duet only: the other side, same shapes
     "profiles": {"<side>": ["path.mcpprof", ...]},         # when the run also profiled
     "memory": {...},                                       # bench --memory: mcpprof.bench.sessions' report
                                                            # (HTTP: per_session, retained_per_closed_session_bytes,
                                                            # verdict, definitions; stdio: per_process_median)
     "comparison": {"mode": "duet|stored", "baseline_ref": str, "rule": {...},
                    "results": [{"workload_id", "step_id", "ratio", "ci95", "p", "runs",
                                 "spread", "verdict", "reason"}],
                    "warnings": [...], "exit_code": 0|1|2}}

Rules: latencies are integer nanoseconds from ``perf_counter_ns`` with the unit in the key;
percentiles are nearest-rank over every call of one run (never percentiles of percentiles);
every run is kept; CPU is measured, never synthesised (``null`` when it could not be).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from .._version import __version__
from ..errors import UsageError
from .jsonfile import read_json
from ..atomic import write_atomic

SCHEMA = "mcpprof.bench/1"
PERCENTILES = (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99))
ERROR_KINDS = ("timeout", "jsonrpc", "tool", "transport")


def percentile(sorted_values: Sequence[int], pct: float) -> int:
    """Nearest-rank percentile of an ascending sequence (``pct`` in 0..100)."""
    if not sorted_values:
        raise ValueError("no values")
    k = max(1, min(len(sorted_values), math.ceil(pct * len(sorted_values) / 100)))
    return int(sorted_values[k - 1])


def latency_stats(latencies_ns: Iterable[int]) -> Optional[Dict[str, int]]:
    """``{min, p50, p90, p95, p99, max, mean}`` in integer ns, or None with no values."""
    values = sorted(int(v) for v in latencies_ns)
    if not values:
        return None
    out = {"min": values[0]}
    for key, pct in PERCENTILES:
        out[key] = percentile(values, pct)
    out["max"] = values[-1]
    out["mean"] = int(round(sum(values) / len(values)))
    return out


def spread_summary(values: Sequence[float]) -> Dict[str, float]:
    """Median, min, max and quartiles of per-run values (the distribution the gate reads)."""
    vals = sorted(values)
    if not vals:
        return {}
    q1, q3 = (statistics.quantiles(vals, n=4, method="inclusive")[i] for i in (0, 2)) if len(vals) > 1 else (vals[0], vals[0])
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "q1": q1, "q3": q3}


def summarize_runs(per_run: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, float]]:
    """The ``summary`` block: the spread of each headline metric over the runs."""
    metrics: Dict[str, List[float]] = {}
    for run in per_run:
        lat = run.get("latency_ns") or {}
        for key in ("p50", "p99", "mean"):
            if key in lat:
                metrics.setdefault(f"latency_ns.{key}", []).append(lat[key])
        for key in ("throughput_per_s", "server_cpu_ns_per_req", "client_cpu_ns_per_req"):
            if run.get(key) is not None:
                metrics.setdefault(key, []).append(run[key])
    return {k: spread_summary(v) for k, v in metrics.items()}


def args_digest(arguments: Any) -> str:
    return hashlib.sha256(json.dumps(arguments, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- environment and revision --------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def _package_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def environment() -> Dict[str, Any]:
    """Where the numbers were taken (no host name: a short hash of it, to tell machines apart)."""
    return {
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "platform": platform.platform(), "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
        "machine_id": hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12],
        "mcp_sdk": _package_version("mcp"), "load1_start": round(os.getloadavg()[0], 2),
    }


def git_revision(cwd: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """``git describe --always --dirty`` and the commit of ``cwd`` (None outside a repository)."""
    def git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    describe = git("describe", "--always", "--dirty", "--tags") or commit[:12]
    return {"describe": describe, "commit": commit, "dirty": describe.endswith("-dirty"),
            "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


def new_document(target: Dict[str, Any], client: str = "lean") -> Dict[str, Any]:
    return {"schema": SCHEMA, "mcpprof_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "argv": list(sys.argv), "environment": environment(), "target": target, "client": client,
            "workloads": []}


def finish_document(doc: Dict[str, Any]) -> Dict[str, Any]:
    doc["environment"]["load1_end"] = round(os.getloadavg()[0], 2)
    return doc


# -- reading and writing -------------------------------------------------------------------------


def write(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write atomically (a reader never sees half a file); never over anything but a regular file
    (an atomic replace of ``/dev/null`` would replace the device)."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise UsageError(f"{p} exists and is not a regular file; give a file path for the result")
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(p, json.dumps(doc, indent=1) + "\n")


def load(path: str | os.PathLike[str]) -> Dict[str, Any]:
    """Read and check a result file; UsageError with one line on anything wrong."""
    p = Path(path)
    doc = read_json(p, "result file")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(f"{p} is not an mcpprof bench result (schema {found!r}, expected {SCHEMA!r})")
    workloads = doc.get("workloads")
    if not isinstance(workloads, list) or not all(isinstance(w, dict) and "workload_id" in w and
                                                  isinstance(w.get("per_run"), list) for w in workloads):
        raise UsageError(f"{p}: 'workloads' must be a list of objects with workload_id and per_run")
    return doc


def workload_map(doc: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {w["workload_id"]: w for w in doc.get("workloads", [])}


def step_p50s(workload: Mapping[str, Any]) -> Dict[str, List[int]]:
    """step_id -> per-run p50 (ns) of that step, skipping runs where it had no successful call."""
    out: Dict[str, List[int]] = {}
    for run in workload.get("per_run", []):
        for step_id, st in (run.get("steps") or {}).items():
            lat = st.get("latency_ns")
            if lat:
                out.setdefault(step_id, []).append(int(lat["p50"]))
    return out


__all__ = ["SCHEMA", "percentile", "latency_stats", "spread_summary", "summarize_runs", "args_digest",
           "environment", "git_revision", "new_document", "finish_document", "write", "load",
           "workload_map", "step_p50s"]
