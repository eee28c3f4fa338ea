"""Ghost's four built-in datasets, by name: `bash100`, `math1k`, `facts200`, `code50`.

A spec is `NAME` (its `train` split) or `NAME:SPLIT`. `load_builtin(spec)` returns the
records as plain dicts, exactly as the JSONL holds them (DESIGN.md section 3):

    Q&A   {"question", "answer", "kind"?, "chain"?, "facts"?, ...}
    text  {"text", ...}

Each split holds one record type, given by `DatasetInfo.record_type(split)`. Splits named in
`DatasetInfo.held_out` are never trained on and share no question with any training split
(tests check it); the others are `train` or views of it (a subset, or its text as sentences).

    bash100   train (100) | held out: paraphrase (72)
    math1k    train (1000), text (train as 20 text records) | held out: test (200), test_text
    facts200  train (200 facts + 73 multi-hop), test_10q, test_hard, facts, seed10
              | held out: paraphrase (200), novel (84)
    code50    train (first 40 names) | held out: test (last 10 names)

Where each comes from, its licence and how its held-out part was made is in the card,
`datasets/<name>/README.md`. bash100 and facts200 are JSONL files; math1k's JSONL is the
output of `ghost.data.math1k`, and its text splits are made from it here; code50 ships only a
list of names and reads the source from this machine's standard library (below).
"""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from ghost.data import math1k
from ghost.errors import GhostInputError


@dataclass(frozen=True)
class DatasetInfo:
    """What a built-in dataset is for and which splits it has."""

    name: str
    purpose: str
    splits: tuple[str, ...]
    default_split: str = "train"
    text_splits: tuple[str, ...] = ()  # splits of {"text": ...} records; the rest are Q&A
    held_out: tuple[str, ...] = ()  # splits never trained on

    def record_type(self, split: str) -> str:
        """'text' or 'qa': the schema of every record in `split`."""
        return "text" if split in self.text_splits else "qa"


_DATASETS = {
    info.name: info
    for info in (
        DatasetInfo(
            name="bash100",
            purpose="reasoning, memory: shell commands from plain-English descriptions",
            splits=("train", "paraphrase"),
            held_out=("paraphrase",),
        ),
        DatasetInfo(
            name="math1k",
            purpose="accuracy, speed, compression: seeded integer arithmetic equations",
            splits=("train", "test", "text", "test_text"),
            text_splits=("text", "test_text"),
            held_out=("test", "test_text"),
        ),
        DatasetInfo(
            name="facts200",
            purpose="memory, retrieval, multi-hop: linked single-hop facts and their chains",
            splits=("train", "test_10q", "test_hard", "paraphrase", "novel", "facts", "seed10"),
            text_splits=("facts",),
            held_out=("paraphrase", "novel"),
        ),
        DatasetInfo(
            name="code50",
            purpose="compression, generation: standard-library Python functions (PSF licence)",
            splits=("train", "test"),
            text_splits=("train", "test"),
            held_out=("test",),
        ),
    )
}


def list_datasets() -> list[DatasetInfo]:
    """The built-in datasets, in a fixed order."""
    return list(_DATASETS.values())


def is_builtin(spec: str) -> bool:
    """Whether `spec` ("NAME" or "NAME:SPLIT") names a built-in dataset.

    Only the name is checked: an unknown split is for `load_builtin` to report, with the
    list of valid ones.
    """
    return spec.partition(":")[0] in _DATASETS


def _resolve(spec: str) -> tuple[DatasetInfo, str]:
    name, _, split = spec.partition(":")
    info = _DATASETS.get(name)
    if info is None:
        raise GhostInputError(
            f"unknown built-in dataset {name!r}; valid names: {', '.join(_DATASETS)}"
        )
    split = split or info.default_split
    if split not in info.splits:
        raise GhostInputError(
            f"{name} has no split {split!r}; valid splits: {', '.join(info.splits)}"
        )
    return info, split


def load_builtin(spec: str) -> list[dict]:
    """The records of "NAME" (its train split) or "NAME:SPLIT", as fresh plain dicts."""
    info, split = _resolve(spec)
    if info.name == "math1k":
        if split in ("text", "test_text"):
            return math1k.as_text(_read_jsonl("math1k", "train" if split == "text" else "test"))
        return _read_jsonl("math1k", split)
    if info.name == "code50":
        return _load_code50(split)
    return _read_jsonl(info.name, split)


