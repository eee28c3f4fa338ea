"""The trainer's hook interface: recipes (and the trainer's own services) are `Recipe`s.

Seven hooks, called in list order, each with the live `TrainState`:

    on_train_begin(state)                      once, after a resume has restored everything
    on_batch(state, batch) -> batch | None     before the forward pass: reshape, drop or
                                               replace rows, set `state.forward_kwargs`, or
                                               return None to skip the step
    on_loss(state, loss, output, batch) -> loss  before backward: add penalties (EWC)
    on_backward(state)                         after backward, before clipping and the
                                               optimiser step: gradients are in `p.grad`
    on_optimizer_step(state)                   right after the optimiser step (and after
                                               `state.update_scale` was applied)
    on_step_end(state, metrics)                evaluate, log, save, adjust `state.lr_scale`
                                               or `state.seq_len`, set `state.stop_reason`
    on_train_end(state)                        once, whatever the reason

What a recipe may change, and how the loop honours it:
- `state.seq_len`: the longest sample of the next batch (None: the config's).
- `state.lr_scale`: multiplies the schedule's learning rate.
- `state.update_scale[param_name] = m`: multiplies that parameter's *update* (not its
  gradient: AdamW is invariant to a constant gradient scale, so scaling gradients changes
  almost nothing). `m` is a float or a tensor that broadcasts to the parameter, e.g.
  (256, 1) for one multiplier per byte row of the (tied) embedding. After the optimiser
  step the loop sets p = p_before + m * (p_after - p_before), which for AdamW is exactly
  the update at learning rate m * lr, weight decay included.
- `state.forward_kwargs`: extra keyword arguments of this step's forward pass (cleared
  before each step's `on_batch`), e.g. `mamba_states` to start from carried SSM states.
- `state.rows`: after the forward pass, this step's per-row results (`RowStats`: loss,
  confidence, teacher-forced correctness), for hooks from `on_loss` on.

A recipe with options is a dataclass: its fields are the options of `[recipes.NAME]` in a
TOML config and of `--recipe NAME:key=value`. A recipe with state that must survive a resume
returns it from `state_dict()` (plain Python values and tensors only: it is saved with
`torch.save` and read back with `weights_only=True`) and takes it in `load_state_dict()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ghost.config import TrainConfig


@dataclass
class RowStats:
    """Per-row results of one training forward pass (no gradient)."""

    indices: torch.Tensor  # (B,) the batch's `indices`: records (Q&A) or window starts (text)
    loss: torch.Tensor  # (B,) mean next-byte cross-entropy over the row's target bytes, nats
    confidence: torch.Tensor  # (B,) mean probability the model gave the row's target bytes
    correct: torch.Tensor  # (B,) bool: the argmax is the target at every target byte
    n_targets: torch.Tensor  # (B,) target bytes per row


@dataclass
class TrainState:
    """What hooks see and may change (see the module docstring for what the loop reads)."""

    config: TrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batcher: Any
    run_dir: Path
    step: int = 0
    total_steps: int | None = None  # None when training until a stopping rule fires
    precision: str = "fp32"  # what the forward passes run in ('auto' resolved)
    seq_len: int | None = None  # recipes may shorten the sequence (None: the config's)
    lr_scale: float = 1.0  # multiplies the schedule's learning rate
    update_scale: dict[str, float | torch.Tensor] = field(default_factory=dict)
    forward_kwargs: dict[str, Any] = field(default_factory=dict)
    rows: RowStats | None = None
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

    def on_backward(self, state: TrainState) -> None:
        pass

    def on_optimizer_step(self, state: TrainState) -> None:
        pass

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        pass

    def on_train_end(self, state: TrainState) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
