"""The CLI's console: everything a person reads goes to stderr (stdout may be a protocol channel)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape

# On a terminal rich follows its width; in logs and CI a wide fixed width keeps tables readable.
console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def info(message: str) -> None:
    console.print(message)


def error(message: str) -> None:
    """One line on stderr; the message is plain text (``mcpprof[example]`` is not rich markup)."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
