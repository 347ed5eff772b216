"""``mcpprof wrap CONFIG SERVER``: run one server of a host's config under ``mcpprof run``."""

from __future__ import annotations

from typing import Optional

import click

from . import console


@click.command("wrap")
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("server")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder the server's profiles go to. Default: ~/.mcpprof/runs/<server>.")
@click.option("--rate", type=click.FloatRange(1, 10_000), default=None, help="Sampling rate in Hz.")
@click.option("--undo", is_flag=True, help="Restore the server's original command.")
def wrap_cmd(config: str, server: str, out_dir: Optional[str], rate: Optional[float], undo: bool) -> None:
    """Rewrite SERVER's entry in a host's JSON CONFIG (Claude Desktop, Claude Code, VS Code,
    Cursor) so the host runs it under `mcpprof run`; a backup of CONFIG is kept. --undo restores it.

    \b
    Example:
      mcpprof wrap ~/.config/Claude/claude_desktop_config.json time
    """
    from ..launch.hosts import unwrap_server, wrap_server

    if undo:
        result = unwrap_server(config, server)
        console.info(f"restored {server!r} in {config} ({result.host}): {result.command_line}")
        return
    result = wrap_server(config, server, out_dir=out_dir, rate_hz=rate)
    console.info(f"wrapped {server!r} in {config} ({result.host}); backup: {result.backup}")
    console.info(f"profiles go to {result.out_dir}; restart the host, then `mcpprof ls` shows the server")
