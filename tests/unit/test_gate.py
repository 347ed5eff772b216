"""The gate's statistics and verdicts, on fixed numbers (no servers, no clocks)."""

from __future__ import annotations

import itertools
import math

import pytest

from mcpprof.bench import gate
from mcpprof.bench.gate import Rule


def brute_wilcoxon(diffs):
    d = [x for x in diffs if x != 0]
    ranks = gate._ranks([abs(x) for x in d])
    w = sum(r for r, x in zip(ranks, d) if x > 0)
    hits = sum(1 for signs in itertools.product((0, 1), repeat=len(d))
               if sum(r for r, s in zip(ranks, signs) if s) >= w - 1e-9)
    return hits / 2 ** len(d)


@pytest.mark.parametrize("diffs", [[1, 2, 3, 4, 5], [1, -2, 3, 4, 5], [0.1, 0.1, -0.1, 0.2, 0.3, -0.05, 0.4],
                                   [-1, -2, -3], [3, 3, 3, -3], [0, 1, 2]])
def test_wilcoxon_exact_matches_enumeration(diffs):
    assert gate.wilcoxon_greater(diffs) == pytest.approx(brute_wilcoxon(diffs))


def test_wilcoxon_known_values():
    assert gate.wilcoxon_greater([1, 2, 3, 4, 5]) == pytest.approx(1 / 32)
    assert gate.wilcoxon_greater([-1, 2, 3, 4, 5]) == pytest.approx(2 / 32)  # W+ = 14: {all}, {all but 1}
    assert gate.wilcoxon_greater([]) == 1.0


def brute_mwu(base, new):
    pooled = list(base) + list(new)
    ranks = gate._ranks(pooled)
    obs = sum(ranks[len(base):])
    combos = list(itertools.combinations(range(len(pooled)), len(new)))
    return sum(1 for c in combos if sum(ranks[i] for i in c) >= obs - 1e-9) / len(combos)


@pytest.mark.parametrize("base,new", [([1, 2, 3], [4, 5, 6]), ([1, 2, 3, 4, 5], [3, 4, 5, 6, 7]),
                                      ([5, 5, 5, 6], [5, 6, 6, 7]), ([10, 11, 12], [1, 2, 3])])
def test_mann_whitney_exact_matches_enumeration(base, new):
    assert gate.mann_whitney_greater(base, new) == pytest.approx(brute_mwu(base, new))


def test_mann_whitney_separated_samples():
    assert gate.mann_whitney_greater([1, 2, 3], [4, 5, 6]) == pytest.approx(1 / 20)
    assert gate.mann_whitney_greater(list(range(10)), list(range(10, 20))) == pytest.approx(1 / math.comb(20, 10))


def test_median_ci_uses_order_statistics():
    lo, hi, cov = gate.median_ci([5, 1, 4, 2, 3])
    assert (lo, hi) == (1, 5) and cov == pytest.approx(1 - 2 / 32)
    lo, hi, cov = gate.median_ci(list(range(1, 21)))
    assert lo > 1 and hi < 20 and cov >= 0.95


def test_relative_spread():
    assert gate.relative_spread([100, 100, 100]) == 0
    assert gate.relative_spread([90, 100, 110]) == pytest.approx(0.05)


def base_runs(center=1000, k=7):
    return [center + d for d in (-4, 3, -1, 2, 0, 1, -2)][:k]


def test_paired_identical_is_ok():
    b = base_runs()
    r = gate.judge_paired("w", "tools/call echo", b, [x + 1 for x in b], Rule())
    assert r["verdict"] == "ok" and r["ratio"] == pytest.approx(1.001, abs=1e-3)


def test_paired_ten_percent_slower_regresses_and_names_step():
    b = base_runs()
    r = gate.judge_paired("mix", "tools/call echo", b, [int(x * 1.10) + (i % 3) for i, x in enumerate(b)], Rule())
    assert r["verdict"] == "regressed" and r["p"] < 0.05 and r["ratio"] > 1.09
    comparison = gate.compare_paired({("mix", "tools/call echo"): (b, [int(x * 1.1) for x in b]),
                                      ("mix", "tools/list"): (b, list(b))}, Rule())
    assert comparison["exit_code"] == 1
    verdicts = {r["step_id"]: r["verdict"] for r in comparison["results"]}
    assert verdicts == {"tools/call echo": "regressed", "tools/list": "ok"}


