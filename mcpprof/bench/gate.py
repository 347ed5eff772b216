"""The regression gate: is the candidate slower than the baseline, per workload step?

The statistic is the per-run p50 latency of every step (a run's median over ~1 000 calls at one in
flight), never one run's p95/p99 (35-93 % run-to-run spread on a shared 2-vCPU machine).

* **duet** (default, :mod:`.duet`): baseline and candidate ran side by side with calls
  alternated, so each run gives a *paired* ratio ``p50(candidate) / p50(baseline)``. Regressed when
  the median of the per-run ratios exceeds ``1 + threshold`` AND a one-sided Wilcoxon signed-rank
  test on the log ratios gives ``p < alpha``. Measured here (research: bench-and-regression.md
  §1.2): 0/36 false alarms, +9 % caught in 20/24 (k = 5) and 12/12 (k = 10) trials.
* **stored**: two result files recorded at different times. Regressed when the ratio of the
  medians of per-run p50 exceeds ``1 + threshold`` AND a one-sided Mann-Whitney U test gives
  ``p < alpha``. Machine drift between the recordings cannot be told from a change (−5 % seen
  within 40 min), so a warning says so and more runs are asked for.

Either way it refuses to judge (``inconclusive``, exit 2) with fewer than ``min_runs`` runs or
when the baseline's own run-to-run spread (half the interquartile range over the median; for a
duet, of the per-run ratios) exceeds the threshold, unless (duet) even the low end of the median's
distribution-free interval lies above the threshold: noise that large cannot explain that. Exit codes: 0 no regression, 1 regression,
2 inconclusive or unusable input. The tests are exact (enumeration), stdlib only.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from . import results

REGRESSED, OK, IMPROVED, INCONCLUSIVE = "regressed", "ok", "improved", "inconclusive"
STORED_WARNING = ("comparing against a stored baseline: a change of the machine's speed between the two "
                  "recordings cannot be told from a change of the server (drifts of 5 % within 40 min were "
                  "measured on shared machines); prefer `mcpprof compare --duet` (both in one job)")


@dataclass(frozen=True)
class Rule:
    """How the gate decides; written into the result next to the verdicts."""

    mode: str = "duet"                # duet | stored
    metric: str = "latency_ns.p50"
    threshold: float = 0.05           # fail above a median ratio of 1 + threshold
    alpha: float = 0.05
    min_runs: int = 5

    @property
    def test(self) -> str:
        return "wilcoxon-signed-rank-one-sided" if self.mode == "duet" else "mann-whitney-u-one-sided"

    def to_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "id": f"{self.mode}-median-ratio", "test": self.test}


# -- exact rank tests ------------------------------------------------------------------------------


def _ranks(values: Sequence[float]) -> List[float]:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def wilcoxon_greater(diffs: Sequence[float]) -> float:
    """Exact one-sided p-value of the Wilcoxon signed-rank test that the differences are > 0.
    Zero differences are dropped; tied magnitudes get average ranks (enumerated exactly)."""
    d = [x for x in diffs if x != 0]
    n = len(d)
    if n == 0:
        return 1.0
    ranks2 = [int(round(2 * r)) for r in _ranks([abs(x) for x in d])]  # doubled: integers
    w_plus = sum(r for r, x in zip(ranks2, d) if x > 0)
    counts = {0: 1}  # distribution of the positive rank sum over all 2^n sign patterns
    for r in ranks2:
        nxt = dict(counts)
        for s, c in counts.items():
            nxt[s + r] = nxt.get(s + r, 0) + c
        counts = nxt
    return sum(c for s, c in counts.items() if s >= w_plus) / 2 ** n


def mann_whitney_greater(base: Sequence[float], new: Sequence[float]) -> float:
    """Exact one-sided p-value that ``new`` tends to be larger than ``base`` (rank-sum
    permutation distribution, average ranks for ties)."""
    m, n = len(base), len(new)
    if m == 0 or n == 0:
        return 1.0
    ranks2 = [int(round(2 * r)) for r in _ranks(list(base) + list(new))]
    observed = sum(ranks2[m:])
    # dp[k][s]: number of size-k subsets of the pooled ranks with doubled rank sum s
    dp: List[Dict[int, int]] = [dict() for _ in range(n + 1)]
    dp[0][0] = 1
    for r in ranks2:
        for k in range(min(n, len(ranks2)) - 1, -1, -1):
            for s, c in dp[k].items():
                dp[k + 1][s + r] = dp[k + 1].get(s + r, 0) + c
    total = math.comb(m + n, n)
    return sum(c for s, c in dp[n].items() if s >= observed) / total


def median_ci(values: Sequence[float], level: float = 0.95) -> Tuple[float, float, float]:
    """Distribution-free interval for the median from order statistics: (low, high, coverage).
    With few values it is (min, max) and the coverage says how sure that is (k = 5: 93.8 %)."""
    v = sorted(values)
    n = len(v)
    if n == 0:
        return (math.nan, math.nan, 0.0)

    def coverage(j: int) -> float:  # P(v[j] <= median <= v[n-1-j]) for continuous data
        return 1 - 2 * sum(math.comb(n, i) for i in range(j + 1)) / 2 ** n

    j = 0
    while j + 1 < n // 2 and coverage(j + 1) >= level:
        j += 1
    return (v[j], v[n - 1 - j], coverage(j) if n > 1 else 0.0)


def relative_spread(values: Sequence[float]) -> float:
    """Half the interquartile range over the median (robust run-to-run spread)."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(sorted(values), n=4, method="inclusive")
    med = statistics.median(values)
    return (q3 - q1) / 2 / med if med else math.inf


