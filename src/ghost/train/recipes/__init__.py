"""Training recipes, by name: each a `Recipe` in its own file, imported when it is used.

    ghost train --recipe curriculum,skip:threshold=0.8:warmup=50
    [recipes.skip]            # in a TOML config: one table per recipe, keys are its options
    threshold = 0.8

The registry is a table of names, so `ghost --help` lists recipes without importing torch.
A recipe's options are the fields of its dataclass; an unknown name or option, or a value of
the wrong type, is a `GhostInputError` naming it.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from ghost.errors import GhostInputError

# name -> (module under ghost.train.recipes, class, one line for --help)
REGISTRY: dict[str, tuple[str, str, str]] = {
    "curriculum": (
        "curriculum",
        "SequenceLengthCurriculum",
        "sequence length grows from 16 bytes to the full length",
    ),
    "skip": ("skip", "ConfidenceSkipper", "after a warm-up, skip samples the model already knows"),
    "byte-lr": ("byte_lr", "ByteAwareLearningRate", "per-byte update multiplier for byte rows"),
    "state-momentum": (
        "state_momentum",
        "MambaStateMomentum",
        "text streams: carry each row's SSM state into its next window, extrapolated",
    ),
    "depth-grad": ("depth_grad", "DepthAwareUpdates", "per-layer update multiplier by depth"),
    "grad-checkpoint": (
        "grad_checkpoint",
        "GradientCheckpointing",
        "recompute activations in the backward pass: less memory, more time",
    ),
    "fim": ("fim", "FillInTheMiddle", "text data: train fill-in-the-middle rearrangements"),
    "chain-practice": (
        "chain_practice",
        "ChainPractice",
        "--reasoning chain: add fresh fictional multi-hop rows, scored on their hop questions",
    ),
    "ewc": (
        "ewc",
        "ElasticWeightConsolidation",
        "hold weights earlier tasks need: (lambda/2) sum F (theta - theta*)^2 per Fisher file",
    ),
    "online-ewc": (
        "ewc",
        "OnlineElasticWeightConsolidation",
        "EWC with one running Fisher decayed by gamma, anchored at the latest task",
    ),
}


def number_option(recipe: str, name: str, value) -> float:
    """An option that must be a number (an int is taken as a float; a bool is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GhostInputError(f"recipe {recipe!r}: {name} must be a number, got {value!r}")
    return float(value)


def whole_option(recipe: str, name: str, value, least: int | None = None) -> int:
    """An option that must be a whole number, at least `least` when given."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (least is not None and value < least)
    ):
        bound = f" >= {least}" if least is not None else ""
        raise GhostInputError(
            f"recipe {recipe!r}: {name} must be a whole number{bound}, got {value!r}"
        )
    return value


def recipe_class(name: str) -> type:
    if name not in REGISTRY:
        raise GhostInputError(f"unknown recipe {name!r} (available: {', '.join(REGISTRY)})")
    module, cls, _ = REGISTRY[name]
    return getattr(importlib.import_module(f"ghost.train.recipes.{module}"), cls)


def build_recipes(recipes: dict[str, dict[str, Any]]) -> list:
    """{name: options} (in order) -> Recipe objects."""
    built = []
    for name, options in recipes.items():
        cls = recipe_class(name)
        known = (
            {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        )
        unknown = sorted(set(options) - known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise GhostInputError(
                f"recipe {name!r} has no option {unknown[0]!r} (its options: {allowed})"
            )
        try:
            built.append(cls(**options))
        except (TypeError, ValueError) as e:
            if isinstance(e, GhostInputError):
                raise
            raise GhostInputError(f"recipe {name!r}: {e}") from None
    return built
