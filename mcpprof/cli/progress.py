"""Progress for long commands: a live line on a terminal, silence otherwise."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator, Optional

from .console import console


@contextlib.contextmanager
def drive_progress(seconds: float) -> Iterator[Optional[Callable[..., None]]]:
    """Yield a callback ``progress(calls=..., errors=...)`` that updates a status line on a TTY."""
    if not console.is_terminal:
        yield None
        return
    start = time.monotonic()
    with console.status("starting the server…") as status:
        def update(calls: int = 0, errors: int = 0, **_: Any) -> None:
            elapsed = time.monotonic() - start
            status.update(f"{elapsed:5.1f}/{seconds:g} s  {calls} calls  {errors} errors")

        yield update
