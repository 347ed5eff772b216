"""``mcpprof summary``: the per-tool table of any profile."""

from __future__ import annotations

import click

from ..model.io import load
from . import console
from .output import print_json


@click.command("summary")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def summary_cmd(file: str, as_json: bool) -> None:
    """Print the per-tool table of a .mcpprof FILE (calls, errors, latency, CPU, hottest function)."""
    from ..analyse.summary import format_table, summarize

    summary = summarize(load(file))
    if as_json:
        print_json(summary.to_dict())
    else:
        console.console.print(format_table(summary))
