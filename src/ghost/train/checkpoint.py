"""Checkpoints: what a run directory holds, written so that a crash never damages one.

    RUN_DIR/config.json            format version, model config, training config
    RUN_DIR/model.safetensors      the latest weights (what `ghost eval` loads)
    RUN_DIR/checkpoints/step-N/    model.safetensors + trainer_state.pt, the last K kept

A checkpoint is written into a hidden temporary folder and renamed to step-N only when
complete, so `--resume` reads the newest complete step-N. trainer_state.pt holds only
tensors and plain values and is read with `torch.load(weights_only=True)`: a file carrying
any other pickle is refused.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import torch

from ghost.errors import GhostInputError
from ghost.model.io import WEIGHTS_NAME, atomic_write, save_model

STATE_NAME = "trainer_state.pt"
CHECKPOINTS = "checkpoints"


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))


def save_checkpoint(run_dir: Path, model, trainer_state: dict, run_config: dict, keep: int) -> Path:
    """Write step-N (model + trainer state), refresh the run's top-level weights, prune old ones."""
    step = int(trainer_state["step"])
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp, run_config)
    atomic_write(tmp / STATE_NAME, lambda f: torch.save(trainer_state, f))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    # The run's top level: config.json + the latest weights (+ memory), each replaced atomically.
    save_model(model, run_dir, run_config)
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = run_dir / CHECKPOINTS
    complete = [p for p in sorted(root.glob("step-*")) if (p / STATE_NAME).is_file()
                and (p / WEIGHTS_NAME).is_file()] if root.is_dir() else []
    return complete[-1] if complete else None


def load_trainer_state(path: Path) -> dict:
    """Read trainer_state.pt safely: tensors and plain values only, never arbitrary pickles."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means the file cannot be trusted
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GhostInputError(f"{path}: refused (corrupt, or not plain tensors/values: {first})") from None


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GhostInputError(f"{path}: unreadable ({e})") from None