def test_paired_above_threshold_but_not_significant_is_ok():
    b = [1000] * 5
    n = [1200, 1200, 1200, 900, 1200]  # median +20 %, but one run faster: Wilcoxon p = 2/32
    r = gate.judge_paired("w", "s", b, n, Rule())
    assert r["verdict"] == "ok" and "not significant" in r["reason"]


def test_paired_faster_is_improved():
    b = base_runs(k=5)
    r = gate.judge_paired("w", "s", b, [int(x * 0.8) for x in b], Rule())
    assert r["verdict"] == "improved"


def test_refuses_with_too_few_runs():
    r = gate.judge_paired("w", "s", [1000] * 3, [1500] * 3, Rule())
    assert r["verdict"] == "inconclusive" and "at least 5" in r["reason"]
    assert gate.exit_code([r["verdict"]]) == 2


def test_refuses_when_spread_exceeds_threshold():
    b = [1000] * 7
    n = [800, 900, 1000, 1100, 1200, 1300, 1000]
    r = gate.judge_paired("w", "s", b, n, Rule())
    assert r["verdict"] == "inconclusive" and "spread" in r["reason"]


def test_stored_mode_uses_rank_test_and_baseline_spread():
    base = [1000, 1002, 998, 1001, 999, 1003, 997, 1000, 1001, 999]
    slower = [int(x * 1.12) for x in base]
    r = gate.judge_unpaired("w", "s", base, slower, Rule(mode="stored", min_runs=10))
    assert r["verdict"] == "regressed" and r["p"] < 0.001
    noisy = [800, 1200, 900, 1100, 1000, 700, 1300, 1000, 950, 1050]
    r = gate.judge_unpaired("w", "s", noisy, slower, Rule(mode="stored", min_runs=10))
    assert r["verdict"] == "inconclusive" and "baseline's own" in r["reason"]


def test_exit_code_precedence():
    assert gate.exit_code(["ok", "improved"]) == 0
    assert gate.exit_code(["ok", "inconclusive"]) == 2
    assert gate.exit_code(["inconclusive", "regressed"]) == 1
    assert gate.exit_code([]) == 2


def doc(p50s_by_step, machine="m1"):
    per_run = [{"steps": {s: {"latency_ns": {"p50": v[i]}} for s, v in p50s_by_step.items()}}
               for i in range(len(next(iter(p50s_by_step.values()))))]
    return {"schema": "mcpprof.bench/1", "environment": {"machine_id": machine},
            "workloads": [{"workload_id": "tool-simple", "per_run": per_run}]}


def test_compare_stored_warns_and_joins_on_ids():
    base = [1000 + i for i in range(10)]
    c = gate.compare_stored(doc({"tools/call echo": base}), doc({"tools/call echo": base}, "m2"),
                            Rule(mode="stored", min_runs=10))
    assert c["exit_code"] == 0 and c["results"][0]["verdict"] == "ok"
    assert any("drift" in w for w in c["warnings"]) and any("different machines" in w for w in c["warnings"])
    assert not any("client" in w for w in c["warnings"])


def test_compare_stored_warns_when_the_clients_differ():
    base = [1000 + i for i in range(10)]
    c = gate.compare_stored(doc({"tools/call echo": base}), {**doc({"tools/call echo": base}), "client": "sdk"},
                            Rule(mode="stored", min_runs=10))
    assert any("lean client" in w and "sdk client" in w for w in c["warnings"])


def test_noisy_but_clear_regression_still_regresses():
    b = [1000] * 7
    n = [1300, 1150, 1400, 1100, 1250, 1500, 1200]  # spread > 5 %, but every run > +10 %
    r = gate.judge_paired("w", "s", b, n, Rule())
    assert r["spread"] > 0.05 and r["verdict"] == "regressed" and "low end" in r["reason"]
