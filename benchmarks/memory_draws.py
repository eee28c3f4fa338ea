"""Pool the memory benchmark's draws of several training runs: `memory_facts.py RUN --seed D`
for D = 0, 1, 2 writes `bs-RUN-D.json` into a results folder; each measure is averaged over a
run's draws (the sampling noise of one draw's questions), then its median and range over the
runs of a group (training seeds) are printed. A results folder's `pool.py` names its groups
and calls `pool`."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

MEASURES = (
    "unseen",
    "training's wordings",
    "held-out wordings",
    "locality",
    "counterfactual",
    "without facts",
)


def measures(result: dict) -> tuple[float, ...]:
    unseen = result["unseen_facts"]
    return (
        unseen["exact_match_with_facts"],
        unseen["by_template"]["train"],
        unseen["by_template"]["heldout"],
        result["locality"]["unchanged"],
        result["counterfactual"]["answers_from_memory"],
        unseen["exact_match_without_facts"],
    )


def pool(folder: Path, groups: dict[str, list[str]], draws=(0, 1, 2)) -> None:
    """`groups`: label -> the runs (bs-RUN-D.json) it pools; a run without files is left out."""
    rows = {}
    for name in [n for names in groups.values() for n in names]:
        files = [folder / f"bs-{name}-{d}.json" for d in draws]
        results = [measures(json.loads(f.read_text())) for f in files if f.exists()]
        if not results:
            continue
        rows[name] = [statistics.mean(r[i] for r in results) for i in range(len(MEASURES))]
        print(name, len(results), "draws", [round(v, 3) for v in rows[name]])
    for label, names in groups.items():
        names = [n for n in names if n in rows]
        columns = [[rows[n][i] for n in names] for i in range(len(MEASURES))]
        medians = [round(statistics.median(c), 3) for c in columns]
        ranges = [(round(min(c), 3), round(max(c), 3)) for c in columns]
        what = f"median over training seeds ({', '.join(MEASURES)})"
        print(label, what, medians, ranges)
