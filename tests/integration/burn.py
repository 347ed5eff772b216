"""The truth the test servers report: CPU each tool burned, read from their ``--burn-report`` file
(one JSON line per call: ``{"tool": ..., "cpu_ns": ...}``)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, Optional


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


#: Summary.cpu_source of the agent with --exact-cpu, and of the default agent
EXACT, DEFAULT = "exact", "sampled on the loop, measured on workers"
#: ``mcpprof run`` options of both accountings and the cpu_source each gives: --exact-cpu measures
#: every step; the default agent measures worker threads and samples the event loop, at 1 kHz so a
#: test's few seconds hold enough samples for 3 points.
AGENT_MODES = {"exact-cpu": (["--exact-cpu"], EXACT), "default": (["--rate", "1000"], DEFAULT)}


def assert_exact_shares(summary: Any, truth: Dict[str, int], tools: Iterable[str], within: float = 0.03,
                        source: str = EXACT) -> None:
    """The summary's per-tool CPU shares (among ``tools``) are within ``within`` of the truth's, and
    its CPU came from ``source``."""
    tools = list(tools)
    assert summary.cpu_source == source
    measured = {name: summary.row(f"tools/call {name}").cpu_ns for name in tools}
    t_total, m_total = sum(truth[n] for n in tools), sum(measured.values())
    for name in tools:
        assert abs(truth[name] / t_total - measured[name] / m_total) < within, (name, truth, measured)
