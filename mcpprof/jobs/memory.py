"""The ``memory`` job: live memory per allocation stack and MCP tool, with the process's memory
and fragmentation figures, for a server launched under the agent or a running pid (memray attach).

Launched: warm up, start the backend through the agent's memory channel (``sampled``, the default:
sampled allocations from the optional C extension, estimates at about 1.1x cost; ``tracemalloc``,
every allocation; or a memray Tracker in the server), drive the workload, snapshot, then read
process memory and fragmentation (tracemalloc stopped first: CPython hides pymalloc's statistics
while it traces). Where the server's Python cannot load the sampled extension, the job falls back
to tracemalloc and says why. The profile carries the GC pauses and memory timeline the agent
recorded in ``extras``; with ``sampled``, :attr:`MemoryJobResult.allocated` holds what was
allocated while the workload ran.
"""

from __future__ import annotations

import asyncio
import glob
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..collect.allocsample_collector import DEFAULT_INTERVAL
from ..errors import TargetError, UsageError
from ..memory.control import ControlError
from ..model import Profile
from ..model.io import load
from .memlaunch import default_out_dir, launch, server_command
from .outputs import prepare_out_dir, write_profile_outputs

BACKENDS = ("sampled", "tracemalloc", "memray")
MEMORY_OUTPUTS = (("memory.folded", "folded"), ("memory.speedscope.json", "speedscope"), ("memory.html", "html"))
ALLOCATED_OUTPUTS = (("allocated.folded", "folded"), ("allocated.speedscope.json", "speedscope"),
                     ("allocated.html", "html"))


@dataclass
class MemoryJob:
    command: Optional[List[str]] = None   # None: the bundled example server
    pid: Optional[int] = None             # attach to a running process instead (memray)
    backend: str = "sampled"
    seconds: float = 10.0
    warmup_calls: int = 200
    nframe: int = 1
    interval: int = DEFAULT_INTERVAL      # sampled: mean bytes between samples
    tools: List[str] = field(default_factory=list)
    args_file: Optional[str] = None
    concurrency: int = 16
    native: bool = False
    trim: bool = False
    out_dir: str = ""
    force: bool = False


@dataclass
class MemoryJobResult:
    profile: Profile
    report: Dict[str, Any]      # process memory and fragmentation (MemoryReport.to_dict())
    out_dir: str
    files: Dict[str, str]
    drive: Any = None
    #: sampled backend: estimated bytes/objects allocated per stack while the workload ran (freed or not)
    allocated: Optional[Profile] = None


def run_memory_job(job: MemoryJob, progress: Optional[Callable[[str], None]] = None) -> MemoryJobResult:
    if job.backend not in BACKENDS:
        raise UsageError(f"unknown memory backend {job.backend!r}: choose one of {', '.join(BACKENDS)}")
    note = progress or (lambda _msg: None)
    if job.pid is not None:
        from ..collect.memray_collector import preflight

        if job.backend != "memray":
            raise UsageError("a running process is reached from outside with memray only: add --backend memray")
        problems = preflight(int(job.pid))
        if problems:
            raise TargetError("; ".join(problems))
    out = prepare_out_dir(job.out_dir or default_out_dir("memory"), job.force)
    allocated = drive = None
    if job.pid is not None:
        profile, report = _attach(job, out, note)
    else:
        profile, report, drive, allocated = _launched(job, out, note)
    profile.extras["process_memory"] = report
    files = write_profile_outputs(profile, out, "memory.mcpprof", MEMORY_OUTPUTS if profile.samples else ())
    if allocated is not None:
        files.update(write_profile_outputs(allocated, out, "allocated.mcpprof",
                                           ALLOCATED_OUTPUTS if allocated.samples else ()))
    path = out / "memory-report.json"
    path.write_text(json.dumps(report, indent=2))
    files["memory-report.json"] = str(path)
    return MemoryJobResult(profile, report, str(out), files, drive, allocated)


def _attach(job: MemoryJob, out: Path, note: Callable[[str], None]) -> Any:
    from ..collect.memray_collector import attach, read_capture
    from ..memory.fragmentation import DEFINITIONS
    from ..memory.procmem import process_memory

    pid = int(job.pid or 0)
    capture = str(out / f"memray-{pid}.bin")
    note(f"attaching memray to pid {pid} for {job.seconds:g} s (gdb; the server pauses briefly)")
    attach(pid, job.seconds, capture, native=job.native)
    profile = read_capture(capture, "leaked")
    figures = process_memory(pid)
    report = {"pid": pid, "figures": figures, "definitions": {k: DEFINITIONS[k] for k in figures},
              "unavailable": {"allocators": "pymalloc/glibc figures are read inside the process: "
                                            "use mcpprof memory -- <server command>"}}
    return profile, report


