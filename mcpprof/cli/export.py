"""``mcpprof export``: convert a profile with any registered exporter."""

from __future__ import annotations

import os
from typing import Optional

import click

from ..errors import UsageError
from ..export.registry import EXPORTERS, get_exporter
from ..model.io import load
from . import console
from .output import write_bytes


@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--to", "fmt", type=click.Choice(sorted(EXPORTERS)), required=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output file ('-' for stdout). Default: FILE's name with the format's extension.")
@click.option("--full-paths", is_flag=True, help="Keep absolute file paths (shortened by default).")
@click.option("--pyroscope", is_flag=True,
              help="pprof only: label keys as Prometheus names (gen_ai_tool_name), for Grafana Pyroscope.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def export_cmd(file: str, fmt: str, output: Optional[str], full_paths: bool, pyroscope: bool, force: bool) -> None:
    """Convert a .mcpprof FILE to folded stacks, a speedscope file, pprof, a trace or a flame-graph page."""
    exporter = get_exporter(fmt)
    options = {"full_paths": full_paths}
    if pyroscope:
        if "pyroscope" not in exporter.options:
            raise UsageError(f"--pyroscope applies to --to pprof, not --to {fmt}")
        options["pyroscope"] = True
    profile = load(file)
    data = exporter.render(profile, **options)
    if output == "-":
        write_bytes(data)
        return
    if output is None:
        base = file[: -len(".mcpprof")] if file.endswith(".mcpprof") else file
        output = base + exporter.extension
    if os.path.exists(output) and not force:
        raise UsageError(f"{output} exists; choose another -o or add --force to overwrite")
    with open(output, "wb") as fh:
        fh.write(data)
    console.info(f"wrote {output} ({len(data):,} bytes)")
