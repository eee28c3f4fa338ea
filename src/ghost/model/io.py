"""Saving and loading models: config.json + model.safetensors (+ memory.jsonl).

Nothing here unpickles: weights are safetensors, configuration and memory are JSON. Every
file is written to a temporary name, flushed and renamed, so a crash mid-save leaves the
previous file whole. Anything wrong with a file a user hands us is a `GhostInputError`
naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ghost.config import CONFIG_FORMAT_VERSION, READABLE_FORMAT_VERSIONS, GhostConfig
from ghost.errors import GhostInputError

CONFIG_NAME, WEIGHTS_NAME, MEMORY_NAME = "config.json", "model.safetensors", "memory.jsonl"


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside `path`, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save_model(model, directory: Path, extra_config: dict[str, Any] | None = None) -> None:
    """Write config.json, model.safetensors and (if the bank is not empty) memory.jsonl."""
    directory = Path(directory)
    config = {
        "format_version": CONFIG_FORMAT_VERSION,
        "model": model.config.to_dict(),
        **(extra_config or {}),
    }
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("head.weight", None)  # the same tensor as embed.weight
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{WEIGHTS_NAME}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"format": "pt"})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, directory / WEIGHTS_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    memory_path = directory / MEMORY_NAME
    if len(model.memory):
        lines = "".join(
            json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in model.memory.texts
        )
        atomic_write_text(memory_path, lines)


def read_run_config(directory: Path) -> dict[str, Any]:
    """The run's config.json as a dict, checked for format version and a model section."""
    directory = Path(directory)
    try:
        found = directory.is_dir()
    except OSError as e:  # a name the OS refuses (too long, ...)
        raise GhostInputError(f"{directory}: unusable path ({e.strerror})") from None
    if not found:
        if directory.exists():
            raise GhostInputError(f"{directory}: is a file, expected a run directory")
        raise GhostInputError(f"{directory}: run directory not found")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise GhostInputError(f"{path}: missing (not a Ghost run directory?)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GhostInputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise GhostInputError(f"{path}: no 'model' section")
    version = config.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        readable = ", ".join(map(str, READABLE_FORMAT_VERSIONS))
        raise GhostInputError(
            f"{path}: format_version {version!r} is not supported (this Ghost reads {readable})"
        )
    return config


def load_model(directory: Path):
    """Build the model of a run directory and load its weights and memory."""
    from ghost.model.ghost import GhostModel

    directory = Path(directory)
    config = read_run_config(directory)
    try:
        model = GhostModel(GhostConfig.from_dict(config["model"]))
    except (TypeError, ValueError) as e:
        raise GhostInputError(f"{directory / CONFIG_NAME}: bad model config: {e}") from None
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise GhostInputError(f"{weights}: missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise GhostInputError(f"{weights}: corrupt or unreadable safetensors file ({e})") from None
    if model.config.tie_embeddings:
        state.setdefault("head.weight", state.get("embed.weight"))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise GhostInputError(
            f"{weights}: does not match config.json "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise GhostInputError(
                f"{weights}: {name} has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(expected[name].shape)}"
            )
    with torch.no_grad():
        model.load_state_dict(state)
    memory_path = directory / MEMORY_NAME
    if memory_path.is_file():
        from ghost.data.records import read_records

        model.memory.write([r["text"] for r in read_records(memory_path, kind="text")])
    model.eval()
    return model
