"""Batch recording of finished requests (what a request sink gets from mcpprof.mcp.context.drain)
gives the same statistics and spans as recording them one by one."""

from __future__ import annotations

import random

from mcpprof.mcp import context
from mcpprof.model import labels as L
from mcpprof.model.requests import RESERVOIR, SLOWEST, LatencyStats, RequestTable
from mcpprof.model.spans import SpanRing, spans_from_extra


def _tags(n: int, seed: int):
    rng = random.Random(seed)
    tags = []
    for i in range(n):
        tag = context.PyRequestTag("tools/call", rng.choice(["a", "b"]), L.TOOL, str(i), "", 1_000 * i)
        tag.duration_ns = rng.randrange(1, 10_000_000)
        tag.cpu_ns = rng.randrange(0, 1_000_000)
        tag.error = rng.choice([None, None, None, "tool_error", "-32602"])
        tags.append(tag)
    return tags


def _one_by_one(tags):
    stats = LatencyStats()
    for t in tags:
        stats.add(t.duration_ns, t.error, t.request_id, t.start_ns, cpu_ns=t.cpu_ns)
    return stats


def test_a_batch_gives_the_statistics_of_one_by_one_recording():
    tags = _tags(RESERVOIR * 2 + 77, seed=3)  # past the reservoir: the random replacement runs too
    random.seed(11)
    expected = _one_by_one(tags)
    random.seed(11)
    batched = LatencyStats()
    for start in range(0, len(tags), 1000):  # batches of any size, one after the other
        batched.add_tags(tags[start:start + 1000])
    assert batched.to_dict() == expected.to_dict()
    assert len(batched.slowest) == SLOWEST and batched.errors == sum(1 for t in tags if t.error)


def test_a_table_groups_a_batch_by_request_name():
    tags = _tags(300, seed=5)
    table = RequestTable()
    table.record_tags(tags)
    assert {k: s.count for k, s in table.stats.items()} == {
        ("tools/call", name): sum(1 for t in tags if t.target == name) for name in ("a", "b")}
    assert sum(s.cpu_ns for s in table.stats.values()) == sum(t.cpu_ns for t in tags)


def test_a_batch_of_spans_is_stored_like_single_spans():
    tags = _tags(50, seed=7)
    one, batch = SpanRing(maxlen=40), SpanRing(maxlen=40)
    batch._offset = one._offset
    for t in tags:
        one.add(t.start_ns, t.duration_ns, t.method, t.target, t.target_key, t.request_id, t.session_id, t.error,
                t.cpu_ns)
    batch.add_tags(tags)
    assert batch.total == one.total == 50
    assert spans_from_extra(batch.to_extra()) == spans_from_extra(one.to_extra())


def test_the_reservoir_stays_a_uniform_sample_of_every_request():
    # durations 1..N in order: a uniform sample has every quarter of the stream in equal shares
    n = 20 * RESERVOIR
    random.seed(5)
    stats = LatencyStats()
    for start in range(0, n, 777):
        batch = []
        for d in range(start + 1, min(n, start + 777) + 1):
            tag = context.PyRequestTag("tools/call", "a", L.TOOL)
            tag.duration_ns = d
            batch.append(tag)
        stats.add_tags(batch)
    assert stats.count == n and len(stats.reservoir) == RESERVOIR
    quarters = [sum(1 for d in stats.reservoir if q * n / 4 < d <= (q + 1) * n / 4) / RESERVOIR for q in range(4)]
    assert all(abs(share - 0.25) < 0.03 for share in quarters), quarters
    assert abs(stats.quantile(0.5) - n / 2) < 0.03 * n
