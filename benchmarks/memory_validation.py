"""Validation of a memory-trained run, for choosing memory training's settings: it uses only
fictional facts of the *training* pool (`ghost.data.fictional`, pool="train") and the
distillation's *validation* question templates, never the memory benchmark's entities or its
held-out wording (benchmarks/memory_facts.py reports on those).

    python benchmarks/memory_validation.py RUN [RUN...]

For each run, one JSON line:
- `train_exact`: facts200:train answered exactly with an empty bank;
- `changed_of_273`: trained answers that change when 500 fictional facts are written
  (three draws of the facts);
- `own` / `validation`: 120 fictional facts written among 240 others, asked in their own
  wordings / in the distillation's validation wordings for their relation;
- `counterfactual`: 100 edited facts200 facts written ("The capital of France is Tokyo."),
  each asked: answered from the bank (edits drawn with seed 31: training draws with the
  run's seed, the benchmark with its own, 0 by default).
Each run takes 1-2 minutes with v5-fast on 2 cores.
"""

from __future__ import annotations

import json
import random
import sys

import torch
from memory_facts import exact_match  # (benchmarks/, the script's folder, is on the path)

from ghost.data.builtin import load_builtin
from ghost.data.fictional import counterfactual_edits, fictional_facts, reword
from ghost.data.records import Dataset
from ghost.eval.metrics import evaluate_qa
from ghost.launcher import ensure_fast_allocator
from ghost.model.ghost import GhostModel
from ghost.runtime import configure


def validate(run: str) -> dict:
    model = GhostModel.from_pretrained(run, memory=False)  # the bank starts empty
    memory = model.memory
    trained = Dataset("train", "qa", load_builtin("facts200:train"))
    summary, before = evaluate_qa(model, trained)
    result = {"run": run, "train_exact": summary["exact_match"], "changed_of_273": []}
    for seed in (11, 12, 13):
        memory.clear()
        memory.write([f.fact for f in fictional_facts(500, seed, pool="train")])
        _, after = evaluate_qa(model, trained)
        changed = sum(
            a["prediction"] != b["prediction"] for a, b in zip(after, before, strict=True)
        )
        result["changed_of_273"].append(changed)
    targets = fictional_facts(120, 21, pool="train", templates="train")
    asked = {f.question for f in targets}
    others = [f for f in fictional_facts(360, 22, pool="train") if f.question not in asked][:240]
    memory.clear()
    memory.write([f.fact for f in others + targets])
    rng = random.Random(0)
    wordings = {
        "own": [f.question for f in targets],
        "validation": [reword(f, rng, "validation") for f in targets],
    }
    answers = [f.answer for f in targets]
    for name, questions in wordings.items():
        result[name] = exact_match(model, list(zip(questions, answers, strict=True)))
    edits = counterfactual_edits(trained.records, seed=31, n=100)
    memory.clear()
    memory.write([e.fact for e in edits])
    result["counterfactual"] = exact_match(model, [(e.question, e.answer) for e in edits])
    return result


def main(runs: list[str]) -> None:
    ensure_fast_allocator()
    torch.set_grad_enabled(False)
    configure(0, seed=0)
    for run in runs:
        print(json.dumps(validate(run)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
