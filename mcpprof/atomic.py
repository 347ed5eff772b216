"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``, so a reader
never sees half a file and a crash leaves the old one. Stdlib only (the agent writes with it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


def write_atomic(path: PathLike, data: Union[bytes, str], *, keep_mode: bool = False) -> None:
    """Replace ``path`` with ``data`` (str is written as UTF-8) atomically. Refuses to replace
    anything but a regular file (an atomic replace of ``/dev/null`` would replace the device);
    ``keep_mode``: the new file gets the old one's permission bits."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise IsADirectoryError(f"{path} exists and is not a regular file")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".mcpprof-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        if keep_mode:
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
