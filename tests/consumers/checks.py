"""Rules the consumers enforce that their formats' grammars or schemas do not say (pure Python;
shared by the unit tests and the consumer tests).

speedscope (research/formats-and-viewers.md §2.2): its schema rejects nulls, and its importer needs
``samples``/``weights`` of equal length, frame indices in range, positive numeric weights,
``startValue <= endValue``, ``activeProfileIndex`` in range and at least one profile.
Folded stacks (§1.1): the subset flamegraph.pl, inferno, speedscope and gprof2dot read alike.
"""

from __future__ import annotations

import re
from typing import Any, List

FOLDED_LINE = re.compile(r"^[^;\s](?:[^;\n\r\t]*[^;\s])?(?:;[^;\s](?:[^;\n\r\t]*[^;\s])?)* [0-9]+$")


def find_nulls(obj: Any, where: str = "") -> List[str]:
    if obj is None:
        return [where or "/"]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in find_nulls(v, f"{where}/{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in find_nulls(v, f"{where}/{i}")]
    return []


def speedscope_semantic_errors(doc: dict) -> List[str]:
    errs: List[str] = []
    nulls = find_nulls(doc)
    if nulls:
        errs.append(f"null values at {nulls[:5]}")
    frames = doc.get("shared", {}).get("frames", [])
    profiles = doc.get("profiles", [])
    if not profiles:
        errs.append("no profiles (speedscope fails reading the first profile's name)")
    api = doc.get("activeProfileIndex", 0)
    if not (isinstance(api, int) and 0 <= api < max(len(profiles), 1)):
        errs.append(f"activeProfileIndex {api!r} out of range")
    for pi, p in enumerate(profiles):
        if p.get("type") != "sampled":
            errs.append(f"profile {pi}: type {p.get('type')!r}, expected 'sampled'")
            continue
        samples, weights = p.get("samples", []), p.get("weights", [])
        if len(samples) != len(weights):
            errs.append(f"profile {pi}: {len(samples)} samples but {len(weights)} weights")
        for si, stack in enumerate(samples):
            if not stack:
                errs.append(f"profile {pi}: sample {si} is an empty stack")
            if any(not (isinstance(i, int) and 0 <= i < len(frames)) for i in stack):
                errs.append(f"profile {pi}: sample {si} has a frame index out of range")
                break
        if any(isinstance(w, bool) or not isinstance(w, (int, float)) or w <= 0 for w in weights):
            errs.append(f"profile {pi}: a weight is not a positive number")
        start, end = p.get("startValue"), p.get("endValue")
        if not (isinstance(start, (int, float)) and isinstance(end, (int, float)) and start <= end):
            errs.append(f"profile {pi}: startValue {start!r} / endValue {end!r}")
        elif all(isinstance(w, (int, float)) for w in weights) and end - start != sum(weights):
            errs.append(f"profile {pi}: endValue - startValue {end - start} != sum of weights {sum(weights)}")
    for fi, fr in enumerate(frames):
        if not isinstance(fr.get("name"), str) or not fr["name"]:
            errs.append(f"frame {fi}: empty or missing name")
    return errs


def folded_errors(text: str) -> List[str]:
    """Lines outside the safe folded subset (and ordering / ending problems)."""
    errs: List[str] = []
    if text and not text.endswith("\n"):
        errs.append("does not end with a newline")
    if "\r" in text:
        errs.append("contains a carriage return")
    lines = text.split("\n")[:-1] if text else []
    for n, line in enumerate(lines, 1):
        if not FOLDED_LINE.match(line):
            errs.append(f"line {n} is not 'frame;frame count': {line[:120]!r}")
        elif int(line.rsplit(" ", 1)[1]) <= 0:
            errs.append(f"line {n} has a zero count")
        if line.startswith("#"):
            errs.append(f"line {n} starts with '#' (inferno skips it as a comment)")
    stacks = [line.rsplit(" ", 1)[0] for line in lines]
    frames = [stack.split(";") for stack in stacks]
    if frames != sorted(frames):  # frame by frame, as inferno --no-sort checks
        errs.append("lines are not sorted frame by frame")
    if len(set(stacks)) != len(stacks):
        errs.append("a stack appears on two lines")
    return errs
