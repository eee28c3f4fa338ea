"""Self-distillation: grow a seed Q&A set into hundreds of checked variants, round after
round, and train a student on it.

    from ghost.distill import run_distill
    results = run_distill(data="facts200:seed10", rounds=3, out="runs/distill")

`ghost distill` calls `run_distill`. The parts: `shapes` (question shapes parsed into facts:
a fact graph), `operators` (candidate questions: rewordings, inverses, yes/no, cloze,
compositions, generic rewordings), `filters` (leak, agreement, confidence, verifiers,
near-duplicates; each logs what it removed and why), `runner` (teacher, candidates, filters,
student, round after round; resume), `report` (results.json, report.md), `cli`.
docs/distill.md describes the method and the results.
"""

from ghost.distill.config import OPERATORS, DistillConfig

__all__ = ["OPERATORS", "DistillConfig", "run_distill"]


def __getattr__(name: str):
    if name == "run_distill":  # imports torch: only when used
        from ghost.distill.runner import run_distill

        return run_distill
    raise AttributeError(f"module 'ghost.distill' has no attribute {name!r}")
