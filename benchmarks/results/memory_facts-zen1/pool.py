"""Pool the memory benchmark's three draws (`memory_facts.py RUN --seed 0|1|2`) of runs made on
the Zen 1 host: `ghost train --data facts200 --preset small --steps 500 --memory-training on
--seed S`, S = 0, 1, 2, at e229160 (distractors encoded without gradient: mem-frozen*, not
kept), and seed 0 trained by the code before (mem-small, trained in the session before, ahead
of 5aeda95). The benchmark itself ran at e229160 for all four. Files: bs-RUN-DRAW.json. Run:
python pool.py."""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {
    "e229160 (seeds 0-2)": ["mem-frozen", "mem-frozen-s1", "mem-frozen-s2"],
    "before (seed 0)": ["mem-small"],
}
rows = {}
for name in [n for names in RUNS.values() for n in names]:
    files = [HERE / f"bs-{name}-{d}.json" for d in (0, 1, 2)]
    results = [json.loads(f.read_text()) for f in files if f.exists()]
    if not results:
        continue
    unseen = [r["unseen_facts"] for r in results]
    rows[name] = (
        statistics.mean(u["exact_match_with_facts"] for u in unseen),
        statistics.mean(u["by_template"]["train"] for u in unseen),
        statistics.mean(u["by_template"]["heldout"] for u in unseen),
        statistics.mean(r["locality"]["unchanged"] for r in results),
        statistics.mean(r["counterfactual"]["answers_from_memory"] for r in results),
        statistics.mean(u["exact_match_without_facts"] for u in unseen),
    )
    print(name, len(results), "draws", [round(v, 3) for v in rows[name]])
for label, names in RUNS.items():
    names = [n for n in names if n in rows]
    medians = [round(statistics.median(rows[n][i] for n in names), 3) for i in range(6)]
    ranges = [
        (round(min(rows[n][i] for n in names), 3), round(max(rows[n][i] for n in names), 3))
        for i in range(6)
    ]
    print(
        label,
        "median over training seeds (unseen, training's, held-out wordings, locality, "
        "counterfactual, without facts)",
        medians,
        ranges,
    )
