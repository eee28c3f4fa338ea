"""`byte-lr`: each byte's row of the embedding (and head) moves at a rate set by its rarity.

A byte model's 256 rows see very different amounts of signal: in English text the space
and `e` sit in most windows while `Q` or `{` appear a handful of times, so a rare byte's
row gets few and noisy updates. This recipe multiplies the *update* of row b by

    f_b  = occurrences of byte b in the training data's bytes
    m_b  = clamp((f_mean / f_b) ** alpha, min_scale, max_scale)     for bytes with f_b > 0
    m_b  = 1                                                         for bytes with f_b = 0

where f_mean is the mean of f over the bytes that occur. The bytes counted are those the
batcher holds: every rendered byte of every Q&A record (question, marker and answer,
`QABatcher.samples`), or the whole concatenated text (`TextBatcher.stream`).

The multiplier goes into `state.update_scale["embed.weight"]` as a (256, 1) column, so the
loop applies p = p_before + m_b * (p_after - p_before) row by row after each AdamW step:
the row's step at learning rate m_b * lr. It scales the update, not the gradient: AdamW
divides each gradient by its own running RMS, so a constant gradient factor per row would
change almost nothing. The embedding is tied to the output head in every preset, so one
parameter carries both; an untied model's `head.weight` rows get the same multipliers.

m depends only on the data, so it is recomputed on a resume and nothing is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ghost.data.batches import QABatcher, TextBatcher
from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe, TrainState
from ghost.train.recipes import number_option

BYTES = 256
# The (256, D) parameters whose rows are bytes: the input embedding, and the output head
# when it is not tied to it (a tied head is the same parameter and is listed once).
BYTE_ROW_PARAMETERS = ("embed.weight", "head.weight")
BASES = ("frequency",)


def training_bytes(batcher) -> torch.Tensor:
    """Every byte the batcher trains on, as one (N,) int64 tensor."""
    if isinstance(batcher, QABatcher):
        return torch.cat([ids for ids, _ in batcher.samples])
    if isinstance(batcher, TextBatcher):
        return batcher.stream
    raise GhostInputError(
        f"recipe 'byte-lr' needs Q&A or text data, got a {type(batcher).__name__}"
    )


def byte_update_scale(
    data: torch.Tensor, alpha: float, min_scale: float, max_scale: float
) -> torch.Tensor:
    """(N,) bytes -> (256,) multipliers m_b = clamp((f_mean / f_b) ** alpha), 1 where f_b = 0."""
    counts = torch.bincount(data, minlength=BYTES).double()  # (256,) f_b
    seen = counts > 0
    scale = torch.ones(BYTES, dtype=torch.float64)
    if seen.any():
        mean = counts[seen].mean()
        scale[seen] = ((mean / counts[seen]) ** alpha).clamp(min_scale, max_scale)
    return scale.float()


@dataclass
class ByteAwareLearningRate(Recipe):
    """Per-byte update multipliers for the embedding/head rows, rarer bytes faster."""

    name: ClassVar[str] = "byte-lr"

    alpha: float = 0.5
    """Exponent of the rarity ratio f_mean / f_b: 0 is plain training, 1 fully inverse."""
    min_scale: float = 0.25
    """Smallest multiplier (the most frequent bytes)."""
    max_scale: float = 4.0
    """Largest multiplier (the rarest bytes)."""
    basis: str = "frequency"
    """What rarity is measured by: 'frequency' (byte counts in the training data)."""

    def __post_init__(self):
        self.alpha = number_option("byte-lr", "alpha", self.alpha)
        self.min_scale = number_option("byte-lr", "min_scale", self.min_scale)
        self.max_scale = number_option("byte-lr", "max_scale", self.max_scale)
        if self.alpha < 0:
            raise GhostInputError(f"recipe 'byte-lr': alpha must be >= 0, got {self.alpha}")
        if not 0 < self.min_scale <= self.max_scale:
            raise GhostInputError(
                "recipe 'byte-lr': need 0 < min_scale <= max_scale, got "
                f"min_scale={self.min_scale}, max_scale={self.max_scale}"
            )
        if self.basis not in BASES:
            raise GhostInputError(
                f"recipe 'byte-lr': basis must be one of {', '.join(BASES)}, got {self.basis!r}"
            )

    def on_train_begin(self, state: TrainState) -> None:
        scale = byte_update_scale(
            training_bytes(state.batcher), self.alpha, self.min_scale, self.max_scale
        )
        params = dict(state.model.named_parameters())
        for name in BYTE_ROW_PARAMETERS:
            if name not in params:
                continue
            m = scale.view(BYTES, 1).to(params[name].device)  # (256, 1): one per byte row
            # Multiply into a multiplier another recipe may have set, so recipes compose.
            state.update_scale[name] = state.update_scale.get(name, 1.0) * m
