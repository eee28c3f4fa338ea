"""Benchmark arms: a named recipe list with options, plus training settings that differ.

--arms baseline,curriculum,skip,curriculum+skip:threshold=0.8
    baseline            no recipes
    curriculum+skip     recipes joined by '+', each with NAME:key=value options
[arms.fast]             in a TOML file (--arms-file): the same schema as `ghost train`'s
recipes.curriculum = {}                   [recipes.NAME] tables, plus any training setting
recipes.skip = { threshold = 0.8 }        that this arm changes (precision, seq_len, ...)
grad_checkpoint = true
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghost.config import TrainConfig, parse_recipes
from ghost.errors import GhostInputError

BASELINE = "baseline"
# What an arm may not change: they are the benchmark's own, the same for every arm.
FIXED = {"data", "out", "steps", "seed", "resume", "quiet", "val_data", "val_fraction"}


@dataclass
class Arm:
    name: str
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields it overrides

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_arm(spec: str) -> Arm:
    """'baseline' or 'a+b:key=value' -> Arm (named by its spec)."""
    spec = spec.strip()
    if not spec:
        raise GhostInputError("--arms: empty arm name")
    if spec == BASELINE:
        return Arm(BASELINE)
    return Arm(spec, parse_recipes(spec.replace("+", ",")))


def parse_arms(spec: str | None = None, file: str | Path | None = None) -> list[Arm]:
    """Arms from `--arms` (comma-separated) and/or an arms file; names must be unique."""
    arms = [parse_arm(s) for s in spec.split(",")] if spec else []
    if file is not None:
        arms += read_arms_file(file)
    names = [a.name for a in arms]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise GhostInputError(f"--arms: arm {repeated[0]!r} is given twice")
    if not arms:
        raise GhostInputError("--arms: no arms given (e.g. --arms baseline,curriculum)")
    return arms


def read_arms_file(path: str | Path) -> list[Arm]:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise GhostInputError(f"{path}: cannot read arms ({str(e).splitlines()[0]})") from None
    tables = raw.get("arms")
    if not isinstance(tables, dict) or not tables:
        raise GhostInputError(f"{path}: expected [arms.NAME] tables")
    known = {f.name for f in dataclasses.fields(TrainConfig)} - FIXED - {"recipes"}
    arms = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise GhostInputError(f"{path}: arms.{name} must be a table")
        settings = {k: v for k, v in table.items() if k != "recipes"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise GhostInputError(
                f"{path}: arms.{name}: {unknown[0]!r} is not a setting an arm may change"
            )
        arms.append(Arm(name, parse_recipes(table.get("recipes", {})), settings))
    return arms
