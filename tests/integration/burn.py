"""The truth the test servers report: CPU each tool burned, read from their ``--burn-report`` file
(one JSON line per call: ``{"tool": ..., "cpu_ns": ...}``)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, Optional


def burn_truth(report: Path, start: int = 0, end: Optional[int] = None) -> Dict[str, int]:
    """CPU ns per tool in the report, from byte ``start`` to ``end`` (the window a profile covered)."""
    with open(report, "rb") as fh:
        fh.seek(start)
        window = fh.read(-1 if end is None else end - start).decode()
    truth: Dict[str, int] = defaultdict(int)
    for line in window.splitlines():
        row = json.loads(line)
        truth[row["tool"]] += row["cpu_ns"]
    return truth
