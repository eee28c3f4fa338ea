"""Saving and loading models: config.json + model.safetensors (+ the memory bank).

The bank is two files: memory.jsonl ({"id", "text"} per entry: what a user reads and can
edit) and memory.safetensors (the entries' retrieval keys, with the ids they belong to
and a fingerprint of the encoder weights that made them, so loading does not re-encode; keys
that do not match are made again from the text). An empty bank has neither file.

Nothing here unpickles: weights and encodings are safetensors, configuration and memory
text are JSON. Every
file is written to a temporary name, flushed and renamed, so a crash mid-save leaves the
previous file whole. Anything wrong with a file a user hands us is a `GhostInputError`
naming the file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ghost.config import CONFIG_FORMAT_VERSION, READABLE_FORMAT_VERSIONS, GhostConfig
from ghost.errors import GhostInputError

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
MEMORY_NAME, MEMORY_VECTORS_NAME = "memory.jsonl", "memory.safetensors"
MEMORY_FORMAT = "ghost-memory-1"
# Memory parameters newer than config format 3 (the copy head's lexical score, value start,
# end of a value mid-sentence and its end features; the memory layers' relevance gate), as
# name patterns, and the value a run saved before them loads them with, which leaves its
# answers as they were (no lexical or value-start term, never ending at a space, every row
# read fully).
LATER_PARAMETERS = {
    "copy.lexical_scale": 0.0,
    "copy.gate_lexical": 0.0,
    "copy.value_weight": 0.0,
    "copy.value_bias": 0.0,
    "copy.stop_weight": 0.0,
    "copy.stop_bias": -30.0,
    "copy.end_scale": [0.0, 0.0],  # (never ending at a space, as above)
    "copy.stop_ahead": 0.0,
    "copy.asked_scale": 0.0,
    "*.extra.relevance": [0.0, 0.0, 30.0],  # every memory layer's: reads fully, as before
    "context_copy.ahead": 0.0,  # (the context copy head's first form had no look-ahead)
}


def later_parameters(names) -> dict[str, Any]:
    """Which of the parameter `names` are newer than format 3 (`LATER_PARAMETERS`), each with
    the value that leaves an older run's answers as they were."""
    return {
        name: value
        for pattern, value in LATER_PARAMETERS.items()
        for name in fnmatch.filter(names, pattern)
    }


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
    """Write config.json, model.safetensors and the memory bank (`save_memory`)."""
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
    _save_tensors(state, directory / WEIGHTS_NAME, {"format": "pt"})
    save_memory(model, directory)


