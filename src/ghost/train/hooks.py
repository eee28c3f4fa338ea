"""The trainer's hook interface: recipes (and the trainer's own services) are `Recipe`s.

Five hooks, called in list order, each with the live `TrainState`:

    on_train_begin(state)                      once, after a resume has restored everything
    on_batch(state, batch) -> batch | None     before the forward pass: reshape, drop rows,
                                               or return None to skip the step
    on_loss(state, loss, output, batch) -> loss  before backward: add penalties (EWC), reweight
    on_step_end(state, metrics)                after the optimiser step: evaluate, log, save,
                                               adjust `state.lr_scale`, set `state.stop_reason`
    on_train_end(state)                        once, whatever the reason

A recipe with state that must survive a resume returns it from `state_dict()` (plain
Python values and tensors only: it is saved with `torch.save` and read back with
`weights_only=True`) and takes it in `load_state_dict()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ghost.config import TrainConfig


@dataclass
class TrainState:
    """What hooks see and may change. The loop reads `stop_reason`, `lr_scale`, `seq_len`."""

    config: TrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batcher: Any
    run_dir: Path
    step: int = 0
    total_steps: int | None = None  # None when training until a stopping rule fires
    seq_len: int | None = None  # recipes may shorten the sequence (None: the config's)
    lr_scale: float = 1.0  # multiplies the schedule's learning rate
    stop_reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    elapsed_before: float = 0.0  # training seconds of the runs this one resumes
    skipped_steps: int = 0
    nonfinite_steps: int = 0
    history: dict[str, float] = field(default_factory=dict)  # latest value of each metric

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started


class Recipe:
    """Base class: every hook does nothing. Subclasses override the ones they need."""

    name = "recipe"

    def on_train_begin(self, state: TrainState) -> None:
        pass

    def on_batch(self, state: TrainState, batch):
        return batch

    def on_loss(self, state: TrainState, loss: torch.Tensor, output, batch) -> torch.Tensor:
        return loss

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        pass

    def on_train_end(self, state: TrainState) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
