"""What Grafana Pyroscope requires of a pprof file it ingests, as data the exporter and tests share.

Sources (read at the stored snapshots of ``grafana/pyroscope``; no Pyroscope server is installable
here, so ingestion itself is not run):

- Server API docs, ``docs/sources/configure-server/about-server-api.md``
  (https://grafana.com/docs/pyroscope/latest/configure-server/about-server-api/): ``POST
  /ingest?format=pprof`` takes the (gzipped) profile as the body; ``name`` is the application name
  with ``{label=value}`` tags; ``from``/``until`` are Unix seconds; the profile types come from the
  file's ``sample_type``; ``units``, ``aggregationType`` and ``sampleRate`` are ignored for pprof.
- ``pkg/validation/validate.go`` (``ValidateProfile``, ``ValidateLabels``): location and function
  ids must not be 0; a sample type name must not contain ``-``; label names must be valid
  Prometheus names (older servers reject a profile with a dotted name, newer ones turn dots into
  underscores: ``SanitizeLegacyLabelName``); per series at most 30 label names.
- ``pkg/validation/limits.go`` (defaults): 4 MiB uncompressed, 16,000 samples, 100 labels per
  sample, stack depth 1,000 (deeper stacks are cut), profiles older than 1 h or more than 10 min
  in the future are rejected.
- ``pkg/distributor/distributor.go`` (``extractSampleSeries``): every distinct set of string
  sample labels becomes its own series, so labels must have few values (mcpprof's per-sample
  labels are the request kind and the thread name, never request ids); numeric labels are skipped.
- ``pkg/og/convert/pprof/profile.go`` (``metricName``, ``fixTime``): the series name is ``wall``
  when a sample type is called ``wall`` (a CPU profile of mcpprof has one), ``process_cpu`` for
  ``cpu``/``samples``, ``memory`` for ``alloc_*``/``inuse_*``; a zero ``time_nanos`` is replaced by
  the request's ``from``.
"""

from __future__ import annotations

import re
from typing import Dict

#: Default limits of a Pyroscope distributor (``pkg/validation/limits.go``).
LIMITS: Dict[str, int] = {
    "max_profile_size_bytes": 4 * 1024 * 1024,
    "max_profile_stacktrace_samples": 16_000,
    "max_profile_stacktrace_sample_labels": 100,
    "max_profile_stacktrace_depth": 1_000,
    "max_label_names_per_series": 30,
    "reject_older_than_s": 3_600,
}

#: Labels Pyroscope adds to every series of an ``/ingest`` request (``createLabels``).
SERIES_LABELS = ("__name__", "__delta__", "service_name", "pyroscope_spy")

_LEGACY_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def is_legacy_label_name(name: str) -> bool:
    """Whether ``name`` is a Prometheus label name every Pyroscope version accepts."""
    return bool(_LEGACY_NAME.match(name))


def label_name(key: str) -> str:
    """``key`` as a Prometheus label name (``gen_ai.tool.name`` -> ``gen_ai_tool_name``): what newer
    Pyroscope servers make of a dotted name, and what older ones require."""
    name = _INVALID.sub("_", key) or "_"
    return "_" + name if name[0].isdigit() else name
