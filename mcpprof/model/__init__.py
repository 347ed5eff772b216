"""mcpprof's data model (stdlib only; imports nothing else from mcpprof)."""

from .profile import (ALLOC_OBJECTS, ALLOC_SPACE, CALLS, CPU, INUSE_OBJECTS, INUSE_SPACE, SAMPLES,
                      WALL, Frame, LabelSet, Profile, ProfileBuilder, Sample, ValueType, make_labels)
from .requests import LatencyStats, RequestTable

__all__ = [
    "ALLOC_OBJECTS", "ALLOC_SPACE", "CALLS", "CPU", "INUSE_OBJECTS", "INUSE_SPACE", "SAMPLES", "WALL",
    "Frame", "LabelSet", "Profile", "ProfileBuilder", "Sample", "ValueType", "make_labels",
    "LatencyStats", "RequestTable",
]
