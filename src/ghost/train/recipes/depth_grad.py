"""`depth-grad`: each block's parameters move at a rate set by the block's depth.

For block i of L (0-based) the update multiplier interpolates geometrically from `first`
at the bottom block to `last` at the top one:

    t   = i / (L - 1)                       (t = 0 when L = 1)
    m_i = first ** (1 - t) * last ** t

The embedding/head, the final norm and the memory encoder keep m = 1. Every parameter of
`model.layers[i]` (named `layers.{i}.…`) gets `state.update_scale[name] = m_i`, so after
each AdamW step the loop sets p = p_before + m_i * (p_after - p_before): the block's step
at learning rate m_i * lr, its weight decay included.

Why the update and not the gradient: AdamW divides each gradient by its own running RMS,
so a depth-dependent gradient factor, the literal "depth-aware gradients", would cancel
out (exactly for a constant factor) and leave training almost unchanged. With Adam the
size of a step no longer depends on how much gradient reaches a layer, so any depth
preference has to be put into the step size, which is what this does.

m depends only on the model's depth and the options, so a resume rebuilds it; nothing is
saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe, TrainState
from ghost.train.recipes import number_option


def depth_multipliers(n_layers: int, first: float, last: float) -> list[float]:
    """[m_0 ... m_{L-1}]: geometric interpolation from `first` (block 0) to `last`."""
    if n_layers == 1:
        return [first]
    return [
        first ** (1 - i / (n_layers - 1)) * last ** (i / (n_layers - 1)) for i in range(n_layers)
    ]


@dataclass
class DepthAwareUpdates(Recipe):
    """Per-block update multipliers by depth, from `first` (bottom) to `last` (top)."""

    name: ClassVar[str] = "depth-grad"

    first: float = 2.0
    """Multiplier of the bottom block (layers.0)."""
    last: float = 1.0
    """Multiplier of the top block (layers.{L-1}); blocks between interpolate geometrically."""

    def __post_init__(self):
        for option in ("first", "last"):
            value = getattr(self, option)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                # A float, not an int: the loop's update multiplier takes floats or tensors.
                setattr(self, option, number_option("depth-grad", option, value))
            else:
                raise GhostInputError(
                    f"recipe 'depth-grad': {option} must be a positive number, got {value!r}"
                )

    def on_train_begin(self, state: TrainState) -> None:
        scale = depth_multipliers(len(state.model.layers), self.first, self.last)
        # The model's own parameter names, which the loop looks multipliers up by.
        for name, _ in state.model.named_parameters():
            if name.startswith("layers."):
                m = scale[int(name.split(".")[1])]
                # Multiply into a multiplier another recipe may have set, so recipes compose.
                state.update_scale[name] = state.update_scale.get(name, 1.0) * m
