"""`grad-checkpoint`: recompute each block's activations in the backward pass.

    forward:   h_{i+1} = block_i(h_i), keeping only h_i per block (not its internals)
    backward:  run block_i forward again from h_i, then back through it

The same switch as `ghost train --grad-checkpoint`: it sets `model.gradient_checkpointing`,
which `GhostModel.forward` reads in training mode (with `torch.utils.checkpoint`, non-
reentrant). Losses and gradients are those of the plain pass; what changes is peak memory
(down) and step time (up). Steps that carry Mamba states or ask for a cache run their
blocks without checkpointing. Nothing to save: a resume sets the switch again.
"""

from __future__ import annotations

from typing import ClassVar

from ghost.train.hooks import Recipe, TrainState


class GradientCheckpointing(Recipe):
    """Trade time for memory: activations are recomputed in the backward pass."""

    name: ClassVar[str] = "grad-checkpoint"

    def on_train_begin(self, state: TrainState) -> None:
        state.model.gradient_checkpointing = True
