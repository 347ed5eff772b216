"""The native ``.mcpprof`` file: versioned, gzip-compressed JSON that round-trips losslessly.

Layout (version 1)::

    {"format": "mcpprof", "version": 1,
     "sample_types": ["samples/count", "cpu/nanoseconds", ...],
     "frames": [[function, file, line, module], ...],
     "stacks": [[frame index, ...], ...],              # root first
     "samples": [[stack index, [v, ...], [[key, value], ...]], ...],
     "metadata": {...}, "requests": [...] | null, "extras": {...}}

Writes are atomic (temporary file, then rename) so a reader never sees half a file, which is what
lets a server's periodic flush survive a SIGKILL. Stdlib only.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from typing import Any, Dict, Union

from ..atomic import write_atomic
from .profile import Frame, Profile, Sample, ValueType
from .requests import RequestTable

FORMAT = "mcpprof"
VERSION = 1
SUFFIX = ".mcpprof"

PathLike = Union[str, "os.PathLike[str]"]


class ProfileFileError(Exception):
    """A profile file is missing, unreadable, corrupt or from a newer mcpprof."""


def to_dict(profile: Profile) -> Dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "sample_types": [str(t) for t in profile.sample_types],
        "frames": [[f.function, f.file, f.line, f.module] for f in profile.frames],
        "stacks": [list(s) for s in profile.stacks],
        "samples": [[s.stack, list(s.values), [list(kv) for kv in s.labels]] for s in profile.samples],
        "metadata": profile.metadata,
        "requests": profile.requests.to_list() if profile.requests is not None else None,
        "extras": profile.extras,
    }


def from_dict(data: Dict[str, Any]) -> Profile:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProfileFileError("not an mcpprof profile (no 'format': 'mcpprof' header)")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ProfileFileError(f"corrupt profile: bad format version {version!r}")
    if version > VERSION:
        raise ProfileFileError(
            f"profile format version {version!r} is newer than this mcpprof reads ({VERSION}); "
            "upgrade mcpprof")
    try:
        frames = [Frame(str(f[0]), str(f[1]), int(f[2]), str(f[3])) for f in data["frames"]]
        stacks = [tuple(int(i) for i in s) for s in data["stacks"]]
        samples = [Sample(int(s[0]), tuple(int(v) for v in s[1]), tuple((str(k), str(v)) for k, v in s[2]))
                   for s in data["samples"]]
        sample_types = [ValueType.parse(t) for t in data["sample_types"]]
        requests = data.get("requests")
        profile = Profile(
            sample_types=sample_types, frames=frames, stacks=stacks, samples=samples,
            metadata=dict(data.get("metadata") or {}),
            requests=RequestTable.from_list(requests) if requests is not None else None,
            extras=dict(data.get("extras") or {}),
        )
    except KeyError as exc:
        raise ProfileFileError(f"corrupt profile: missing field {exc}") from None
    except (IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ProfileFileError(f"corrupt profile: {exc.__class__.__name__}: {exc}") from None
    _check(profile)
    return profile


def _check(p: Profile) -> None:
    n_frames, n_stacks, n_types = len(p.frames), len(p.stacks), len(p.sample_types)
    for stack in p.stacks:
        if any(i < 0 or i >= n_frames for i in stack):
            raise ProfileFileError("corrupt profile: a stack refers to a missing frame")
    for s in p.samples:
        if not 0 <= s.stack < n_stacks or len(s.values) != n_types:
            raise ProfileFileError("corrupt profile: a sample refers to a missing stack or has the wrong number of values")


def dumps(profile: Profile, compresslevel: int = 6) -> bytes:
    """The file's bytes (gzip with mtime 0, so equal profiles give equal bytes; the agent's
    periodic flushes use level 1, four times cheaper).

    ASCII-escaped JSON: file names decoded with ``surrogateescape`` (undecodable bytes on POSIX)
    hold lone surrogates, which UTF-8 cannot encode but ``\\udcxx`` escapes carry losslessly."""
    raw = json.dumps(to_dict(profile), separators=(",", ":")).encode("ascii")
    return gzip.compress(raw, compresslevel=compresslevel, mtime=0)


def loads(data: bytes) -> Profile:
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise ProfileFileError(f"unreadable profile (truncated or corrupt): {exc}") from None
    return from_dict(doc)


def save(profile: Profile, path: PathLike, compresslevel: int = 6) -> None:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    write_atomic(path, dumps(profile, compresslevel))


def load(path: PathLike) -> Profile:
    """Read a ``.mcpprof`` file; raises :class:`ProfileFileError` with a one-line reason."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ProfileFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ProfileFileError(f"{path}: is a folder, not a profile file") from None
    except OSError as exc:
        raise ProfileFileError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise ProfileFileError(f"{path}: empty file (was the profile cut short?)")
    try:
        return loads(data)
    except ProfileFileError as exc:
        raise ProfileFileError(f"{path}: {exc}") from None
