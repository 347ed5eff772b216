"""Virtualenvs with one MCP framework version each, built once and reused across tests and runs.

Each lives in ``$MCPPROF_TEST_VENVS`` (default ``~/.cache/mcpprof-test-venvs``) under a name keyed
by its requirements and the Python version, so a change of either builds a fresh one. A venv is
usable once its ``.ok`` marker exists; builds are serialised with a file lock, so parallel test
runs share them. :func:`build_all` builds the missing ones concurrently (a minute or two on a
fresh machine, from PyPI).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Optional

#: name -> pip requirements (one framework version each)
FRAMEWORKS: Dict[str, tuple] = {
    "mcp1": ("mcp<2",),
    "fastmcp2": ("fastmcp<3",),
    "fastmcp4": ("fastmcp>=4",),
}
BUILD_TIMEOUT_S = 600


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mcpprof-test-venvs"
    return Path(os.environ.get("MCPPROF_TEST_VENVS") or default)


def venv_dir(name: str) -> Path:
    key = "\n".join((sys.version.split()[0], *FRAMEWORKS[name]))
    return cache_root() / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


class BuildError(Exception):
    """The venv could not be built (pip failed, or no network); the message says why."""


def python_of(name: str) -> Path:
    """The interpreter of framework venv ``name``, built first if needed; BuildError if it cannot be."""
    path = venv_dir(name)
    python = path / "bin" / "python"
    if (path / ".ok").exists():
        return python
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / ".ok").exists():
            return python
        log = cache_root() / f"{path.name}.log"
        with open(log, "w") as out:
            steps = ([sys.executable, "-m", "venv", "--clear", str(path)],
                     [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *FRAMEWORKS[name]])
            for step in steps:
                try:
                    code = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S).returncode
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise BuildError(f"{' '.join(step)}: {exc}") from None
                if code != 0:
                    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                    raise BuildError(f"{' '.join(step[-len(FRAMEWORKS[name]) - 2:])} failed ({code}): {' | '.join(tail)}")
        (path / ".ok").write_text(" ".join(FRAMEWORKS[name]) + "\n")
    return python


def build_all() -> Dict[str, object]:
    """Build every framework venv concurrently: name -> interpreter path, or the BuildError."""
    def one(name: str) -> object:
        try:
            return python_of(name)
        except BuildError as exc:
            return exc

    with ThreadPoolExecutor(len(FRAMEWORKS)) as pool:
        return dict(zip(FRAMEWORKS, pool.map(one, FRAMEWORKS)))


def versions(python: Path, packages: tuple = ("mcp", "fastmcp")) -> Dict[str, Optional[str]]:
    code = ("import importlib.metadata as m, json, sys\nout = {}\nfor p in sys.argv[1:]:\n"
            "    try: out[p] = m.version(p)\n    except Exception: out[p] = None\nprint(json.dumps(out))")
    import json

    return json.loads(subprocess.check_output([str(python), "-c", code, *packages], text=True))


def python_or_skip(built_pythons: Dict[str, object], name: str) -> Path:
    """The python of venv ``name`` from :func:`build_all`, or skip the test saying why it is missing."""
    import pytest

    built = built_pythons[name]
    if isinstance(built, Exception):
        pytest.skip(f"could not build the {name} venv ({' '.join(FRAMEWORKS[name])}): {built}")
    return Path(str(built))
