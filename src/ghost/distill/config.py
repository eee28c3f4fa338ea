"""What a distillation run is: `DistillConfig`, saved as OUT/plan.json.

Every choice the pipeline makes from data (thresholds, student initialisation, whether a
disagreeing teacher drops a candidate or the seed fact corrects it) is a field here, so a
run records how it was made. The defaults were chosen on the validation questions
(`ghost.distill.operators.validation_candidates`: templates and compositions never used for
training), never on the held-out splits the report shows; docs/distill.md says how.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ghost.errors import GhostInputError

OPERATORS = ("reword", "invert", "yesno", "cloze", "compose", "generic", "swap", "teacher")
DEFAULT_OPERATORS = ("reword", "invert", "yesno", "cloze", "compose", "generic", "swap")
AGREEMENT = ("require", "correct")
STUDENT_INIT = ("teacher", "scratch")


def _names(value, what: str, allowed: tuple[str, ...]) -> list[str]:
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise GhostInputError(
            f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}"
        )
    return names


@dataclass
class DistillConfig:
    """One distillation experiment: the seed set, the rounds, and how each round is made."""

    data: str = "facts200:seed10"
    """The seed Q&A set: a built-in NAME[:SPLIT] or a .jsonl path."""
    out: str = "runs/distill"
    rounds: int = 3
    seeds: int = 1
    """Independent repetitions (seed s trains every model with seed s and draws its own
    candidates); the report gives the median and range over them."""
    preset: str = "small"
    steps: int | str = "auto"
    """Optimiser steps of each training (teacher and students), or 'auto' (until training
    exact match is 100% or the loss stops improving; capped by max_minutes)."""
    max_minutes: float = 15.0
    student_init: str = "teacher"
    """'teacher': each student starts from its teacher's weights; 'scratch': from a fresh
    initialisation."""
    agreement: str = "correct"
    """A candidate built from a seed fact whose teacher answer differs from the fact's:
    'require' drops it, 'correct' keeps it with the fact's answer (logged as corrected)."""
    confidence: float = 0.5
    """Least mean byte probability of the teacher's answer, for candidates no fact can check."""
    dedup_threshold: float = 0.7
    """Word-level ROUGE-L at or above which two questions with the same answer are one pair
    (Self-Instruct's 0.7), and a candidate too close to a held-out question is a leak."""
    operators: list[str] = field(default_factory=lambda: list(DEFAULT_OPERATORS))
    budget: int = 0
    """Most candidates offered per round (a seeded sample); 0: all the operators make."""
    seed_share: float = 0.2
    """The seed records are repeated in each student's training set to be about this share
    of its rows (so a set grown 30-fold still teaches every seed); 0 trains each pair once."""
    augment: str = "surface"
    """Training questions in casual forms too (ghost.data.batches.surface_variant)."""
    reasoning: str = "none"
    """'chain': every training answers multi-hop pairs through their hops (TrainConfig)."""
    group_by_length: bool = False
    """Every training batches records of similar length together (TrainConfig)."""
    recipes: dict = field(default_factory=dict)
    """Training recipes of every training (`ghost train --recipe`), e.g. chain-practice."""
    context_copy: bool = False
    """Every model gets the context copy head (GhostConfig.context_copy): it can copy a span
    of the question, such as a hop's entity, byte for byte."""
    heldout: list[str] = field(default_factory=list)
    """Extra held-out files the leak filter guards (a built-in's own held-out splits always)."""
    init_from: str | None = None
    """A trained run to be round 1's teacher (no teacher is trained then)."""
    batch_size: int = 32
    seq_len: int = 256
    lr: float = 3e-3
    precision: str = "auto"

    def __post_init__(self):
        from ghost.config import parse_recipes
        from ghost.train.recipes import build_recipes

        self.recipes = parse_recipes(self.recipes)
        build_recipes(self.recipes)  # an unknown recipe or option: exit 2 before any training
        self.operators = _names(self.operators, "operator", OPERATORS)
        if not self.operators:
            raise GhostInputError("--operators: give at least one operator")
        if self.agreement not in AGREEMENT:
            raise GhostInputError(f"--agreement must be one of {', '.join(AGREEMENT)}")
        if self.student_init not in STUDENT_INIT:
            raise GhostInputError(f"--student-init must be one of {', '.join(STUDENT_INIT)}")
        if isinstance(self.steps, str) and self.steps != "auto":
            try:
                self.steps = int(self.steps)
            except ValueError:
                raise GhostInputError("--steps must be a positive integer or 'auto'") from None
        for name in ("rounds", "seeds", "batch_size", "seq_len"):
            if int(getattr(self, name)) <= 0:
                raise GhostInputError(f"--{name.replace('_', '-')} must be positive")
        if isinstance(self.steps, int) and self.steps <= 0:
            raise GhostInputError("--steps must be positive")
        if self.budget < 0:
            raise GhostInputError("--budget must be >= 0")
        if not 0.0 <= self.seed_share < 1.0:
            raise GhostInputError("--seed-share must be in [0, 1)")
        if not 0.0 <= self.confidence <= 1.0:
            raise GhostInputError("--confidence must be in [0, 1]")
        if not 0.0 < self.dedup_threshold <= 1.0:
            raise GhostInputError("--dedup-threshold must be in (0, 1]")
        if self.augment not in ("none", "surface"):
            raise GhostInputError("--augment must be 'none' or 'surface'")
        if self.reasoning not in ("none", "chain"):
            raise GhostInputError("--reasoning must be 'none' or 'chain'")

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PLAN = "plan.json"


def saved_plan(out: str | Path) -> dict | None:
    path = Path(out) / PLAN
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise GhostInputError(f"{path}: not valid JSON ({e})") from None


def check_plan(out: Path, cfg: DistillConfig, resume: bool) -> None:
    """A fresh run needs an empty OUT; a resumed one the same plan (OUT/plan.json)."""
    plan = saved_plan(out)
    if not resume:
        if out.exists() and any(out.iterdir()):
            raise GhostInputError(
                f"{out}: exists and is not empty; choose another --out or continue it with --resume"
            )
        return
    if plan is None:
        raise GhostInputError(f"{out}: nothing to resume (no {PLAN})")
    mine = cfg.to_dict()
    differ = [k for k in mine if k in plan and plan[k] != mine[k] and k != "out"]
    if differ:
        raise GhostInputError(
            f"{out}: --resume with settings that differ from its plan: {', '.join(differ)}"
        )
