"""``mcpprof`` entry point: one group, one module per verb, typed errors mapped to exit codes here.

Exit codes: 0 ok; 1 a finding a gate asked for (regression, leak); 2 unusable input (missing or
corrupt file, unknown tool, dead pid, bad options, a server that cannot start); 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import click

from .._version import __version__
from ..errors import USER_ERRORS
from . import console


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mcpprof")
def cli() -> None:
    """Profile MCP servers written in Python: per-tool CPU, flame graphs, exports."""


def _register() -> None:
    from .export import export_cmd
    from .profile import profile_cmd
    from .run import run_cmd
    from .summary import summary_cmd

    for command in (profile_cmd, run_cmd, summary_cmd, export_cmd):
        cli.add_command(command)


_register()


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI and return its exit code (``python -m mcpprof`` and the console script)."""
    try:
        result = cli.main(args=argv, prog_name="mcpprof", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except USER_ERRORS as exc:
        console.error(str(exc))
        return 2
    except click.exceptions.Abort:
        console.error("interrupted")
        return 130
    except click.ClickException as exc:
        console.error(exc.format_message())
        return 2
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
