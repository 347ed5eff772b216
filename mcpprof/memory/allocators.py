"""The allocators' own accounts, read inside a Python process: glibc (``mallinfo2``,
``malloc_info``, ``malloc_trim``) through ctypes, and pymalloc (``sys._debugmallocstats``).

Stdlib only; nothing happens at import. Every reader returns ``None`` (with a reason from
:func:`glibc_unavailable` / :func:`pymalloc_unavailable`) where it does not apply: another C
allocator (jemalloc, tcmalloc, mimalloc) preloaded, a libc other than glibc, ``PYTHONMALLOC=malloc``,
or tracemalloc tracing (CPython then prints no pymalloc section).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
import tempfile
import threading
from typing import Any, Dict, Optional

_MALLINFO2_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc", "hoard", "snmalloc")
_libc: Any = None
_capture_lock = threading.Lock()


def _lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def c_allocator() -> str:
    """``glibc``, the name of a preloaded allocator found in ``/proc/self/maps``, or ``unknown``."""
    try:
        with open("/proc/self/maps", "r", errors="replace") as fh:
            maps = fh.read()
    except OSError:
        maps = ""
    for name in _OTHER_ALLOCATORS:
        if f"lib{name}" in maps:
            return name
    try:
        _lib().gnu_get_libc_version.restype = ctypes.c_char_p
        return "glibc " + _lib().gnu_get_libc_version().decode()
    except (AttributeError, OSError):
        return "unknown"


def glibc_unavailable() -> Optional[str]:
    """Why glibc's malloc statistics do not describe this process's heap, or None."""
    name = c_allocator()
    if not name.startswith("glibc"):
        return f"the C allocator is {name}, not glibc: mallinfo2/malloc_info do not describe it"
    try:
        _lib().mallinfo2
    except AttributeError:
        return "this glibc has no mallinfo2 (needs glibc 2.33+)"
    return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


def mallinfo2() -> Optional[Dict[str, int]]:
    """glibc ``mallinfo2()`` (all arenas on glibc 2.36), or None when not applicable."""
    if glibc_unavailable():
        return None
    fn = _lib().mallinfo2
    fn.restype, fn.argtypes = _MallInfo2, []
    info = fn()
    return {name: int(getattr(info, name)) for name in _MALLINFO2_FIELDS}


def malloc_info_xml() -> Optional[str]:
    """glibc ``malloc_info(0, fp)`` written into an ``open_memstream`` buffer (no temp file)."""
    if glibc_unavailable():
        return None
    c = _lib()
    buf, size = ctypes.c_char_p(), ctypes.c_size_t()
    c.open_memstream.restype = ctypes.c_void_p
    c.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
    c.malloc_info.restype, c.malloc_info.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_void_p]
    c.fclose.argtypes = [ctypes.c_void_p]
    c.free.argtypes = [ctypes.c_void_p]
    fp = c.open_memstream(ctypes.byref(buf), ctypes.byref(size))
    if not fp:
        return None
    rc = c.malloc_info(0, fp)
    c.fclose(fp)
    try:
        text = ctypes.string_at(buf, size.value).decode("ascii", "replace")
    finally:
        c.free(ctypes.cast(buf, ctypes.c_void_p))
    return text if rc == 0 else None


def malloc_info_summary(xml: Optional[str] = None) -> Optional[Dict[str, int]]:
    """Process totals from ``malloc_info``: free bytes held (fast bins, rest), mmapped bytes,
    bytes obtained from the system (current, max), address space, and the number of heaps."""
    xml = malloc_info_xml() if xml is None else xml
    if not xml:
        return None
    tail = xml[xml.rfind("</heap>") + len("</heap>"):] if "</heap>" in xml else xml
    out = {"heaps": xml.count("<heap nr=")}
    for kind in ("fast", "rest", "mmap"):
        m = re.search(rf'<total type="{kind}" count="(\d+)" size="(\d+)"/>', tail)
        if m:
            out[f"{kind}_count"], out[f"{kind}_bytes"] = int(m.group(1)), int(m.group(2))
    for kind in ("current", "max"):
        m = re.search(rf'<system type="{kind}" size="(\d+)"/>', tail)
        if m:
            out[f"system_{kind}"] = int(m.group(1))
    m = re.search(r'<aspace type="total" size="(\d+)"/>', tail)
    if m:
        out["aspace_total"] = int(m.group(1))
    return out


def malloc_trim(pad: int = 0) -> Optional[int]:
    """glibc ``malloc_trim(pad)``: give free whole pages back to the OS (1 if any were). Changes the
    process and blocks for up to ~0.3 s on a large heap: only on request."""
    if glibc_unavailable():
        return None
    fn = _lib().malloc_trim
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return int(fn(pad))


def pymalloc_unavailable() -> Optional[str]:
    """Why pymalloc's statistics cannot be read now, or None."""
    import tracemalloc

    if os.environ.get("PYTHONMALLOC", "") not in ("", "pymalloc", "pymalloc_debug"):
        return f"PYTHONMALLOC={os.environ['PYTHONMALLOC']}: pymalloc is not in use"
    if tracemalloc.is_tracing():
        return "tracemalloc is tracing: CPython prints no pymalloc statistics meanwhile"
    if not hasattr(sys, "_debugmallocstats"):
        return "this Python has no sys._debugmallocstats"
    return None


