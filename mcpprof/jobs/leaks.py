"""The ``leaks`` job: launch a server under the agent, warm every selected tool up, then drive one
tool at a time in windows of growing size, reading live memory per allocation site (tracemalloc,
garbage collected first) after each window, and judge each tool (:mod:`mcpprof.analyse.leaks`).

Writes ``leaks.json`` (verdicts and evidence), ``leaks.mcpprof`` (what grew, per tool and stack)
with its speedscope and HTML views, and the server's stderr log into one folder.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..analyse.leaks import INCONCLUSIVE, LEAK, NO_LEAK, Rules, ToolResult, analyse_tool, leak_profile
from ..errors import TargetError
from ..memory.control import ControlError
from .memlaunch import default_out_dir, launch, server_command
from .outputs import prepare_out_dir, write_profile_outputs

DEFAULT_WINDOWS = (5, 10, 20, 40, 80)


@dataclass
class LeakJob:
    command: Optional[List[str]] = None     # None: the bundled example server
    tools: List[str] = field(default_factory=list)
    args_file: Optional[str] = None
    warmup: int = 20                        # calls per tool before the baseline
    windows: List[int] = field(default_factory=lambda: list(DEFAULT_WINDOWS))
    nframe: int = 8                         # traceback depth kept by tracemalloc
    out_dir: str = ""
    force: bool = False
    rules: Rules = field(default_factory=Rules)
    call_timeout: float = 60.0


@dataclass
class LeakJobResult:
    results: List[ToolResult]
    out_dir: str
    files: Dict[str, str]
    server: Dict[str, Any]

    @property
    def leaks(self) -> List[ToolResult]:
        return [r for r in self.results if r.verdict == LEAK]

    def to_dict(self) -> Dict[str, Any]:
        return {"server": self.server, "tools": [r.to_dict() for r in self.results]}


def run_leak_job(job: LeakJob, progress: Optional[Callable[[str, str], None]] = None) -> LeakJobResult:
    """Run the job; ``progress(tool, message)`` is called as windows complete."""
    command = server_command(job.command)
    args_by_tool: Dict[str, Dict[str, Any]] = {}
    if job.args_file:
        from ..bench.drive import load_args_file

        args_by_tool = load_args_file(job.args_file)
    out = prepare_out_dir(job.out_dir or default_out_dir("leaks"), job.force)
    raw = out / "raw"
    raw.mkdir(exist_ok=True)
    log_path = out / "server.stderr.log"
    with open(log_path, "wb") as log:
        results, readings, server = asyncio.run(_run(job, command, raw, log, args_by_tool, progress))
    from ..collect.tracemalloc_collector import function_at

    files: Dict[str, str] = {}
    report = LeakJobResult(results, str(out), files, server)
    path = out / "leaks.json"
    path.write_text(json.dumps(report.to_dict(), indent=2))
    files["leaks.json"] = str(path)
    profile = _growth_profile(readings, function_at, server)
    if profile.samples:
        files.update(write_profile_outputs(profile, out, "leaks.mcpprof",
                                           (("leaks.speedscope.json", "speedscope"), ("leaks.html", "html"))))
    return report


def _growth_profile(readings: Dict[str, List[Dict[str, Any]]], function_at: Any, server: Dict[str, Any]) -> Any:
    from ..model.profile import INUSE_OBJECTS, INUSE_SPACE, ProfileBuilder

    builder = ProfileBuilder([INUSE_SPACE, INUSE_OBJECTS], {"collector": "tracemalloc", "kind": "leak growth",
                                                           "command": server.get("command"), "pid": server.get("pid")})
    for tool, rs in readings.items():
        part = leak_profile(tool, rs, function_at)
        for sample, frames in part.iter_stacks():
            builder.add(frames, sample.values, sample.labels)
    return builder.build()


async def _run(job: LeakJob, command: List[str], raw: Path, log: Any, args_by_tool: Dict[str, Dict[str, Any]],
               progress: Optional[Callable[[str, str], None]]) -> Any:
    from ..bench.drive import select_tools
    from ..collect.toolframes import is_library_file
    from ..collect.tracemalloc_collector import function_at

    async with launch(command, raw, log) as srv:
        calls = select_tools(srv.tools, job.tools or None, example=job.command is None, arguments=args_by_tool)
        ctl = srv.control
        try:
            pre = await ctl.call("reading")
            await ctl.call("tracemalloc_start", nframe=job.nframe)
            failures: Dict[str, str] = {}
            for spec in calls:  # tracing starts before the warm-up: its first growth is warm-up too
                err = await _call_n(srv.client, spec, job.warmup, job.call_timeout)
                if err:
                    failures[spec.name_or_uri] = err
            results: List[ToolResult] = []
            readings: Dict[str, List[Dict[str, Any]]] = {}
            for spec in calls:
                tool = spec.name_or_uri
                if tool in failures:
                    results.append(ToolResult(tool, INCONCLUSIVE, [], evidence=[f"calls failed: {failures[tool]}"]))
                    continue
                series = [await ctl.call("reading")]
                done: List[int] = []
                result = None
                for n in job.windows:
                    err = await _call_n(srv.client, spec, n, job.call_timeout)
                    if err:
                        result = ToolResult(tool, INCONCLUSIVE, done, evidence=[f"calls failed: {err}"])
                        break
                    series.append(await ctl.call("reading"))
                    done.append(n)
                    result = analyse_tool(tool, series, done, job.rules, function_at, is_library_file)
                    if progress is not None:
                        progress(tool, f"{sum(done)} calls: {result.verdict}")
                    if len(done) >= job.rules.confirm and result.verdict in (LEAK, NO_LEAK):
                        break
                assert result is not None
                results.append(result)
                readings[tool] = series
            await ctl.call("tracemalloc_stop")
            memory = await ctl.call("report")
        except ControlError as exc:
            raise TargetError(f"{exc} (server log: {log.name})") from None
        server = {"command": " ".join(command), "pid": srv.pid, "warmup": job.warmup, "nframe": job.nframe,
                  "windows": list(job.windows), "rules": job.rules.__dict__, "rss_before_warmup": pre.get("rss"),
                  "memory_after": memory}
        return results, readings, server


async def _call_n(client: Any, spec: Any, n: int, timeout: float) -> str:
    """Make ``n`` sequential calls; the first error's text, or ``""``."""
    from ..bench.client import CallError

    for _ in range(n):
        try:
            result = await client.request(spec.method, spec.params(), timeout)
            if result.get("isError"):
                text = " ".join(str(c.get("text", "")) for c in result.get("content") or [])[:200]
                return f"{spec.label} reported an error: {text}"
        except CallError as exc:
            if exc.kind == "transport":
                raise TargetError(f"the server went away during {spec.label}: {exc}") from None
            return str(exc)
    return ""
