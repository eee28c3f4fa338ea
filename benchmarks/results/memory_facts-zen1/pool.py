"""Pool the memory benchmark's three draws (`memory_facts.py RUN --seed 0|1|2`) of runs made on
the Zen 1 host: `ghost train --data facts200 --preset small --steps 500 --memory-training on
--seed S`, S = 0, 1, 2, at e229160 (distractors encoded without gradient: mem-frozen*, not
kept), and seed 0 trained by the code before (mem-small, trained in the session before, ahead
of 5aeda95). The benchmark itself ran at e229160 for all four. Files: bs-RUN-DRAW.json. Run:
python pool.py."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # benchmarks/
from memory_draws import pool  # noqa: E402

pool(
    HERE,
    {
        "e229160 (seeds 0-2)": ["mem-frozen", "mem-frozen-s1", "mem-frozen-s2"],
        "before (seed 0)": ["mem-small"],
    },
)
