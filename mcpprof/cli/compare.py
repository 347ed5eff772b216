"""``mcpprof compare``: the regression gate. Exit 0 no regression, 1 regression, 2 inconclusive."""

from __future__ import annotations

import asyncio
import shlex
from typing import Any, Dict, Optional, Tuple

import click

from ..errors import UsageError
from . import console
from .bench import common_options, load_workloads, make_target, out_path, progress_printer


def print_comparison(comparison: Dict[str, Any]) -> None:
    from rich.table import Table

    rule = comparison["rule"]
    table = Table(title=f"mcpprof compare ({comparison['mode']}: median per-run p50 ratio, fail above "
                        f"{1 + rule['threshold']:.2f} with {rule['test']} p < {rule['alpha']})", title_justify="left")
    for col in ("workload", "step", "runs", "change", "interval", "p", "verdict", "why"):
        table.add_column(col, justify="right" if col in ("runs", "change", "interval", "p") else "left")
    colour = {"regressed": "bold red", "ok": "green", "improved": "cyan", "inconclusive": "yellow"}
    for r in comparison["results"]:
        ratio = r.get("ratio")
        change = f"{ratio - 1:+.1%}" if isinstance(ratio, (int, float)) else "-"
        ci = r.get("ci")
        interval = f"{ci[0] - 1:+.1%}..{ci[1] - 1:+.1%}" if ci else "-"
        table.add_row(r["workload_id"], r["step_id"], str(r.get("runs", "")), change, interval,
                      f"{r['p']:.3f}" if "p" in r else "-", f"[{colour[r['verdict']]}]{r['verdict']}[/]",
                      r.get("reason", ""))
    console.console.print(table)
    for w in comparison.get("warnings", []):
        console.info(f"[yellow]warning:[/] {w}")
    regressed = [f"{r['workload_id']} / {r['step_id']}" for r in comparison["results"] if r["verdict"] == "regressed"]
    code = comparison["exit_code"]
    if code == 1:
        console.info(f"[bold red]REGRESSION[/] in {', '.join(regressed)}")
    elif code == 2:
        console.info("[yellow]INCONCLUSIVE[/]: the gate refuses to judge (see 'why')")
    else:
        console.info("[green]no regression[/]")


def _rule(mode: str, threshold: float, alpha: float, min_runs: Optional[int]) -> Any:
    from ..bench.gate import Rule

    default_min = 5 if mode == "duet" else 10
    return Rule(mode=mode, threshold=threshold, alpha=alpha, min_runs=min_runs or default_min)


@click.command("compare", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--duet", is_flag=True, help="Run baseline and candidate side by side now (the default rule).")
@click.option("--baseline", "baseline_cmd", default=None, metavar="COMMAND",
              help="Duet: the baseline server's command (one string, split like a shell).")
@click.option("--baseline-url", default=None, help="Duet: the baseline's HTTP endpoint (with --baseline: start it).")
@click.option("--threshold", type=click.FloatRange(0.001, 10), default=0.05, show_default=True,
              help="Fail above a median ratio of 1 + threshold.")
@click.option("--alpha", type=click.FloatRange(0.0001, 0.5), default=0.05, show_default=True,
              help="Significance level of the one-sided test.")
@click.option("--min-runs", type=click.IntRange(2), default=None,
              help="Refuse to judge with fewer runs (default 5 duet, 10 stored).")
@common_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def compare_cmd(duet: bool, baseline_cmd: Optional[str], baseline_url: Optional[str], threshold: float, alpha: float,
                min_runs: Optional[int], names: Tuple[str, ...], workload_file: Optional[str], tool: Optional[str],
                url: Optional[str], protocol: Optional[str], client: Optional[str], runs: Optional[int],
                requests: Optional[int],
                duration: Optional[float], warmup: Optional[int], seed: int, out: Optional[str], force: bool,
                profile_dir: Optional[str], as_json: bool, args: Tuple[str, ...]) -> int:
    """Did the candidate get slower? Two forms:

    \b
      mcpprof compare BASE.json NEW.json
          two stored results (from `mcpprof bench`; a baseline pointer file works too)
      mcpprof compare --duet --baseline "python old/server.py" [-w NAME] -- python new/server.py
          baseline and candidate started side by side, calls alternated (recommended)

    Per workload step: the median over runs of the per-run p50 ratio, its interval, the one-sided
    test's p, and a verdict. Exit 0 no regression, 1 regression, 2 inconclusive or bad input.
    """
    from ..bench import results
    from ..bench.gate import compare_stored

    if not duet:
        if baseline_cmd or baseline_url:
            raise UsageError("--baseline/--baseline-url go with --duet")
        if client:
            raise UsageError("--client goes with --duet (a stored result records the client that made it)")
        if len(args) != 2:
            raise UsageError("give two result files (mcpprof compare BASE.json NEW.json) or use --duet")
        from .baseline import resolve_pointer

        base_path = resolve_pointer(args[0])
        base, new = results.load(base_path), results.load(args[1])
        comparison = compare_stored(base, new, _rule("stored", threshold, alpha, min_runs), baseline_ref=base_path)
        doc = dict(new)
        doc["comparison"] = comparison
        if out:
            results.write(doc, out_path(out, force))
    else:
        from ..bench.duet import duet as run_duet
        from ..bench.workload import Target

        if not baseline_cmd and not baseline_url:
            raise UsageError("--duet needs --baseline COMMAND (or --baseline-url)")
        file_target, workloads = load_workloads(names or (() if workload_file else ("tool-simple",)), workload_file,
                                                tool, None, requests, duration, warmup)
        candidate = make_target(file_target, list(args), url, protocol, default_example=False, client=client)
        baseline = Target(command=shlex.split(baseline_cmd) if baseline_cmd else None, url=baseline_url,
                          protocol=candidate.protocol, env=dict(candidate.env), client=candidate.client)
        k = runs or 7
        dirs = None
        if profile_dir:
            import os

            dirs = {side: os.path.join(profile_dir, side) for side in ("baseline", "candidate")}
        console.info(f"mcpprof compare: duet of {len(workloads)} workload(s), {k} runs each")
        doc = asyncio.run(run_duet(baseline, candidate, workloads, _rule("duet", threshold, alpha, min_runs), k,
                                   seed=seed, profile_dirs=dirs, progress=progress_printer(as_json)))
        comparison = doc["comparison"]
        results.write(doc, out_path(out, force, "compare"))
    if as_json:
        from .output import print_json

        print_json(comparison)
    else:
        print_comparison(comparison)
    if profile_dir and duet:
        console.info(f"profiles in {profile_dir}/: see where the time went with  mcpprof diff "
                     f"{profile_dir}/baseline {profile_dir}/candidate")
    return int(comparison["exit_code"])