# -- verdicts ---------------------------------------------------------------------------------------


def _verdict(ratio: float, p_slower: float, p_faster: float, spread: float, runs: int,
             rule: Rule, spread_of: str, low: float = 0.0) -> Tuple[str, str]:
    if runs < rule.min_runs:
        return INCONCLUSIVE, f"only {runs} run(s); the gate needs at least {rule.min_runs}"
    if spread > rule.threshold and low > 1 + rule.threshold and p_slower < rule.alpha:
        return REGRESSED, (f"slower by {ratio - 1:+.1%} (p = {p_slower:.3f}); noisy (±{spread:.1%}) but even the "
                           f"interval's low end is {low - 1:+.1%}")
    if spread > rule.threshold:
        return INCONCLUSIVE, (f"{spread_of} spread ±{spread:.1%} exceeds the {rule.threshold:.0%} threshold: "
                              f"too noisy to judge (quieter machine or more runs)")
    if ratio > 1 + rule.threshold:
        if p_slower < rule.alpha:
            return REGRESSED, f"slower by {ratio - 1:+.1%} (p = {p_slower:.3f})"
        return OK, f"median {ratio - 1:+.1%} but not significant (p = {p_slower:.3f} >= {rule.alpha})"
    if ratio < 1 / (1 + rule.threshold) and p_faster < rule.alpha:
        return IMPROVED, f"faster by {1 - ratio:.1%} (p = {p_faster:.3f})"
    return OK, f"within ±{rule.threshold:.0%}"


def judge_paired(workload_id: str, step_id: str, base_p50: Sequence[int], new_p50: Sequence[int],
                 rule: Rule) -> Dict[str, Any]:
    """Duet: per-run ratios of paired p50s."""
    pairs = [(b, n) for b, n in zip(base_p50, new_p50) if b > 0 and n > 0]
    ratios = [n / b for b, n in pairs]
    logs = [math.log(r) for r in ratios]
    ratio = statistics.median(ratios) if ratios else math.nan
    p_slower = wilcoxon_greater(logs) if logs else 1.0
    p_faster = wilcoxon_greater([-x for x in logs]) if logs else 1.0
    spread = relative_spread(ratios)
    lo, hi, cov = median_ci(ratios)
    verdict, reason = _verdict(ratio, p_slower, p_faster, spread, len(ratios), rule, "the per-run ratios'", lo)
    return {"workload_id": workload_id, "step_id": step_id, "runs": len(ratios), "ratio": round(ratio, 4),
            "ci": [round(lo, 4), round(hi, 4)], "ci_coverage": round(cov, 3), "p": round(p_slower, 5),
            "spread": round(spread, 4), "per_run_ratios": [round(r, 4) for r in ratios],
            "baseline_p50_ns": list(base_p50), "candidate_p50_ns": list(new_p50),
            "verdict": verdict, "reason": reason}


