"""Pool the memory benchmark's three draws (`memory_facts.py RUN --seed 0|1|2`) of six runs:
`ghost train --data facts200 --preset small --steps 500 --memory-training on --seed S`,
S = 0, 1, 2, with the default `reword` = 0.25 (mem-small*) and with `reword` = 0 (mem-noenc-run
= seed 0 at cc3bd51's code, mem-r0-s1/s2). Files: bs-RUN-DRAW.json. Run: python pool.py."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # benchmarks/
from memory_draws import pool  # noqa: E402

pool(
    HERE,
    {
        "reword 0.25": ["mem-small", "mem-small-s1", "mem-small-s2"],
        "reword 0": ["mem-noenc-run", "mem-r0-s1", "mem-r0-s2"],
    },
)
