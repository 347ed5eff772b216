"""Read a JSON file the user named, every failure a one-line :class:`~mcpprof.errors.UsageError`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError


def read_json(path: str | Path, what: str) -> Any:
    """The parsed contents of ``path``; ``what`` names the file in messages (``"result file"``)."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} {p} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {p} is a directory") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {p} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} {p} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {p}: {exc.strerror}") from None


__all__ = ["read_json"]
