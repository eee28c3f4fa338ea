"""`curriculum`: the sequence length grows linearly from a short start to the full length.

The step about to be trained, s (0-based), trains on samples of at most

    L(s) = int(start + (end - start) * min(1, s / span_steps))

bytes, where `end` = 0 means the run's `seq_len`, and

    span_steps = span * steps                           a fixed-step run (`--steps N`)
    span_steps = span_epochs * batcher.steps_per_epoch  `--steps auto` (the end is unknown)

The original Ghost trainer used int(16 + step / steps * 48): start 16, end 64, span 1.

Short samples first: the early steps are cheaper (the forward and backward are linear in the
length) and the model first learns local byte statistics. How each batcher shortens a sample:
- Q&A: a record longer than L(s) loses the start of its question (`QABatcher.collate` crops
  from the left), so the answer and its end marker stay and every row keeps target bytes.
- text: the windows are simply L(s) bytes long instead of `seq_len`.

The loop reads `state.seq_len` when it draws a batch at the top of each step, so the length
is set for the next step: in `on_train_begin` (for the first step, or the first after a
resume) and in `on_step_end`. L depends on the step alone, so a resume is exact and nothing
is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe, TrainState
from ghost.train.recipes import number_option, whole_option


@dataclass
class SequenceLengthCurriculum(Recipe):
    """Train on short samples first; the length grows linearly to the full length."""

    name: ClassVar[str] = "curriculum"

    start: int = 16
    """Length of the first step's samples, in bytes (at least 2: one input, one target)."""
    end: int = 0
    """Length reached at the end of the span; 0 means the run's seq_len."""
    span: float = 1.0
    """Fraction of a fixed-step run's steps over which the length grows (0 < span <= 1)."""
    span_epochs: float = 4.0
    """With --steps auto (no known end): the length grows over this many epochs."""

    def __post_init__(self):
        self.start = whole_option("curriculum", "start", self.start)
        self.end = whole_option("curriculum", "end", self.end)
        self.span = number_option("curriculum", "span", self.span)
        self.span_epochs = number_option("curriculum", "span_epochs", self.span_epochs)
        if self.start < 2:
            raise GhostInputError(f"recipe 'curriculum': start must be >= 2, got {self.start}")
        if self.end != 0 and self.end < self.start:
            raise GhostInputError(
                f"recipe 'curriculum': end must be 0 (the run's seq_len) or >= start "
                f"({self.start}), got {self.end}"
            )
        if not 0 < self.span <= 1:
            raise GhostInputError(f"recipe 'curriculum': span must be in (0, 1], got {self.span}")
        if not self.span_epochs > 0:
            raise GhostInputError(
                f"recipe 'curriculum': span_epochs must be positive, got {self.span_epochs}"
            )

    def final_length(self, state: TrainState) -> int:
        return self.end or state.config.seq_len

    def span_steps(self, state: TrainState) -> float:
        """Steps over which the length grows."""
        if state.total_steps is None:
            return self.span_epochs * state.batcher.steps_per_epoch
        return self.span * state.total_steps

    def length_at(self, state: TrainState, step: int) -> int:
        """L(step): the longest sample of 0-based step `step`."""
        progress = min(1.0, step / self.span_steps(state))
        return int(self.start + (self.final_length(state) - self.start) * progress)

    def on_train_begin(self, state: TrainState) -> None:
        seq_len = state.config.seq_len
        if self.start > seq_len or self.end > seq_len:
            raise GhostInputError(
                f"recipe 'curriculum': start ({self.start}) and end ({self.end}) must not "
                f"exceed the run's seq_len ({seq_len})"
            )
        state.seq_len = self.length_at(state, state.step)

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        state.seq_len = self.length_at(state, state.step)  # state.step is now the next step
