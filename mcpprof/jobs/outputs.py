"""Write a profile and its standard views into one folder."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Tuple

from ..errors import UsageError
from ..export.registry import get_exporter
from ..model import Profile
from ..model.io import save
from ..atomic import write_atomic

#: (file name, exporter name) written for every CPU profile.
CPU_OUTPUTS: Tuple[Tuple[str, str], ...] = (
    ("cpu.folded", "folded"),
    ("cpu.speedscope.json", "speedscope"),
    ("flamegraph.html", "html"),
)


def prepare_out_dir(out_dir: str, force: bool) -> Path:
    """Create ``out_dir``; refuse a non-empty existing folder unless ``force``."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{out_dir} exists and is not a folder; choose another --out")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise UsageError(f"{out_dir} already has files; choose another --out or add --force to overwrite")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_profile_outputs(profile: Profile, out_dir: Path, name: str = "profile.mcpprof",
                          outputs: Iterable[Tuple[str, str]] = CPU_OUTPUTS) -> Dict[str, str]:
    """Save the native file and each view; returns {file name: path}."""
    files: Dict[str, str] = {}
    native = out_dir / name
    save(profile, native)
    files[name] = str(native)
    for file_name, exporter in outputs:
        data = get_exporter(exporter).render(profile)
        target = out_dir / file_name
        write_atomic(target, data)
        files[file_name] = str(target)
    return files
