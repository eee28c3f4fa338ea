"""Pool the memory benchmark's three draws (`memory_facts.py RUN --seed 0|1|2`) of six runs:
`ghost train --data facts200 --preset small --steps 500 --memory-training on --seed S`,
S = 0, 1, 2, with the default `reword` = 0.25 (mem-small*) and with `reword` = 0 (mem-noenc-run
= seed 0 at cc3bd51's code, mem-r0-s1/s2). Files: bs-RUN-DRAW.json. Run: python pool.py."""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {
    "reword 0.25": ["mem-small", "mem-small-s1", "mem-small-s2"],
    "reword 0": ["mem-noenc-run", "mem-r0-s1", "mem-r0-s2"],
}
rows = {}
for name in [n for names in RUNS.values() for n in names]:
    results = [json.loads((HERE / f"bs-{name}-{d}.json").read_text()) for d in (0, 1, 2)]
    unseen = [r["unseen_facts"] for r in results]
    rows[name] = (
        statistics.mean(u["exact_match_with_facts"] for u in unseen),
        statistics.mean(u["by_template"]["train"] for u in unseen),
        statistics.mean(u["by_template"]["heldout"] for u in unseen),
        statistics.mean(r["locality"]["unchanged"] for r in results),
    )
    print(name, [round(v, 3) for v in rows[name]])
for label, names in RUNS.items():
    medians = [round(statistics.median(rows[n][i] for n in names), 3) for i in range(4)]
    what = "median over training seeds (unseen, training's, held-out wordings, locality)"
    print(label, what, medians)