def judge_unpaired(workload_id: str, step_id: str, base_p50: Sequence[int], new_p50: Sequence[int],
                   rule: Rule) -> Dict[str, Any]:
    """Stored baseline: ratio of the medians of per-run p50s, Mann-Whitney U."""
    if not base_p50 or not new_p50:
        return {"workload_id": workload_id, "step_id": step_id, "runs": min(len(base_p50), len(new_p50)),
                "verdict": INCONCLUSIVE, "reason": "no successful calls on one side"}
    ratio = statistics.median(new_p50) / statistics.median(base_p50)
    p_slower = mann_whitney_greater(base_p50, new_p50)
    p_faster = mann_whitney_greater(new_p50, base_p50)
    spread = relative_spread(base_p50)
    runs = min(len(base_p50), len(new_p50))
    verdict, reason = _verdict(ratio, p_slower, p_faster, spread, runs, rule, "the baseline's own run-to-run")
    return {"workload_id": workload_id, "step_id": step_id, "runs": runs, "ratio": round(ratio, 4),
            "p": round(p_slower, 5), "spread": round(spread, 4),
            "baseline_p50_ns": list(base_p50), "candidate_p50_ns": list(new_p50),
            "verdict": verdict, "reason": reason}


def exit_code(verdicts: Sequence[str]) -> int:
    if REGRESSED in verdicts:
        return 1
    if INCONCLUSIVE in verdicts or not verdicts:
        return 2
    return 0


def compare_stored(base_doc: Mapping[str, Any], new_doc: Mapping[str, Any], rule: Rule,
                   baseline_ref: str = "") -> Dict[str, Any]:
    """Gate two result documents recorded separately (workloads joined on ``workload_id``)."""
    base_w, new_w = results.workload_map(base_doc), results.workload_map(new_doc)
    out: List[Dict[str, Any]] = []
    warnings = [STORED_WARNING]
    missing = sorted(set(base_w) ^ set(new_w))
    if missing:
        warnings.append(f"workloads in only one file (not compared): {', '.join(missing)}")
    for wid in [w for w in new_w if w in base_w]:
        b_steps, n_steps = results.step_p50s(base_w[wid]), results.step_p50s(new_w[wid])
        for step in [s for s in n_steps if s in b_steps]:
            out.append(judge_unpaired(wid, step, b_steps[step], n_steps[step], rule))
    if (base_doc.get("environment") or {}).get("machine_id") != (new_doc.get("environment") or {}).get("machine_id"):
        warnings.append("the two files come from different machines: the comparison says little")
    clients = (base_doc.get("client") or "lean", new_doc.get("client") or "lean")
    if clients[0] != clients[1]:
        warnings.append(f"the baseline was driven by the {clients[0]} client and the candidate by the {clients[1]} "
                        "client: latencies include the client's own cost, so the change may be the client's")
    return {"mode": "stored", "baseline_ref": baseline_ref, "rule": rule.to_dict(), "results": out,
            "warnings": warnings, "exit_code": exit_code([r["verdict"] for r in out])}


def compare_paired(pairs: Mapping[Tuple[str, str], Tuple[Sequence[int], Sequence[int]]], rule: Rule,
                   baseline_ref: str = "") -> Dict[str, Any]:
    """Gate duet measurements: ``{(workload_id, step_id): (baseline p50s, candidate p50s)}``."""
    out = [judge_paired(wid, step, b, n, rule) for (wid, step), (b, n) in pairs.items()]
    return {"mode": "duet", "baseline_ref": baseline_ref, "rule": rule.to_dict(), "results": out,
            "warnings": [], "exit_code": exit_code([r["verdict"] for r in out])}


__all__ = ["Rule", "REGRESSED", "OK", "IMPROVED", "INCONCLUSIVE", "wilcoxon_greater", "mann_whitney_greater",
           "median_ci", "relative_spread", "judge_paired", "judge_unpaired", "compare_stored", "compare_paired",
           "exit_code", "STORED_WARNING"]
