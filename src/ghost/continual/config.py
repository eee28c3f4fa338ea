"""What a continual-learning run is: its tasks, strategies, seeds and budgets (`ContinualConfig`).

Everything here decides the results, so it is saved as the run's plan (OUT/plan.json) and a
resumed run must match it (`check_plan`). How the run executes (threads, quiet, where to
stop) is not part of it, nor is OUT itself (a directory may move). This module imports no
torch, so `ghost --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghost.errors import GhostInputError

# name -> one line for --help. Sequential strategies train the tasks one after another;
# `joint` trains once on all of them (the upper reference). A new strategy is a row here and
# a case in `runner.sequence`.
STRATEGIES: dict[str, str] = {
    "naive": "fine-tune on each task in turn (the lower bound)",
    "ewc": "elastic weight consolidation: one penalty term per earlier task",
    "online-ewc": "EWC with one running Fisher, decayed by --online-gamma per task",
    "replay": "mix a buffer of --replay-size earlier records into each new task's data",
    "joint": "one training on all tasks at once for the same total steps (upper reference)",
    "memory": "a task whose records carry facts trains the fact memory and leaves its facts "
    "in the bank; each later task is fine-tuned with the bank in place while reading is "
    "practised on generated facts",
    "memory-ewc": "memory and ewc together: facts stay in the bank, the weights that earlier "
    "tasks needed are held by the EWC penalty",
}
PENALTY_STRATEGIES = ("ewc", "online-ewc", "memory-ewc")
MEMORY_STRATEGIES = ("memory", "memory-ewc")
FISHER_TARGETS = ("model", "empirical")
EWC_UPDATES = ("gradient", "proximal")  # as the ewc recipe's `update`
FISHER_FORMS = ("diagonal", "kfac")
SWEEP = "sweep"
DEFAULT_LAMBDA_GRID = (1e2, 1e3, 1e4, 1e5)
PLAN = "plan.json"
NOT_PLANNED = ("out",)  # settings a resumed run may change
# ... or extend: a resumed run may add strategies (trainings it already has are reused)
EXTENSIBLE = ("strategies",)
# Settings whose default changed after plans were written without them: the value such a
# plan ran with (a resume must train what it trained).
BEFORE_ADDED = {"fisher_form": "diagonal"}


def _names(value, what: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(item).strip() for item in items if str(item).strip()]
    if not names:
        raise GhostInputError(f"--{what}: give at least one")
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise GhostInputError(f"--{what}: {duplicate!r} is listed twice")
    return names


def parse_lambda(value) -> float | str:
    """'sweep' or a finite number >= 0 (the text of --ewc-lambda, or a number)."""
    if isinstance(value, str) and value.strip().lower() == SWEEP:
        return SWEEP
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GhostInputError(
            f"--ewc-lambda must be a number >= 0 or 'sweep', got {value!r}"
        ) from None
    if not (math.isfinite(number) and number >= 0):
        raise GhostInputError(f"--ewc-lambda must be a finite number >= 0, got {value!r}")
    return number


def parse_grid(value) -> list[float]:
    items = value.split(",") if isinstance(value, str) else list(value)
    grid = []
    for item in items:
        number = parse_lambda(item)
        if number == SWEEP or number <= 0:
            raise GhostInputError(f"--lambda-grid: values must be numbers > 0, got {item!r}")
        grid.append(number)
    if len(grid) < 2 or len(set(grid)) != len(grid):
        raise GhostInputError("--lambda-grid: give at least two different values")
    return sorted(grid)


@dataclass
class ContinualConfig:
    """A continual-learning experiment: tasks in order, strategies side by side, seeds."""

    tasks: list[str] = field(default_factory=list)
    """The tasks in training order: built-in NAME[:SPLIT] or .jsonl paths of Q&A records."""
    strategies: list[str] = field(default_factory=lambda: ["ewc"])
    """Strategies run side by side (same seeds, same data order); see STRATEGIES."""
    out: str = "runs/continual"
    """Output directory: runs, results.json, report.md, plots."""
    heldout: list[str | None] | None = None
    """Each task's held-out data (None or '-': none); default: a built-in's held-out split."""
    seeds: int = 1
    """Seeds 0 .. seeds-1."""
    steps_per_task: int = 100
    """Optimiser steps on each task (joint: this times the number of tasks)."""
    ewc_lambda: float | str = SWEEP
    """lambda of the EWC penalty, or 'sweep': chosen on one seed against validation records."""
    lambda_grid: list[float] = field(default_factory=lambda: list(DEFAULT_LAMBDA_GRID))
    """The values the sweep tries."""
    sweep_tasks: int = 2
    """The sweep trains the first this-many tasks (at least 2)."""
    online_gamma: float = 0.9
    """Online EWC's decay of the running Fisher per task."""
    replay_size: int = 100
    """Replay: records of earlier tasks kept in the buffer (split evenly between them)."""
    fisher_samples: int = 200
    """Records of a finished task its Fisher is estimated from (all when fewer)."""
    fisher_targets: str = "model"
    """'model' (answers sampled from the model: the true Fisher) or 'empirical' (the data's)."""
    ewc_update: str = "gradient"
    """How the penalty acts: 'gradient' (added to the loss) or 'proximal' (an exact proximal
    step after each optimiser step; the `ewc` recipe's `update`)."""
    fisher_draws: int = 1
    """Answers sampled per record for the Fisher (model targets): more lowers its variance."""
    fisher_form: str = "kfac"
    """'kfac' (each linear layer's Fisher as a Kronecker product of its input and
    output-gradient second moments; the rest diagonal) or 'diagonal' (one number a weight)."""
    fisher_temperature: float = 1.0
    """The Fisher of the model's distribution softened by this temperature (answers sampled
    from it): above 1, a memorised task's Fisher is no longer near zero everywhere."""
    eval_size: int = 100
    """Records per task in each scored sample: the retention sample and the sweep's
    validation sample (a task with fewer than twice this many training records gives each
    half), and a fixed sample of its held-out set."""
    preset: str = "v5-fast"
    batch_size: int = 32
    seq_len: int = 256
    lr: float = 3e-3
    precision: str = "auto"

    def __post_init__(self):
        self.tasks = _names(self.tasks, "tasks")
        if len(self.tasks) < 2:
            raise GhostInputError("--tasks: continual learning needs at least two tasks")
        self.strategies = _names(self.strategies, "strategy")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise GhostInputError(
                f"--strategy: unknown strategy {unknown[0]!r} (available: {', '.join(STRATEGIES)})"
            )
        if self.heldout is not None:
            items = self.heldout.split(",") if isinstance(self.heldout, str) else self.heldout
            self.heldout = [
                None if not h or str(h).strip() in ("", "-") else str(h).strip() for h in items
            ]
            if len(self.heldout) != len(self.tasks):
                raise GhostInputError(
                    f"--heldout: give one per task ({len(self.tasks)}; '-' for none), "
                    f"got {len(self.heldout)}"
                )
        for name in (
            "seeds",
            "steps_per_task",
            "replay_size",
            "fisher_samples",
            "fisher_draws",
            "eval_size",
            "batch_size",
            "seq_len",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise GhostInputError(
                    f"--{name.replace('_', '-')} must be a positive integer, got {value!r}"
                )
        self.ewc_lambda = parse_lambda(self.ewc_lambda)
        self.lambda_grid = parse_grid(self.lambda_grid)
        if not 2 <= self.sweep_tasks <= len(self.tasks):
            raise GhostInputError(
                f"--sweep-tasks must be 2 to {len(self.tasks)} (the number of tasks), "
                f"got {self.sweep_tasks}"
            )
        if not 0 < self.online_gamma <= 1:
            raise GhostInputError(f"--online-gamma must be in (0, 1], got {self.online_gamma}")
        if self.fisher_targets not in FISHER_TARGETS:
            raise GhostInputError(
                f"--fisher-targets must be one of {', '.join(FISHER_TARGETS)}, "
                f"got {self.fisher_targets!r}"
            )
        if self.fisher_draws > 1 and self.fisher_targets != "model":
            raise GhostInputError("--fisher-draws above 1 needs --fisher-targets model")
        if self.fisher_form not in FISHER_FORMS:
            raise GhostInputError(
                f"--fisher-form must be one of {', '.join(FISHER_FORMS)}, got {self.fisher_form!r}"
            )
        if self.fisher_form == "kfac" and self.ewc_update == "proximal":
            raise GhostInputError("--ewc-update proximal needs --fisher-form diagonal")
        if self.ewc_update not in EWC_UPDATES:
            raise GhostInputError(
                f"--ewc-update must be one of {', '.join(EWC_UPDATES)}, got {self.ewc_update!r}"
            )
        if not (self.fisher_temperature > 0 and math.isfinite(self.fisher_temperature)):
            raise GhostInputError(
                f"--fisher-temperature must be a positive number, got {self.fisher_temperature}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise GhostInputError(f"--lr must be a positive number, got {self.lr}")

    @property
    def sweeping(self) -> bool:
        """Whether lambda is chosen by the sweep (only when a strategy uses it)."""
        uses = any(s in PENALTY_STRATEGIES for s in self.strategies)
        return uses and self.ewc_lambda == SWEEP

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def saved_plan(out: str | Path) -> dict | None:
    """The ContinualConfig fields saved in OUT/plan.json, or None when there is none."""
    path = Path(out) / PLAN
    if not path.is_file():
        return None
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GhostInputError(f"{path}: unreadable plan ({e})") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("config"), dict):
        raise GhostInputError(f"{path}: not a continual-learning plan")
    return {**BEFORE_ADDED, **plan["config"]}


def check_plan(out: Path, cfg: ContinualConfig, resume: bool) -> None:
    """A fresh run needs a new (or empty) directory; a resumed one its plan, unchanged."""
    if out.exists() and not out.is_dir():
        raise GhostInputError(f"{out}: is a file, expected an output directory (--out)")
    saved = saved_plan(out)
    if not resume:
        if saved is not None:
            raise GhostInputError(
                f"{out}: already holds a continual run; pass --resume to continue it, "
                "or choose another --out"
            )
        if out.exists() and any(out.iterdir()):
            raise GhostInputError(f"{out}: not empty and not a continual run; choose another --out")
        return
    if saved is None:
        raise GhostInputError(f"{out}: nothing to resume (no {PLAN})")
    mine = cfg.to_dict()
    defaults = {f.name: f.default for f in dataclasses.fields(ContinualConfig)}
    for name in ContinualConfig.fields():
        was = saved.get(name, defaults[name])  # a setting added later: its default then
        if name in EXTENSIBLE and set(was or []) <= set(mine[name]):
            continue
        if name not in NOT_PLANNED and was != mine[name]:
            raise GhostInputError(
                f"{out}: --{name.replace('_', '-')} {mine[name]!r} differs from the run being "
                f"resumed ({was!r}); a resumed run keeps its settings"
            )


def write_plan(out: Path, cfg: ContinualConfig) -> None:
    from ghost.model.io import atomic_write_text

    atomic_write_text(out / PLAN, json.dumps({"config": cfg.to_dict()}, indent=1) + "\n")
