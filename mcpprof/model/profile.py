"""The profile data model: flat, aggregated samples over interned frames and stacks.

Modelled on pprof's ``profile.proto``. Samples are the truth; trees and tables are views built
from them on demand (see :mod:`mcpprof.analyse`). Stdlib only: this module also runs inside
profiled servers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

LabelSet = Tuple[Tuple[str, str], ...]
"""Labels as a sorted tuple of (key, value) pairs: hashable, one canonical order."""


@dataclass(frozen=True)
class ValueType:
    """A sample value column: what is counted and in which unit (``cpu``/``nanoseconds``)."""

    type: str
    unit: str

    def __str__(self) -> str:
        return f"{self.type}/{self.unit}"

    @classmethod
    def parse(cls, text: str) -> "ValueType":
        kind, _, unit = text.partition("/")
        return cls(kind, unit or "count")


SAMPLES = ValueType("samples", "count")
WALL = ValueType("wall", "nanoseconds")
CPU = ValueType("cpu", "nanoseconds")
ALLOC_SPACE = ValueType("alloc_space", "bytes")
ALLOC_OBJECTS = ValueType("alloc_objects", "count")
INUSE_SPACE = ValueType("inuse_space", "bytes")
INUSE_OBJECTS = ValueType("inuse_objects", "count")
CALLS = ValueType("calls", "count")


@dataclass(frozen=True)
class Frame:
    """One code location. ``line`` is 0 when unknown; ``module`` may be empty."""

    function: str
    file: str = ""
    line: int = 0
    module: str = ""

    def label(self) -> str:
        """``function (file:line)``, the name folded stacks and flame graphs show."""
        if not self.file:
            return self.function
        if self.line:
            return f"{self.function} ({self.file}:{self.line})"
        return f"{self.function} ({self.file})"


@dataclass(frozen=True)
class Sample:
    """Aggregated values of one (stack, labels) pair; ``values`` follows ``Profile.sample_types``."""

    stack: int
    values: Tuple[int, ...]
    labels: LabelSet = ()

    def label(self, key: str, default: Optional[str] = None) -> Optional[str]:
        for k, v in self.labels:
            if k == key:
                return v
        return default


def make_labels(labels: Optional[Mapping[str, Any]]) -> LabelSet:
    """Canonical label set from a mapping; ``None`` and empty values are dropped."""
    if not labels:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in labels.items() if v is not None and v != ""))


@dataclass
class Profile:
    """A profile: typed value columns, interned frames and stacks, aggregated samples, metadata.

    ``stacks[i]`` is a tuple of frame indices, root first. ``samples`` holds one entry per
    distinct (stack, labels); :class:`ProfileBuilder` keeps that invariant while collecting.
    ``requests`` holds per-request latency statistics (see :mod:`mcpprof.model.requests`),
    ``extras`` named side tables other collectors attach (memory timelines, GC pauses, ...).
    """

    sample_types: List[ValueType]
    frames: List[Frame] = field(default_factory=list)
    stacks: List[Tuple[int, ...]] = field(default_factory=list)
    samples: List[Sample] = field(default_factory=list)
    metadata: Dict[str, Any] = field(default_factory=dict)
    requests: Any = None  # Optional[RequestTable]; typed loosely to keep this module import-free
    extras: Dict[str, Any] = field(default_factory=dict)

    # -- reading ---------------------------------------------------------------------------
    def value_index(self, value_type: "ValueType | str") -> int:
        """Column index of a sample type given as ValueType, ``"cpu"`` or ``"cpu/nanoseconds"``."""
        for i, vt in enumerate(self.sample_types):
            if vt == value_type or vt.type == value_type or str(vt) == value_type:
                return i
        names = ", ".join(str(v) for v in self.sample_types)
        raise KeyError(f"profile has no sample type {value_type!s} (it has {names})")

    def has_type(self, value_type: "ValueType | str") -> bool:
        try:
            self.value_index(value_type)
        except KeyError:
            return False
        return True

    def default_type(self) -> ValueType:
        """The column views show by default: CPU if present, else the first non-count one."""
        for preferred in (CPU, INUSE_SPACE, ALLOC_SPACE, WALL):
            if preferred in self.sample_types:
                return preferred
        return self.sample_types[0]

    def stack_frames(self, stack_id: int) -> List[Frame]:
        return [self.frames[i] for i in self.stacks[stack_id]]

    def total(self, value_type: "ValueType | str | None" = None) -> int:
        idx = self.value_index(value_type or self.default_type())
        return sum(s.values[idx] for s in self.samples)

    def totals(self) -> Dict[str, int]:
        sums = [0] * len(self.sample_types)
        for s in self.samples:
            for i, v in enumerate(s.values):
                sums[i] += v
        return {str(vt): sums[i] for i, vt in enumerate(self.sample_types)}

    def label_values(self, key: str) -> List[str]:
        """Distinct values of one label key, sorted."""
        return sorted({v for s in self.samples for k, v in s.labels if k == key})

    def iter_stacks(self) -> Iterator[Tuple[Sample, List[Frame]]]:
        for s in self.samples:
            yield s, self.stack_frames(s.stack)

    def __repr__(self) -> str:
        types = ",".join(str(t) for t in self.sample_types)
        return (
            f"<mcpprof.Profile {self.metadata.get('collector', '?')} [{types}] "
            f"{len(self.samples)} samples, {len(self.stacks)} stacks, {len(self.frames)} frames>"
        )


class ProfileBuilder:
    """Builds a :class:`Profile`, interning frames and stacks and aggregating samples."""

    def __init__(self, sample_types: Sequence[ValueType], metadata: Optional[Dict[str, Any]] = None):
        self.sample_types = list(sample_types)
        self.metadata: Dict[str, Any] = dict(metadata or {})
        self._frames: List[Frame] = []
        self._frame_ids: Dict[Frame, int] = {}
        self._stacks: List[Tuple[int, ...]] = []
        self._stack_ids: Dict[Tuple[int, ...], int] = {}
        self._values: Dict[Tuple[int, LabelSet], List[int]] = {}

    def frame_id(self, frame: Frame) -> int:
        fid = self._frame_ids.get(frame)
        if fid is None:
            fid = self._frame_ids[frame] = len(self._frames)
            self._frames.append(frame)
        return fid

    def stack_id(self, frame_ids: Sequence[int]) -> int:
        key = tuple(frame_ids)
        sid = self._stack_ids.get(key)
        if sid is None:
            sid = self._stack_ids[key] = len(self._stacks)
            self._stacks.append(key)
        return sid

    def add(self, frames: Iterable[Frame], values: Sequence[int], labels: "LabelSet | Mapping[str, Any] | None" = None) -> None:
        """Add values for a stack given root first as Frames."""
        self.add_stack(self.stack_id([self.frame_id(f) for f in frames]), values, labels)

    def add_stack(self, stack_id: int, values: Sequence[int], labels: "LabelSet | Mapping[str, Any] | None" = None) -> None:
        if len(values) != len(self.sample_types):
            raise ValueError(f"expected {len(self.sample_types)} values, got {len(values)}")
        label_set = labels if isinstance(labels, tuple) else make_labels(labels)
        key = (stack_id, label_set)
        acc = self._values.get(key)
        if acc is None:
            self._values[key] = [int(v) for v in values]
        else:
            for i, v in enumerate(values):
                acc[i] += int(v)

    def build(self) -> Profile:
        samples = [Sample(sid, tuple(vals), labels) for (sid, labels), vals in self._values.items()]
        return Profile(
            sample_types=list(self.sample_types),
            frames=list(self._frames),
            stacks=list(self._stacks),
            samples=samples,
            metadata=dict(self.metadata),
        )
