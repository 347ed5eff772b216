"""Attribute stacks to MCP tools by their frames, for collectors that cannot see request tags.

py-spy (outside the process) and pyinstrument (no per-request hook) see only frames. A tool call
is recognised by the framework frame that dispatches it: the first frame of the server's own code
found *below* a dispatch frame is the tool function, and its name is taken as the tool's name
(``MCPServer``, ``FastMCP`` and ``fastmcp`` name tools after their functions by default):

* ``FuncMetadata.call_fn`` / ``call_fn_with_arg_validation`` (mcp 2.x ``MCPServer``, mcp 1.x
  ``FastMCP``), ``FunctionTool.run`` / ``Tool.run`` (fastmcp) on the event-loop thread;
* ``WorkerThread.run`` (AnyIO ``to_thread``) and ``_WorkItem.run`` (``asyncio.to_thread``,
  ``run_in_executor``) on worker threads, which is where the SDKs run sync tools.

Work a tool hands to a task it spawns runs under ``Handle._run``, with no dispatch frame on the
stack: it stays unattributed rather than being guessed. Stdlib only.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..model import labels as L
from ..model.profile import Frame

#: Qualified names of the frames where a framework calls a tool function (Python 3.11+ frames
#: carry qualified names); the short names are matched too where they are unambiguous (older Pythons).
DISPATCH_QUALNAMES = frozenset({"FuncMetadata.call_fn", "FuncMetadata.call_fn_with_arg_validation",
                                "FunctionTool.run", "Tool.run", "WorkerThread.run", "_WorkItem.run"})
DISPATCH_SHORT = frozenset({"call_fn", "call_fn_with_arg_validation"})

#: Leaf frames of a thread that waits rather than runs (py-spy's idle detection is racy and lets
#: some through; see research/cpu-profilers.md 3.3).
IDLE_LEAVES = frozenset({
    ("threading.py", "wait"), ("threading.py", "Condition.wait"), ("threading.py", "Event.wait"),
    ("threading.py", "_wait_for_tstate_lock"), ("threading.py", "Thread._wait_for_tstate_lock"),
    ("threading.py", "Thread.join"), ("queue.py", "get"), ("queue.py", "Queue.get"),
    ("selectors.py", "select"), ("selectors.py", "EpollSelector.select"),
    ("selectors.py", "PollSelector.select"), ("selectors.py", "KqueueSelector.select"),
    ("selectors.py", "SelectSelector.select"), ("socket.py", "accept"), ("socket.py", "socket.accept"),
    ("subprocess.py", "Popen.wait"), ("subprocess.py", "Popen._wait"), ("time.py", "sleep"),
})

#: A stack whose root is none of these was read half-way (py-spy races the target): it is marked.
ROOT_FUNCTIONS = frozenset({"<module>", "_run_module_as_main", "Thread._bootstrap", "_bootstrap",
                            "run_module", "_run_code"})
UNROOTED_FUNCTION = "[unrooted]"

_STDLIB_RE = re.compile(r"(^<frozen )|(/lib/python3\.\d+t?/)|(^[^/]*\.py$)")
_MCPPROF_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXAMPLES_DIR = os.path.join(_MCPPROF_DIR, "examples")
_MCPPROF_IN_PATH = re.compile(r"/stub-[0-9a-f]+/mcpprof/(?!examples/)")


def is_library_file(path: str) -> bool:
    """True for the standard library, installed packages and mcpprof itself (not its examples)."""
    if not path or path.startswith("<"):  # "<built-in>", "<frozen runpy>", ...
        return True
    if "site-packages/" in path or "dist-packages/" in path:
        return True
    if path.startswith(_MCPPROF_DIR + os.sep) and not path.startswith(_EXAMPLES_DIR + os.sep):
        return True
    if _MCPPROF_IN_PATH.search(path):  # mcpprof loaded through the launcher's stub folder
        return True
    return bool(_STDLIB_RE.search(path)) and "site-packages" not in path


def is_dispatch(frame: Frame) -> bool:
    return frame.function in DISPATCH_QUALNAMES or frame.function in DISPATCH_SHORT


def is_idle_leaf(frame: Frame) -> bool:
    base = frame.file.rsplit("/", 1)[-1]
    return (base, frame.function) in IDLE_LEAVES or (base, frame.function.rsplit(".", 1)[-1]) in IDLE_LEAVES


def is_rooted(frames: Sequence[Frame]) -> bool:
    return bool(frames) and (frames[0].function in ROOT_FUNCTIONS or frames[0].function.endswith("._bootstrap"))


def tool_of(frames: Sequence[Frame], is_library: Callable[[str], bool] = is_library_file) -> Optional[str]:
    """The tool a root-first stack is running, by its frames, or None."""
    armed = False
    for f in frames:
        if armed and not is_library(f.file):
            return f.function.rsplit(".", 1)[-1]
        if not armed and is_dispatch(f):
            armed = True
    return None


class FrameAttributor:
    """Caches :func:`tool_of` per stack and returns the labels to add to a sample."""

    def __init__(self, is_library: Callable[[str], bool] = is_library_file):
        self._is_library = is_library
        self._lib: Dict[str, bool] = {}
        self.attributed = 0
        self.unattributed = 0

    def library(self, path: str) -> bool:
        v = self._lib.get(path)
        if v is None:
            v = self._lib[path] = self._is_library(path)
        return v

    def labels(self, frames: Sequence[Frame]) -> List[Tuple[str, str]]:
        tool = tool_of(frames, self.library)
        if tool is None:
            self.unattributed += 1
            return []
        self.attributed += 1
        return [(L.METHOD, "tools/call"), (L.TOOL, tool)]
