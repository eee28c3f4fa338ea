"""Training recipes, by name (`--recipe NAME[,NAME...]`): each a `Recipe` in its own file."""

from __future__ import annotations

from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe

REGISTRY: dict[str, type[Recipe]] = {}


def build_recipes(names: list[str]) -> list[Recipe]:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        known = ", ".join(sorted(REGISTRY)) or "none yet"
        raise GhostInputError(f"unknown recipe {unknown[0]!r} (available: {known})")
    return [REGISTRY[n]() for n in names]
