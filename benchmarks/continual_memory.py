"""The fact memory's part of the continual comparison: per seed, what each task keeps.

    python benchmarks/continual_memory.py RUN_DIR [--note TEXT]

RUN_DIR is a `ghost continual` run (benchmarks/continual.py's) holding the `memory`
strategy and optionally `memory-ewc`, beside `naive` and `ewc`. Writes
benchmarks/results/continual_memory.{json,md}: per strategy and seed, facts200's retention
after each task, bash100's after tasks 2 and 3, math1k's after 3, the average accuracy and
forgetting (as ghost.continual.metrics computes them), facts200's held-out paraphrase score
after each task, and per strategy the median [min, max] over seeds and the ratio of its
median forgetting to naive's. Only seeds whose every cell is scored are used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from ghost.continual.metrics import matrix_metrics
from ghost.continual.metrics import spread as cl_spread
from ghost.continual.report import spread_cell

STRATEGIES = ("naive", "ewc", "memory", "memory-ewc")
RESULTS = Path(__file__).resolve().parent / "results"


def per_seed(results: dict, strategy: str) -> dict[str, dict]:
    runs = results["runs"].get(strategy, {})
    rows = {}
    for seed, run in sorted(runs.items()):
        matrix = run["retention"]
        if any(v is None for row in matrix for v in row):
            continue
        m = matrix_metrics(matrix)
        rows[seed] = {
            "retention": matrix,
            "heldout": run["heldout"],
            "average_accuracy": 100 * m["average_accuracy"],
            "average_forgetting": 100 * m["average_forgetting"],
            "forgetting": [100 * f for f in m["forgetting"]],
        }
    return rows


def spread(values: list[float]) -> str:
    """Percentages over seeds as the continual report writes them: median [min, max]."""
    return spread_cell(cl_spread([v / 100 for v in values]))


def markdown(results: dict, table: dict[str, dict[str, dict]], note: str) -> str:
    m = results["machine"]
    lines = [
        "# Continual learning with the fact memory",
        "",
        "```",
        results.get("command", ""),
        "```",
        "",
        "The `memory` and `memory-ewc` strategies of `ghost continual` (docs/continual.md),",
        "in the same run as the comparison of benchmarks/results/continual.md (strategies",
        "added with `--resume`: the trainings they share with the others were reused).",
        note,
        "",
        f"Machine: {m['cpu']} {m.get('cpu_family_model', '')} ({' '.join(m['cpu_flags'])}), "
        f"{m['threads']} threads, {m.get('precision_used', m['precision'])}, {m['allocator']}, "
        f"torch {m['torch']}, commit {m['commit'][:10]}{' (dirty)' if m.get('dirty') else ''}.",
        f"Preset {results['config']['preset']}, {results['config']['steps_per_task']} steps a "
        f"task, lambda {results['lambda']['value']} ({results['lambda']['chosen_by']}); "
        "retention sample of training records; % exact match.",
        "",
        "| strategy, seed | facts200 after 1 / 2 / 3 | bash100 after 2 / 3 | math1k after 3 "
        "| average accuracy | average forgetting (facts200, bash100) "
        "| facts200 held-out (paraphrase) after 1 / 2 / 3 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for strategy, rows in table.items():
        for seed, r in rows.items():
            R, H, f = r["retention"], r["heldout"], r["forgetting"]
            lines.append(
                f"| {strategy}, {seed} | {100 * R[0][0]:.0f} / {100 * R[1][0]:.0f} / "
                f"{100 * R[2][0]:.0f} | {100 * R[1][1]:.0f} / {100 * R[2][1]:.0f} "
                f"| {100 * R[2][2]:.0f} | {r['average_accuracy']:.1f} "
                f"| {r['average_forgetting']:.1f} ({f[0]:.0f}, {f[1]:.0f}) "
                f"| {100 * H[0][0]:.0f} / {100 * H[1][0]:.0f} / {100 * H[2][0]:.0f} |"
            )
    naive = table.get("naive")
    base = statistics.median(r["average_forgetting"] for r in naive.values()) if naive else None
    lines += ["", "| strategy | seeds | average accuracy | average forgetting | vs naive |"]
    lines += ["| --- | --- | --- | --- | --- |"]
    for strategy, rows in table.items():
        acc = [r["average_accuracy"] for r in rows.values()]
        forg = [r["average_forgetting"] for r in rows.values()]
        ratio = f"{statistics.median(forg) / base:.2f}" if base else "n/a"
        lines.append(f"| {strategy} | {len(rows)} | {spread(acc)} | {spread(forg)} | {ratio} |")
    lines += [
        "",
        "Each `memory` and `memory-ewc` stage is scored with its bank (facts200's 200 facts) "
        "in memory; the others with none.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--note", default="", help="a line for the report (how it was run)")
    args = parser.parse_args(argv)
    results = json.loads((args.run_dir / "results.json").read_text(encoding="utf-8"))
    table = {s: rows for s in STRATEGIES if (rows := per_seed(results, s))}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "continual_memory"
    record = {
        "machine": results["machine"],
        "command": results.get("command"),
        "note": args.note,
        "runs": {s: rows for s, rows in table.items()},
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    text = markdown(results, table, args.note)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
