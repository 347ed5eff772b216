"""Progress for long commands: a live line on a terminal (elapsed time, requests, errors and the
server's samples), silence otherwise."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator, Optional

from .console import console

POLL_S = 0.5


class SampleCount:
    """The sample count of a server's mcpprof agent, read from its control channel (``status``)
    every :data:`POLL_S` seconds by a daemon thread; None until known (or without an agent)."""

    def __init__(self) -> None:
        self.samples: Optional[int] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def watch(self, pid: int) -> None:
        if self._thread is None and pid:
            self._thread = threading.Thread(target=self._run, args=(pid,), name="mcpprof-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self, pid: int) -> None:
        from ..launch.attach import ControlClient, socket_for

        client: Any = None
        while not self._stop.wait(POLL_S):
            try:
                if client is None:
                    path = socket_for(pid)
                    if path is None:
                        continue
                    client = ControlClient(path, pid, timeout=1.0)
                sampler = client.call("status", timeout=1.0).get("sampler") or {}
                if isinstance(sampler.get("samples"), int):
                    self.samples = sampler["samples"]
            except Exception:  # the server went away or has no agent: keep the line without samples
                if client is not None:
                    client.close()
                client = None
        if client is not None:
            client.close()


class DriveProgress:
    """``progress(calls=..., errors=...)`` updates the status line; ``watch(pid)`` adds the server's samples."""

    def __init__(self, status: Any, seconds: float) -> None:
        self.status, self.seconds, self.start = status, seconds, time.monotonic()
        self.counter = SampleCount()
        self.watch = self.counter.watch

    def __call__(self, calls: int = 0, errors: int = 0, **_: Any) -> None:
        elapsed = time.monotonic() - self.start
        samples = self.counter.samples
        tail = f"  {samples:,} samples" if samples is not None else ""
        self.status.update(f"{elapsed:5.1f}/{self.seconds:g} s  {calls:,} requests  {errors:,} errors{tail}")


@contextlib.contextmanager
def drive_progress(seconds: float) -> Iterator[Optional[DriveProgress]]:
    """Yield a :class:`DriveProgress` on a TTY, None elsewhere (nothing is printed or polled)."""
    if not console.is_terminal:
        yield None
        return
    with console.status("starting the server…") as status:
        progress = DriveProgress(status, seconds)
        try:
            yield progress
        finally:
            progress.counter.stop()
