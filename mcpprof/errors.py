"""Typed errors. The CLI maps them to exit codes in one place (:mod:`mcpprof.cli.main`)."""

from __future__ import annotations

from .model.io import ProfileFileError


class McpprofError(Exception):
    """An error a user can act on; ``str(err)`` is a one-line message saying what to do."""

    exit_code = 2


class UsageError(McpprofError):
    """Bad input: a missing or corrupt file, an unknown tool, bad options."""


class TargetError(McpprofError):
    """The server to profile could not be started, exited at once, or could not be reached."""


class CollectorUnavailable(McpprofError):
    """A collector needs an optional package (an extra) or a tool that is not installed."""

    def __init__(self, name: str, extra: str = "", hint: str = ""):
        self.name, self.extra = name, extra
        msg = f"the {name} collector is not available"
        if extra:
            msg += f": install it with  pip install 'mcpprof[{extra}]'"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


#: Every exception type whose message is shown to the user without a traceback (exit code 2).
USER_ERRORS = (McpprofError, ProfileFileError)

__all__ = ["McpprofError", "UsageError", "TargetError", "CollectorUnavailable", "ProfileFileError",
           "USER_ERRORS"]
