"""Process-level memory read from ``/proc`` (any process of this user; Linux only). Stdlib only.

Figures, in bytes (each defined in :data:`DEFINITIONS`): ``rss``, ``rss_anon``, ``rss_file``,
``rss_shmem``, ``uss``, ``pss``, ``swap``, ``vms``.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

from ..errors import TargetError

DEFINITIONS: Dict[str, str] = {
    "rss": "resident set size: pages of the process in RAM, shared ones included (VmRSS)",
    "rss_anon": "resident anonymous pages: heap, arenas, stacks (RssAnon) - where leaks and allocator "
                "retention show up",
    "rss_file": "resident file-backed pages: code and mapped files (RssFile)",
    "rss_shmem": "resident shared memory (RssShmem)",
    "uss": "unique set size: resident pages mapped by this process only (Private_Clean + Private_Dirty "
           "of smaps_rollup) - what killing the process would free",
    "pss": "proportional set size: resident pages, each shared page divided by its number of users (Pss)",
    "swap": "bytes of the process swapped out (Swap of smaps_rollup)",
    "vms": "virtual address space size (VmSize): reserved, not necessarily used",
}

_STATUS_KEYS = {"VmRSS": "rss", "RssAnon": "rss_anon", "RssFile": "rss_file", "RssShmem": "rss_shmem",
                "VmSize": "vms"}


def _kib_fields(text: str, wanted: Dict[str, str]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        name = wanted.get(key.strip())
        if name is not None:
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[name] = int(parts[0]) * 1024
    return out


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "r", encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def process_memory(pid: Optional[int] = None) -> Dict[str, int]:
    """RSS (total, anonymous, file, shmem), USS, PSS, swap and VMS of ``pid`` (default: this process).

    USS/PSS/swap need ``/proc/PID/smaps_rollup`` (Linux 4.14+, same user or root); they are left
    out when it cannot be read. Raises :class:`TargetError` for a pid that does not exist.
    """
    target = "self" if pid is None else str(int(pid))
    status = _read(f"/proc/{target}/status")
    if status is None:
        if pid is not None and not pid_alive(pid):
            raise TargetError(f"no process with pid {pid} (it exited, or the pid is wrong)")
        raise TargetError(f"cannot read /proc/{target}/status (is this Linux?)")
    out = _kib_fields(status, _STATUS_KEYS)
    rollup = _read(f"/proc/{target}/smaps_rollup")
    if rollup:
        fields = _kib_fields(rollup, {"Pss": "pss", "Private_Clean": "_pc", "Private_Dirty": "_pd",
                                      "Swap": "swap"})
        if "_pc" in fields and "_pd" in fields:
            out["uss"] = fields.pop("_pc") + fields.pop("_pd")
        out.update({k: v for k, v in fields.items() if not k.startswith("_")})
    return out


def rss_now() -> int:
    """This process's RSS in bytes from ``/proc/self/statm`` (one small read; 0 if unavailable)."""
    text = _read("/proc/self/statm")
    try:
        return int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE") if text else 0
    except (ValueError, IndexError, OSError):
        return 0
