"""mcpprof's optional C extensions (``setup.py`` builds them where a compiler exists).

:func:`load` imports one, or gives None where it is not built, was built for another CPython, or
``MCPPROF_PURE_PYTHON=1`` turns mcpprof's C paths off; the caller then runs its pure-Python path.
Stdlib only; runs inside profiled servers.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

ENV_PURE_PYTHON = "MCPPROF_PURE_PYTHON"


def load(module: str) -> Any:
    """The extension module ``module`` (e.g. ``mcpprof.mcp._hooks``), or None."""
    if os.environ.get(ENV_PURE_PYTHON, "") == "1":
        return None
    try:
        return importlib.import_module(module)
    except ImportError:  # not built, or built for another Python
        return None
