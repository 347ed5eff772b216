"""``mcpprof run``: run a server with the agent injected (for hosts and scripts)."""

from __future__ import annotations

import os
from typing import Tuple

import click

from ..launch.config import AgentConfig
from ..launch.run import agent_blockers, default_out_dir, exec_server, resolve_command
from . import console


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the profiles (one per server process). Default: ~/.mcpprof/runs/<time>.")
@click.option("--rate", type=click.FloatRange(1, 10_000), default=100.0, show_default=True,
              help="Sampling rate in Hz.")
@click.option("--flush", type=click.FloatRange(0, 3600), default=1.0, show_default=True,
              help="Seconds between periodic writes of the profile (0: only at exit).")
@click.option("--quiet", is_flag=True, help="No notice on stderr when profiling starts.")
@click.option("--mode", type=click.Choice(["sample", "exact", "pyinstrument"]), default="sample", show_default=True,
              help="CPU collector in the server: sample (low overhead), exact (yappi: every call, slow), "
                   "pyinstrument (event-loop thread only).")
@click.option("--exact-cpu", is_flag=True,
              help="Also measure each request's CPU exactly (thread CPU clock around its steps, tasks and "
                   "worker threads): the summary's CPU column then needs no sampling, at a higher overhead.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def run_cmd(out_dir: str, rate: float, flush: float, quiet: bool, mode: str, exact_cpu: bool,
            command: Tuple[str, ...]) -> None:
    """Run COMMAND (an unmodified MCP server) with the profiler injected.

    stdin and stdout stay the server's; the profile is written into --out every second and
    completely when the server exits (stdin closed, SIGTERM, SIGINT). Use it as the server's
    command in a host's config:  mcpprof run --out DIR -- python my_server.py
    """
    cmd = resolve_command(command)
    blocker = agent_blockers(cmd)
    if blocker:
        console.info(f"[yellow]warning:[/] {blocker}")
    out = os.path.abspath(out_dir or default_out_dir())
    os.makedirs(out, exist_ok=True)
    config = AgentConfig(out_dir=out, rate_hz=rate, flush_s=flush, quiet=quiet, command=" ".join(cmd), mode=mode,
                         exact_cpu=exact_cpu)
    exec_server(cmd, config)