def describe(name: str) -> dict:
    """Name, purpose and record count per split (for `ghost data list`)."""
    info, _ = _resolve(name)
    return {
        "name": info.name,
        "purpose": info.purpose,
        "default_split": info.default_split,
        "held_out": list(info.held_out),
        "splits": {split: len(load_builtin(f"{info.name}:{split}")) for split in info.splits},
    }


def _dataset_file(name: str, filename: str):
    return importlib.resources.files("ghost.data") / "datasets" / name / filename


def _read_jsonl(name: str, split: str) -> list[dict]:
    where = f"ghost/data/datasets/{name}/{split}.jsonl"
    text = _dataset_file(name, f"{split}.jsonl").read_text(encoding="utf-8")
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise GhostInputError(f"{where}:{number}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise GhostInputError(f"{where}:{number}: expected a JSON object")
        records.append(record)
    return records


# Code-50 --------------------------------------------------------------------------------
#
# Ghost ships only the list of names (`datasets/code50/names.txt`, one `module.function` per
# line, in a fixed order); the source text is the Python Software Foundation's and is not
# redistributed. On first use each function's source is read with `inspect.getsource` and
# written to a per-user cache, one file per Python version because the standard library's
# text differs between versions:
#
#     ${XDG_CACHE_HOME:-~/.cache}/ghost/datasets/code50-py<major>.<minor>.jsonl
#
# Records are `{"text": <source>, "name": "module.function"}`. The split is fixed by position
# in the list: the first 40 names are `train`, the last 10 `test`. A name this Python lacks,
# whose source cannot be read (a C function, a frozen module), or whose text holds an ASCII
# control byte other than a newline is skipped with a warning, so a split can be smaller on
# some version. The cache rows record skipped names too, so a cache is valid exactly when
# its names are the current list, in order; anything else (an edited list, a truncated file)
# is extracted again. It is written atomically: two processes extracting at once both leave
# a complete file.

CODE50_TRAIN_COUNT = 40

_warned_skips: set[str] = set()


def code50_names() -> list[str]:
    """The fixed list of `module.function` names, in order (comments and blanks dropped)."""
    text = _dataset_file("code50", "names.txt").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def code50_cache_path() -> Path:
    """Where this Python version's extracted sources are cached."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Path(root) / "ghost" / "datasets" / f"code50-py{version}.jsonl"


def extract_source(name: str) -> tuple[str | None, str]:
    """(source, "") of one standard-library `module.function`, or (None, why it is skipped)."""
    module_name, _, attribute = name.rpartition(".")
    try:
        source = inspect.getsource(getattr(importlib.import_module(module_name), attribute))
    except (ImportError, AttributeError) as error:
        return None, f"not in this Python's standard library ({error})"
    except (OSError, TypeError) as error:
        return None, f"its source cannot be read ({error})"
    if any(ord(ch) < 32 and ch != "\n" for ch in source):
        return None, "its source contains an ASCII control byte"
    return source, ""


def _write_atomic(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _read_cache(path: Path, expected: list[str]) -> list[dict] | None:
    """The cached rows if they cover exactly `expected`, in order; otherwise None."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
        rows = [json.loads(line) for line in lines if line]
    except (OSError, ValueError):
        return None
    if not all(isinstance(row, dict) for row in rows):
        return None
    if [row.get("name") for row in rows] != expected:
        return None
    if not all(isinstance(row.get("text", row.get("skipped")), str) for row in rows):
        return None
    return rows


def _code50_rows() -> list[dict]:
    """One row per listed name: {"name", "text"} or {"name", "skipped": why}."""
    listed = code50_names()
    path = code50_cache_path()
    rows = _read_cache(path, listed)
    if rows is None:
        rows = []
        for name in listed:
            source, why = extract_source(name)
            rows.append(
                {"name": name, "text": source} if source else {"name": name, "skipped": why}
            )
        try:
            _write_atomic(path, rows)
        except OSError as error:
            # A read-only home still gets the data, only without a cache.
            warnings.warn(f"code50: could not write the cache {path}: {error}", stacklevel=4)
    for row in rows:
        if "skipped" in row and row["name"] not in _warned_skips:
            _warned_skips.add(row["name"])
            warnings.warn(f"code50: skipped {row['name']}: {row['skipped']}", stacklevel=4)
    return rows


def _load_code50(split: str) -> list[dict]:
    rows = _code50_rows()
    chosen = rows[:CODE50_TRAIN_COUNT] if split == "train" else rows[CODE50_TRAIN_COUNT:]
    return [{"text": row["text"], "name": row["name"]} for row in chosen if "text" in row]
