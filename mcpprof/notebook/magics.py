"""IPython magics (``%load_ext mcpprof``):

* ``%%mcpprof [--rate HZ] [--server NAME]``: profile the cell's CPU with the in-process sampler;
  requests an MCP server object (``--server`` names a variable) handles meanwhile are tagged per tool.
* ``%%mcpprof_memory [--nframe N] [--server NAME]``: trace the cell's allocations (tracemalloc) and
  show what is still allocated at its end.
* ``%mcpprof_attach PID [--seconds S] [--mode auto|sample|exact|pyinstrument|pyspy]``: profile a
  running server process (through its mcpprof agent, else py-spy).

Each shows its result and stores it in the variable ``_mcpprof``. A cell that needs top-level
``await`` should use ``with mcpprof.profile() as p:`` instead (a magic runs its cell synchronously).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any, Optional

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, add_help=False, exit_on_error=False)
    return p


class MagicUsageError(ValueError):
    """Bad arguments to a magic."""


def _parse(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    try:
        return parser.parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit) as exc:
        raise MagicUsageError(f"{parser.prog}: {exc}") from None


@magics_class
class McpprofMagics(Magics):
    """The magics of ``%load_ext mcpprof``."""

    def _server(self, name: Optional[str]) -> Any:
        if not name:
            return None
        try:
            return self.shell.user_ns[name]
        except KeyError:
            raise MagicUsageError(f"no variable named {name!r} holds an MCP server") from None

    def _run(self, cell: str) -> None:
        result = self.shell.run_cell(cell, store_history=False)
        if result.error_before_exec is not None:
            raise result.error_before_exec
        if result.error_in_exec is not None:
            raise result.error_in_exec

    @cell_magic
    def mcpprof(self, line: str, cell: str) -> Any:
        """Profile the cell's CPU: ``%%mcpprof [--rate HZ] [--server VAR]``."""
        from ..inprocess import profile

        p = _parser("%%mcpprof")
        p.add_argument("--rate", type=float, default=1000.0)
        p.add_argument("--server", default=None)
        args = _parse(p, line)
        session = profile(args.rate, server=self._server(args.server))
        with session:
            self._run(cell)
        self.shell.user_ns["_mcpprof"] = session
        return session

    @cell_magic
    def mcpprof_memory(self, line: str, cell: str) -> Any:
        """Trace the cell's allocations: ``%%mcpprof_memory [--nframe N] [--server VAR]``."""
        from ..inprocess import profile

        p = _parser("%%mcpprof_memory")
        p.add_argument("--nframe", type=int, default=16)
        p.add_argument("--server", default=None)
        p.add_argument("--rate", type=float, default=200.0)
        args = _parse(p, line)
        session = profile(args.rate, server=self._server(args.server), memory=True, nframe=args.nframe)
        with session:
            self._run(cell)
        self.shell.user_ns["_mcpprof"] = session
        return session

    @line_magic
    def mcpprof_attach(self, line: str) -> Any:
        """Profile a running process: ``%mcpprof_attach PID [--seconds S] [--mode MODE]``."""
        import mcpprof

        p = _parser("%mcpprof_attach")
        p.add_argument("pid", type=int)
        p.add_argument("--seconds", type=float, default=5.0)
        p.add_argument("--mode", default="auto")
        args = _parse(p, line)
        prof = mcpprof.profile_pid(args.pid, args.seconds, args.mode)
        self.shell.user_ns["_mcpprof"] = prof
        return prof
