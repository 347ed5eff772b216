"""What a report is built from: a profile and whatever its job wrote beside it.

``load_inputs(path)`` accepts an output folder of ``mcpprof profile`` / ``memory`` / ``leaks``
(``profile.mcpprof``, ``memory.mcpprof``, ``leaks.mcpprof``, ``leaks.json``, ``bench.json``,
``memory-report.json``) or one ``.mcpprof`` file. Side files that are missing or unreadable are
skipped: a report shows what there is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..errors import UsageError
from ..model import Profile
from ..model.io import SUFFIX, load

PathArg = Union[str, "os.PathLike[str]"]

#: Native files a folder may hold, the CPU profile first.
CPU_NAMES = ("profile.mcpprof",)
MEMORY_NAMES = ("memory.mcpprof", "leaks.mcpprof")
MEMORY_TYPES = ("inuse_space", "alloc_space")


@dataclass
class ReportInputs:
    """Everything one report shows; only ``profile`` is required."""

    profile: Profile
    memory: Optional[Profile] = None     # a profile with in-use / allocated bytes, when there is one
    leaks: Optional[Dict[str, Any]] = None  # leaks.json: {"server", "tools": [ToolResult.to_dict()]}
    bench: Optional[Dict[str, Any]] = None  # bench.json (the drive result or an mcpprof.bench/1 doc)
    memory_report: Optional[Dict[str, Any]] = None  # memory-report.json
    baseline: Optional[Profile] = None
    sources: List[str] = field(default_factory=list)


def has_memory(profile: Profile) -> bool:
    return any(profile.has_type(t) for t in MEMORY_TYPES)


def _json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_inputs(path: PathArg, baseline: Optional[PathArg] = None) -> ReportInputs:
    """Read a folder or a ``.mcpprof`` file (and an optional baseline profile)."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p} does not exist: give an mcpprof output folder or a .mcpprof file")
    if p.is_dir():
        inputs = _from_dir(p)
    else:
        prof = load(p)
        inputs = ReportInputs(prof, memory=prof if has_memory(prof) else None, sources=[str(p)])
    if baseline is not None:
        b = Path(baseline)
        if b.is_dir():
            found = _first(b, CPU_NAMES) or next(iter(sorted(b.glob(f"*{SUFFIX}"))), None)
            if found is None:
                raise UsageError(f"{b} holds no .mcpprof profile to compare against")
            b = found
        inputs.baseline = load(b)
        inputs.sources.append(str(b))
    return inputs


def _first(folder: Path, names: Any) -> Optional[Path]:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _from_dir(folder: Path) -> ReportInputs:
    natives = sorted(folder.glob(f"*{SUFFIX}"))
    cpu_path = _first(folder, CPU_NAMES)
    mem_path = _first(folder, MEMORY_NAMES)
    if cpu_path is None:
        others = [n for n in natives if n.name not in MEMORY_NAMES]
        cpu_path = others[0] if others else mem_path
    if cpu_path is None:
        raise UsageError(f"{folder} holds no .mcpprof profile: run `mcpprof profile` (or memory/leaks) first")
    profile = load(cpu_path)
    sources = [str(cpu_path)]
    memory: Optional[Profile] = None
    if mem_path is not None and mem_path != cpu_path:
        memory = load(mem_path)
        sources.append(str(mem_path))
    elif has_memory(profile):
        memory = profile
    inputs = ReportInputs(profile, memory=memory, sources=sources)
    for name, attr in (("leaks.json", "leaks"), ("bench.json", "bench"), ("memory-report.json", "memory_report")):
        data = _json(folder / name)
        if data is not None:
            setattr(inputs, attr, data)
            sources.append(str(folder / name))
    return inputs
