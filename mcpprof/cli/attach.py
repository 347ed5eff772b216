"""``mcpprof attach PID``: profile a running server (through its agent, else with py-spy)."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional

import click
from rich.markup import escape

from ..errors import UsageError
from . import console


def _write(profile: Any, path: str, force: bool) -> str:
    from ..export.registry import guess_from_filename
    from ..model.io import save

    if os.path.exists(path) and not force:
        raise UsageError(f"{path} exists; choose another -o or add --force to overwrite")
    exporter = None if path.endswith(".mcpprof") else guess_from_filename(path)
    if exporter is None:
        save(profile, path)
    else:
        data = exporter.render(profile)
        with open(path, "wb") as fh:
            fh.write(data)
    return path


@click.command("attach")
@click.argument("pid", type=click.IntRange(1))
@click.option("--seconds", type=click.FloatRange(0.1, 86_400), default=10.0, show_default=True,
              help="How long to record.")
@click.option("--mode", type=click.Choice(["auto", "sample", "exact", "pyinstrument", "pyspy"]), default="auto",
              show_default=True,
              help="auto: the agent's own collector if the server runs the agent, else py-spy. "
                   "sample/exact/pyinstrument need the agent; pyspy attaches from outside.")
@click.option("--rate", type=click.FloatRange(1, 10_000), default=None, help="Sampling rate in Hz.")
@click.option("--clock", type=click.Choice(["cpu", "wall"]), default="cpu", show_default=True,
              help="exact mode: time calls by CPU or wall clock.")
@click.option("--wait", "wait_view", is_flag=True,
              help="Also record where requests wait (async wait view; agent only), written to FILE.wait.mcpprof.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output file (.mcpprof, or .folded/.speedscope.json/.html to export). "
                   "Default: mcpprof-<pid>-<time>.mcpprof")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-request summary as JSON on stdout.")
def attach_cmd(pid: int, seconds: float, mode: str, rate: Optional[float], clock: str, wait_view: bool,
               output: Optional[str], force: bool, as_json: bool) -> None:
    """Profile the running server PID for --seconds and write its profile.

    \b
    Examples:
      mcpprof attach 4242 --seconds 30
      mcpprof attach 4242 --mode exact -o exact.html
    """
    from ..launch.attach import profile_pid  # the table's modules load after recording has begun

    out = output or f"mcpprof-{pid}-{time.strftime('%Y%m%d-%H%M%S')}.mcpprof"
    if os.path.exists(out) and not force:
        raise UsageError(f"{out} exists; choose another -o or add --force to overwrite")
    t0 = time.perf_counter()

    def started(info: Dict[str, Any]) -> None:
        how = "through its mcpprof agent" if info.get("via") == "agent" else "with py-spy from outside"
        console.info(f"mcpprof: recording pid {pid} {how} ({info.get('mode')}) for {seconds:g} s "
                     f"\\[started in {time.perf_counter() - t0:.2f} s]")

    profile = profile_pid(pid, seconds, mode, rate_hz=rate, wait=wait_view, clock=clock, on_start=started)
    from ..analyse.summary import format_table, summarize

    summary = summarize(profile)
    if as_json:
        from .output import print_json

        print_json(summary.to_dict())
    else:
        console.console.print(format_table(summary))
    if profile.metadata.get("limitations"):
        console.info(f"[yellow]note:[/] {escape(str(profile.metadata['limitations']))}")
    written = [_write(profile, out, force)]
    if wait_view:
        from ..collect.asyncwait import wait_profile

        wait = wait_profile(profile)
        if wait is not None:
            base = out[: -len(".mcpprof")] if out.endswith(".mcpprof") else os.path.splitext(out)[0]
            written.append(_write(wait, base + ".wait.mcpprof", force))
    console.info("wrote " + ", ".join(written))
