"""The collector registry."""

from __future__ import annotations

import dataclasses

import pytest

from mcpprof.collect import registry
from mcpprof.collect.registry import COLLECTORS, KINDS, RUNS_IN, CollectorSpec, available, get_collector
from mcpprof.collect.sampler import Sampler
from mcpprof.errors import UsageError


def test_sample_is_registered_and_well_formed():
    assert "sample" in COLLECTORS
    for name, spec in COLLECTORS.items():
        assert spec.name == name
        assert spec.kind in KINDS and spec.runs_in in RUNS_IN
        assert spec.description and "\n" not in spec.description
        assert callable(spec.factory) and callable(spec.check)
    sample = COLLECTORS["sample"]
    assert (sample.kind, sample.runs_in, sample.extra) == ("cpu", "server", "")


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        COLLECTORS["sample"].name = "other"  # type: ignore[misc]


def test_get_collector_builds_a_sampler_that_is_not_running():
    sampler = get_collector("sample").factory(rate_hz=50, tagger=lambda ident: None)
    assert isinstance(sampler, Sampler)
    assert sampler.rate_hz == 50 and not sampler.is_running


def test_unknown_collector_is_a_usage_error_naming_the_known_ones():
    with pytest.raises(UsageError) as err:
        get_collector("nope")
    assert "nope" in str(err.value) and "sample" in str(err.value)
    assert err.value.exit_code == 2


def test_available_reports_reasons_and_survives_a_broken_check(monkeypatch):
    assert (COLLECTORS["sample"], None) in available()

    def broken():
        raise RuntimeError("boom")

    spec = CollectorSpec("broken", "cpu", "a collector whose check fails", "x", "outside", dict, broken)
    monkeypatch.setitem(registry.COLLECTORS, "broken", spec)
    reasons = dict((s.name, r) for s, r in available())
    assert reasons["sample"] is None and "boom" in reasons["broken"]