def debugmallocstats_text() -> str:
    """What ``sys._debugmallocstats()`` writes to the C-level stderr, captured by pointing fd 2 at a
    temporary file for the duration of the call (other threads' stderr lines written meanwhile land
    in the capture and are lost from the log: the swap lasts a few milliseconds)."""
    c = _lib()
    c.fflush.argtypes = [ctypes.c_void_p]
    with _capture_lock, tempfile.TemporaryFile() as tmp:
        try:
            sys.stderr.flush()
        except Exception:
            pass
        c.fflush(None)
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
            c.fflush(None)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode("ascii", "replace")


_NUM = r"([\d,]+)"
_PYMALLOC_KEYS = {
    "arenas_allocated_total": r"# arenas allocated total\s*=\s*" + _NUM,
    "arenas_reclaimed": r"# arenas reclaimed\s*=\s*" + _NUM,
    "arenas_highwater": r"# arenas highwater mark\s*=\s*" + _NUM,
    "arenas_current": r"# arenas allocated current\s*=\s*" + _NUM,
    "bytes_allocated_blocks": r"# bytes in allocated blocks\s*=\s*" + _NUM,
    "bytes_available_blocks": r"# bytes in available blocks\s*=\s*" + _NUM,
    "bytes_pool_headers": r"# bytes lost to pool headers\s*=\s*" + _NUM,
    "bytes_quantization": r"# bytes lost to quantization\s*=\s*" + _NUM,
    "bytes_arena_alignment": r"# bytes lost to arena alignment\s*=\s*" + _NUM,
}


def parse_pymalloc(text: str) -> Optional[Dict[str, int]]:
    """Parse the pymalloc section of ``sys._debugmallocstats()`` (CPython 3.8-3.13 layout)."""
    if "arenas allocated current" not in text:
        return None
    out: Dict[str, int] = {}
    for key, rx in _PYMALLOC_KEYS.items():
        m = re.search(rx, text)
        if m:
            out[key] = int(m.group(1).replace(",", ""))
    m = re.search(r"(\d+) arenas \* (\d+) bytes/arena\s*=\s*" + _NUM, text)
    if m:
        out["arena_size"], out["bytes_in_arenas"] = int(m.group(2)), int(m.group(3).replace(",", ""))
    m = re.search(r"(\d+) unused pools \* (\d+) bytes\s*=\s*" + _NUM, text)
    if m:
        out["unused_pools"], out["pool_size"] = int(m.group(1)), int(m.group(2))
        out["bytes_unused_pools"] = int(m.group(3).replace(",", ""))
    return out


def pymalloc_stats() -> Optional[Dict[str, int]]:
    """pymalloc's arenas and blocks now, or None (see :func:`pymalloc_unavailable`)."""
    if pymalloc_unavailable():
        return None
    return parse_pymalloc(debugmallocstats_text())