def _launched(job: MemoryJob, out: Path, note: Callable[[str], None]) -> Any:
    command = server_command(job.command)
    args_by_tool: Dict[str, Dict[str, Any]] = {}
    if job.args_file:
        from ..bench.drive import load_args_file

        args_by_tool = load_args_file(job.args_file)
    raw = out / "raw"
    raw.mkdir(exist_ok=True)
    log_path = out / "server.stderr.log"
    with open(log_path, "wb") as log:
        profile, report, drive, allocated = asyncio.run(_drive(job, command, raw, log, args_by_tool, note))
    agent_profiles = [load(p) for p in sorted(glob.glob(str(raw / "profile-*.mcpprof")))]
    for agent_profile in agent_profiles:  # GC pauses and the memory timeline the agent recorded
        for key in ("gc_pauses", "memory_timeline"):
            if key in agent_profile.extras:
                profile.extras[key] = agent_profile.extras[key]
        if agent_profile.requests is not None:
            profile.requests = agent_profile.requests
    profile.metadata["command"] = " ".join(command)
    return profile, report, drive, allocated


async def _drive(job: MemoryJob, command: List[str], raw: Path, log: Any, args_by_tool: Dict[str, Dict[str, Any]],
                 note: Callable[[str], None]) -> Any:
    from ..bench.drive import drive, select_tools

    async with launch(command, raw, log, recorders="gc_pauses,memory_timeline") as srv:
        calls = select_tools(srv.tools, job.tools or None, example=job.command is None, arguments=args_by_tool)
        ctl = srv.control
        try:
            if job.warmup_calls:
                await drive(srv.client, calls, seconds=None, max_calls=job.warmup_calls, concurrency=job.concurrency)
            capture = str(raw / f"memray-{srv.pid}.bin")
            backend, fallback, allocated = job.backend, "", None
            if backend == "sampled":
                try:
                    await ctl.call("sampled_start", interval=job.interval)
                except ControlError as exc:
                    fallback = str(exc).split(" failed in the server: ", 1)[-1]
                    note(f"sampled backend unavailable in the server ({fallback}); falling back to tracemalloc")
                    backend = "tracemalloc"
            if backend == "tracemalloc":
                await ctl.call("tracemalloc_start", nframe=job.nframe)
            elif backend == "memray":
                await ctl.call("memray_start", path=capture, native=job.native)
            note(f"{backend} started in pid {srv.pid}; driving {len(calls)} tools for {job.seconds:g} s")
            result = await drive(srv.client, calls, seconds=job.seconds, concurrency=job.concurrency)
            if backend in ("tracemalloc", "sampled"):
                path, allocated_path = str(raw / f"{backend}.mcpprof"), str(raw / f"{backend}-allocated.mcpprof")
                reply = await ctl.call("snapshot", path=path, allocated_path=allocated_path)
                await ctl.call(f"{backend}_stop")
                profile = load(path)
                if reply.get("allocated_path"):
                    allocated = load(allocated_path)
                if fallback:
                    profile.metadata["backend_fallback"] = f"sampled -> tracemalloc: {fallback}"
            else:
                await ctl.call("memray_stop")
                from ..collect.memray_collector import read_capture

                profile = read_capture(capture, "leaked")
            report = await ctl.call("report", trim=job.trim)
        except ControlError as exc:
            raise TargetError(f"{exc} (server log: {log.name})") from None
        return profile, report, result, allocated


def memory_snapshot_here(nframe: int = 1) -> Profile:
    """In-use profile of this process from allocation sampling when it runs here
    (``mcpprof.collect._allocsample.start()``), else from tracemalloc (which must be tracing)."""
    import tracemalloc

    from ..collect.allocsample_collector import SampledCollector, running
    from ..collect.tracemalloc_collector import TracemallocCollector
    from ..memory.fragmentation import measure

    if running():
        profile = SampledCollector().snapshot()
    elif not tracemalloc.is_tracing():
        raise UsageError("tracemalloc is not tracing in this process (nor allocation sampling): call "
                         "tracemalloc.start() after warm-up, or give a pid or a server command")
    else:
        profile = TracemallocCollector(nframe).snapshot()
    profile.extras["process_memory"] = measure(count_objects=False).to_dict()
    return profile


def temp_out_dir() -> str:
    return tempfile.mkdtemp(prefix="mcpprof-memory-")


def top_sites(profile: Profile, by: str = "bytes", limit: int = 15) -> List[Dict[str, Any]]:
    """Allocation sites (leaf frame) per tool, biggest first, ``by`` ``bytes`` or ``count``."""
    from ..model import labels as L

    acc: Dict[Any, List[int]] = {}
    for sample, frames in profile.iter_stacks():
        leaf = frames[-1] if frames else None
        site = leaf.label() if leaf is not None else "?"
        tool = sample.label(L.TOOL) or ""
        v = acc.setdefault((site, tool), [0, 0])
        v[0] += sample.values[0]
        v[1] += sample.values[1] if len(sample.values) > 1 else 0
    idx = 0 if by == "bytes" else 1
    rows = sorted(acc.items(), key=lambda kv: -kv[1][idx])[:limit]
    return [{"site": s, "tool": t, "bytes": v[0], "objects": v[1]} for (s, t), v in rows]


__all__ = ["MemoryJob", "MemoryJobResult", "run_memory_job", "memory_snapshot_here", "top_sites", "temp_out_dir"]