def _save_tensors(tensors: dict, path: Path, metadata: dict[str, str]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _entries_digest(ids: list[int], texts: list[str]) -> str:
    text = json.dumps(list(zip(ids, texts, strict=True)), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def save_memory(model, directory: Path) -> None:
    """Write the bank (memory.safetensors, then memory.jsonl). An empty bank removes both
    files only when entries were removed or cleared (so a cleared bank stays cleared); a
    bank that is merely empty (a fresh model, one loaded with memory=False, a checkpoint's)
    leaves the directory's bank as it is."""
    directory = Path(directory)
    memory = model.memory
    if not len(memory):
        if memory.emptied:
            for name in (MEMORY_NAME, MEMORY_VECTORS_NAME):
                (directory / name).unlink(missing_ok=True)
        return
    if not memory.keys_are_current():  # keys made by weights that have trained since
        memory.refresh()
    metadata = {
        "format": MEMORY_FORMAT,
        "encoder": memory.fingerprint(),
        "entries": _entries_digest(memory.ids, memory.texts),
        "next_id": str(memory.next_id),
    }
    tensors = {
        "keys": memory.keys().detach().float().contiguous(),
        "ids": torch.tensor(memory.ids, dtype=torch.int64),
    }
    _save_tensors(tensors, directory / MEMORY_VECTORS_NAME, metadata)
    lines = "".join(
        json.dumps({"id": e.id, "text": e.text}, ensure_ascii=False) + "\n"
        for e in memory.entries()
    )
    atomic_write_text(directory / MEMORY_NAME, lines)


def read_memory_text(path: Path) -> tuple[list[int], list[str]]:
    """memory.jsonl -> (ids, texts); entries without an id (older runs) are numbered."""
    fix = "(`ghost memory clear RUN_DIR` empties the bank)"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise GhostInputError(f"{path}: unreadable memory file ({e}) {fix}") from None
    ids, texts = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise GhostInputError(f"{path} line {number}: not valid JSON ({e.msg}) {fix}") from None
        text = record.get("text") if isinstance(record, dict) else None
        entry_id = record.get("id", len(ids) + 1) if isinstance(record, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise GhostInputError(f"{path} line {number}: no 'text' string {fix}")
        if not isinstance(entry_id, int) or isinstance(entry_id, bool) or entry_id < 1:
            raise GhostInputError(f"{path} line {number}: 'id' must be a positive integer {fix}")
        if entry_id in ids:
            raise GhostInputError(f"{path} line {number}: id {entry_id} appears twice {fix}")
        ids.append(entry_id)
        texts.append(text.strip())
    return ids, texts


def load_memory(model, directory: Path) -> None:
    """Fill `model.memory` from a run directory: the saved keys when they were made by these
    encoder weights for these entries, else the texts encoded again."""
    directory = Path(directory)
    path, vectors_path = directory / MEMORY_NAME, directory / MEMORY_VECTORS_NAME
    if not path.is_file():
        model.memory.restore([], [], None)
        return
    ids, texts = read_memory_text(path)
    vectors, next_id = None, None
    if vectors_path.is_file():
        fix = f"delete it to re-encode memory.jsonl, or `ghost memory clear {directory}`"
        try:
            with safe_open(str(vectors_path), framework="pt") as f:
                metadata = f.metadata() or {}
                if metadata.get("format") != MEMORY_FORMAT:
                    raise GhostInputError(
                        f"{vectors_path}: not a Ghost memory file (format "
                        f"{metadata.get('format')!r}); {fix}"
                    )
                same = metadata.get("encoder") == model.memory.fingerprint() and metadata.get(
                    "entries"
                ) == _entries_digest(
                    ids, texts
                )  # else: other weights made them, or memory.jsonl was edited by hand
                if same:
                    vectors = f.get_tensor("keys").float()
                next_id = int(metadata.get("next_id", "1"))
        except GhostInputError:
            raise
        except (SafetensorError, OSError, ValueError, RuntimeError, KeyError) as e:
            raise GhostInputError(
                f"{vectors_path}: corrupt memory encodings ({e}); {fix}"
            ) from None
        expected = (len(ids), model.config.memory_key_dim)
        if vectors is not None and tuple(vectors.shape) != expected:
            raise GhostInputError(
                f"{vectors_path}: keys of shape {tuple(vectors.shape)}, expected {expected}; {fix}"
            )
    model.memory.restore(ids, texts, vectors, next_id=max(next_id or 1, max(ids, default=0) + 1))


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


def load_model(directory: Path, memory: bool = True):
    """Build the model of a run directory and load its weights and (unless `memory` is
    False: the bank files are then not read at all) its memory bank."""
    from ghost.model.ghost import GhostModel

    directory = Path(directory)
    config = read_run_config(directory)
    older = config["format_version"] < 3  # memory read through pooled slots, never trained
    model_config = dict(config["model"])
    if older:
        model_config.pop("memory_slots", None)
        model_config["memory_top_k"] = GhostConfig.memory_top_k
    try:
        model = GhostModel(GhostConfig.from_dict(model_config))
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
    if older:  # keep the fresh memory parts; the copy gate stays shut: they never learned
        state = {k: v for k, v in state.items() if not k.startswith("memory.")}
        for name, tensor in expected.items():
            if name.startswith(("memory.", "copy.")):
                state[name] = tensor
        state["copy.gate.bias"] = torch.full_like(expected["copy.gate.bias"], -30.0)
    for name, value in later_parameters(expected).items():  # newer memory parts: no effect
        if name not in state:
            state[name] = (
                torch.tensor(value, dtype=expected[name].dtype).expand_as(expected[name]).clone()
            )
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
    if memory:
        load_memory(model, directory)
    model.eval()
    return model
