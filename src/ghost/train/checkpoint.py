"""Checkpoints: what a run directory holds, written so that a crash never damages one.

    RUN_DIR/config.json            format version, model config, training config
    RUN_DIR/model.safetensors      the latest weights (what `ghost eval` loads)
    RUN_DIR/metrics.csv            one row per step
    RUN_DIR/checkpoints/step-N/    model.safetensors + trainer_state.pt, the last K kept

A checkpoint is written into a hidden temporary folder and renamed to step-N only when
complete (every file in it fsynced first), so `--resume` reads the newest complete step-N
whatever moment a crash or SIGKILL chose. trainer_state.pt holds only tensors and plain
values and is read with `torch.load(weights_only=True)`: a file carrying any other pickle
(which could run code when loaded) is refused.
"""

from __future__ import annotations

import csv
import io
import pickle
import random
import re
import shutil
from pathlib import Path

import torch

from ghost.errors import GhostInputError
from ghost.model.io import (
    CONFIG_NAME,
    MEMORY_NAME,
    MEMORY_VECTORS_NAME,
    WEIGHTS_NAME,
    atomic_write,
    save_model,
)

STATE_NAME = "trainer_state.pt"
CHECKPOINTS = "checkpoints"
METRICS_NAME = "metrics.csv"


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))


def save_checkpoint(run_dir: Path, model, trainer_state: dict, run_config: dict, keep: int) -> Path:
    """Write step-N (model + trainer state), refresh the run's top-level weights, prune."""
    step = int(trainer_state["step"])
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(run_dir)
    final = root / f"step-{step:07d}"
    tmp = root / f".step-{step:07d}.tmp"
    try:
        save_model(model, tmp, run_config)
        atomic_write(tmp / STATE_NAME, lambda f: torch.save(trainer_state, f))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the previous checkpoints are untouched
        raise
    # The run's top level: config.json + the latest weights (+ memory), each replaced atomically.
    save_model(model, run_dir, run_config)
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _remove_leftovers(run_dir: Path) -> None:
    """Temporary files of saves that a crash interrupted (one writer per run directory)."""
    for stale in (run_dir / CHECKPOINTS).glob(".step-*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME, MEMORY_NAME, MEMORY_VECTORS_NAME):
        for stale in run_dir.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = run_dir / CHECKPOINTS
    complete = (
        [
            p
            for p in sorted(root.glob("step-*"))
            if (p / STATE_NAME).is_file() and (p / WEIGHTS_NAME).is_file()
        ]
        if root.is_dir()
        else []
    )
    return complete[-1] if complete else None


def load_trainer_state(path: Path) -> dict:
    """Read trainer_state.pt safely: tensors and plain values only, never arbitrary pickles."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise GhostInputError(
            f"{path}: refused: it holds a Python object{what} that could run "
            "code when loaded; a trainer state holds only tensors and plain "
            "values"
        ) from None
    except Exception as e:  # noqa: BLE001 - any other failure: the file is damaged
        first = str(e).strip().split(". ")[0].splitlines()[0] if str(e).strip() else ""
        raise GhostInputError(
            f"{path}: corrupt or unreadable ({first or type(e).__name__})"
        ) from None
    if not isinstance(state, dict):
        raise GhostInputError(f"{path}: not a trainer state (a {type(state).__name__})")
    return state


def trim_metrics(run_dir: Path, step: int) -> None:
    """Drop metrics.csv rows after `step` (a killed run logged them; a resume redoes them)."""
    path = run_dir / METRICS_NAME
    if not path.is_file():
        return
    lines = io.BytesIO(path.read_bytes()).readlines()  # bytes: keep csv's \r\n endings
    kept = lines[:1]
    for line in lines[1:]:
        row = next(csv.reader(io.StringIO(line.decode("utf-8", errors="replace"))), [])
        # A line cut short by the kill has no newline: it and everything after it go.
        if not line.endswith(b"\n") or not row or not row[0].isdigit() or int(row[0]) > step:
            break
        kept.append(line)
    if len(kept) != len(lines):
        atomic_write(path, lambda f: f.write(b"".join(kept)))
