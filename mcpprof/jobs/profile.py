"""The main job: launch a server under the agent, drive a workload over stdio, stop it, and write
one folder (native profile, folded stacks, speedscope file, flame graph, workload results)."""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..errors import TargetError, UsageError
from ..launch.config import AgentConfig
from ..launch.run import agent_blockers, agent_env, resolve_command
from ..model import Profile
from ..model.io import load
from .outputs import prepare_out_dir, write_profile_outputs

EXAMPLE_COMMAND = [sys.executable, "-m", "mcpprof.examples.server"]
INIT_TIMEOUT_S = 30.0


@dataclass
class ProfileJob:
    """What to profile and how hard to drive it."""

    command: Optional[List[str]] = None  # None: the bundled example server
    out_dir: str = ""
    seconds: float = 10.0
    tools: List[str] = field(default_factory=list)
    args_file: Optional[str] = None
    rate_hz: float = 100.0
    concurrency: int = 16
    max_calls: Optional[int] = None
    force: bool = False
    mode: str = "sample"  # CPU collector: sample | exact | pyinstrument (in the server) | pyspy (outside)
    exact_cpu: bool = False  # exact CPU per request, measured by the request hooks

    @property
    def is_example(self) -> bool:
        return self.command is None


@dataclass
class ProfileJobResult:
    profile: Profile
    out_dir: str
    files: Dict[str, str]
    drive: Any
    exit_code: Optional[int]
    invalid_stdout_lines: int


def _default_out_dir() -> str:
    return os.path.join("mcpprof-out", time.strftime("%Y%m%d-%H%M%S"))


def run_profile_job(job: ProfileJob, progress: Optional[Callable[..., None]] = None,
                    started: Optional[Callable[[int, List[str]], None]] = None) -> ProfileJobResult:
    """Run the whole job; raises TargetError / UsageError with one-line messages.

    ``started(pid, call_labels)`` is called once the server answered and the workload is chosen;
    ``progress(calls=, errors=)`` while it runs."""
    if job.is_example and importlib.util.find_spec("mcp") is None:
        raise UsageError("the bundled example server needs the MCP SDK: pip install 'mcpprof[example]'")
    command = list(EXAMPLE_COMMAND) if job.is_example else resolve_command(job.command or [])
    blocker = agent_blockers(command)
    if blocker:
        raise UsageError(blocker)
    args_by_tool: Dict[str, Dict[str, Any]] = {}
    if job.args_file:
        from ..bench.drive import load_args_file

        args_by_tool = load_args_file(job.args_file)

    out = prepare_out_dir(job.out_dir or _default_out_dir(), job.force)
    raw = out / "raw"
    raw.mkdir(exist_ok=True)
    from ..collect.registry import get_collector

    spec = get_collector(job.mode)
    reason = spec.check()
    if reason:
        raise UsageError(reason)
    # py-spy samples from outside; the agent then only tags requests and measures latency
    config = AgentConfig(out_dir=str(raw), rate_hz=job.rate_hz, flush_s=1.0, quiet=True,
                         command=" ".join(command), mode="sample" if spec.runs_in == "outside" else job.mode,
                         exact_cpu=job.exact_cpu)
    env = agent_env(config)
    log_path = out / "server.stderr.log"
    outside: Any = None
    if spec.runs_in == "outside":
        user_started = started

        def started(pid: int, calls: List[str]) -> None:  # noqa: F811 - also start the outside collector
            nonlocal outside
            outside = spec.factory(rate_hz=job.rate_hz, pid=pid).start()
            if user_started is not None:
                user_started(pid, calls)

    with open(log_path, "wb") as log:
        try:
            drive_result, exit_code, invalid = asyncio.run(
                _drive(job, command, env, log, args_by_tool, progress, started))
        finally:
            if outside is not None:
                outside.stop()

    profile = _collect(raw, log_path)
    if outside is not None:  # the CPU samples are py-spy's; latency and metadata the agent's
        sampled = outside.snapshot()
        sampled.requests = profile.requests
        sampled.metadata = {**profile.metadata, **sampled.metadata}
        profile = sampled
    profile.metadata["workload"] = {
        "seconds": job.seconds, "concurrency": job.concurrency, "transport": "stdio",
        "server_exit_code": exit_code,
    }
    files = write_profile_outputs(profile, out)
    bench_path = out / "bench.json"
    bench_path.write_text(json.dumps(_drive_json(drive_result), indent=2))
    files["bench.json"] = str(bench_path)
    from ..report import load_inputs, write_report  # the one page a person reads, built from the files

    files["report.html"] = write_report(load_inputs(out), out / "report.html")
    return ProfileJobResult(profile, str(out), files, drive_result, exit_code, invalid)


async def _drive(job: ProfileJob, command: List[str], env: Dict[str, str], log: Any,
                 args_by_tool: Dict[str, Dict[str, Any]], progress: Optional[Callable[..., None]],
                 started: Optional[Callable[[int, List[str]], None]]) -> Any:
    from ..bench.client import StdioClient
    from ..bench.drive import PROMPTS_GET, RESOURCES_READ, CallSpec, drive, select_tools

    client = StdioClient(command, env=env, stderr=log)
    try:
        await client.start()
    except OSError as exc:
        raise TargetError(f"cannot start the server: {exc}") from None
    exit_code = None
    try:
        try:
            await asyncio.wait_for(client.initialize(), INIT_TIMEOUT_S)
        except Exception as exc:
            code = await client.aclose()
            raise TargetError(_start_failure(exc, code, log.name)) from None
        tools = await client.list_tools()
        calls = select_tools(tools, job.tools or None, example=job.is_example, arguments=args_by_tool)
        if job.is_example and not job.tools:
            calls += [CallSpec(RESOURCES_READ, "example://config"),
                      CallSpec(PROMPTS_GET, "greet", {"name": "mcpprof"})]
        if started is not None:
            started(client.pid or 0, [c.label for c in calls])
        report = None
        if progress is not None:
            def report(done: int, errors: int, elapsed: float) -> None:
                progress(calls=done, errors=errors)
        result = await drive(client, calls, seconds=job.seconds, concurrency=job.concurrency,
                             max_calls=job.max_calls, progress=report)
    finally:
        if exit_code is None:
            exit_code = await client.aclose()
    return result, exit_code, client.invalid_lines


def _start_failure(exc: BaseException, exit_code: Optional[int], log_name: str) -> str:
    tail = ""
    try:
        lines = [ln for ln in Path(log_name).read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            tail = f"; its last stderr line: {lines[-1].strip()[:200]}"
    except OSError:
        pass
    if exit_code is not None:
        return f"the server exited (code {exit_code}) before answering initialize{tail} (full log: {log_name})"
    return f"the server did not answer initialize ({exc.__class__.__name__}){tail} (full log: {log_name})"


def _collect(raw: Path, log_path: Path) -> Profile:
    paths = sorted(glob.glob(str(raw / "*.mcpprof")))
    if not paths:
        raise TargetError(
            "the server ran but wrote no profile: it was not instrumented (does it import the MCP SDK? "
            f"is it a CPython started with -E/-I/-S?); server log: {log_path}")
    profiles = [load(p) for p in paths]
    profiles = [p for p in profiles if p.samples or (p.requests is not None and p.requests.total_count)] or profiles
    if len(profiles) == 1:
        return profiles[0]
    from ..analyse.ops import merge

    return merge(profiles)


def _drive_json(result: Any) -> Dict[str, Any]:
    to_dict = getattr(result, "to_dict", None)
    return to_dict() if callable(to_dict) else {"result": repr(result)}
