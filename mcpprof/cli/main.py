"""``mcpprof`` entry point: one group, one module per verb, typed errors mapped to exit codes here.

Exit codes: 0 ok; 1 a finding a gate asked for (regression, leak); 2 unusable input (missing or
corrupt file, unknown tool, dead pid, bad options, a server that cannot start); 130 interrupted.
"""

from __future__ import annotations

import importlib
import sys
from typing import List, Optional

import click

from .._version import __version__
from ..errors import USER_ERRORS
from . import console


#: Every verb: name -> "module:command object". Modules load only when their verb runs (or for
#: --help), so `mcpprof run` and `mcpprof attach` start fast.
COMMANDS = {
    "profile": "profile:profile_cmd",
    "run": "run:run_cmd",
    "summary": "summary:summary_cmd",
    "export": "export:export_cmd",
    "report": "report:report_cmd",
    "attach": "attach:attach_cmd",
    "ls": "ls:ls_cmd",
    "dump": "dump:dump_cmd",
    "merge": "merge:merge_cmd",
    "wrap": "wrap:wrap_cmd",
    "leaks": "leaks:leaks_cmd",
    "memory": "memory:memory_cmd",
    "bench": "bench:bench_cmd",
    "compare": "compare:compare_cmd",
    "baseline": "baseline:baseline_cmd",
    "diff": "diff:diff_cmd",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(f"{__package__}.{module_name}")
        command = getattr(module, attr)
        self.commands[cmd_name] = command
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mcpprof")
def cli() -> None:
    """Profile MCP servers written in Python: per-tool CPU, flame graphs, exports."""


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
