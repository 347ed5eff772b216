"""``mcpprof ls``: the instrumented servers on this machine."""

from __future__ import annotations

import click

from . import console


def _uptime(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


@click.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON on stdout.")
def ls_cmd(as_json: bool) -> None:
    """List servers running the mcpprof agent: pid, command, framework, uptime, requests served."""
    from ..launch.attach import find_servers

    servers = find_servers()
    if as_json:
        from .output import print_json

        print_json([{"pid": s.pid, "socket": s.socket, "error": s.error or None, **s.info} for s in servers])
        return
    if not servers:
        console.info("no instrumented servers found (start one with `mcpprof run -- <server command>`)")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for col in ("pid", "command", "framework", "mode", "uptime", "requests", "in flight"):
        table.add_column(col, justify="right" if col in ("pid", "requests", "in flight") else "left")
    for s in servers:
        info = s.info
        if s.error:
            table.add_row(str(s.pid), f"[red]{escape(s.error)}[/]", "", "", "", "", "")
            continue
        fw = ", ".join(f.get("kind", str(f)) if isinstance(f, dict) else str(f) for f in info.get("frameworks") or [])
        table.add_row(str(s.pid), escape(str(info.get("command", ""))[:80]), escape(fw or "-"),
                      str(info.get("mode", "")),
                      _uptime(info.get("uptime_s", 0)), f"{info.get('requests', 0):,}", str(info.get("inflight", 0)))
    console.console.print(table)
