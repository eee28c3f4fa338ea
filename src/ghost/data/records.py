"""Reading records: Q&A and text, from JSONL files, .txt files or built-in dataset names.

Schemas (DESIGN.md section 3):
    Q&A   {"question": str, "answer": str,
           "kind"?: str, "chain"?: [str], "facts"?: [str], "split"?: str}
    text  {"text": str}
A .txt file is text data: one record per blank-line-separated block.

Every problem names the file and line, as a `GhostInputError`; nothing is written here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ghost.errors import GhostInputError

MAX_LINE_BYTES = 16 * 1024 * 1024  # a single record larger than this is refused, not parsed


@dataclass
class Source:
    """Records [start, stop) of a mixed dataset came from `name`; `weight` is its share."""

    name: str
    start: int
    stop: int
    weight: float | None = None


@dataclass
class Dataset:
    """Records of one kind ('qa' or 'text') and where they came from."""

    name: str
    kind: str
    records: list[dict]
    sources: list[Source] | None = None  # set when several datasets were mixed

    def __len__(self) -> int:
        return len(self.records)


def _check_record(record, where: str) -> str:
    """Validate one JSON value; return its kind."""
    if not isinstance(record, dict):
        raise GhostInputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "question" in record or "answer" in record:
        for name in ("question", "answer"):
            if name not in record:
                raise GhostInputError(f"{where}: field '{name}' is missing")
            if not isinstance(record[name], str):
                raise GhostInputError(
                    f"{where}: field '{name}' must be a string, got {type(record[name]).__name__}"
                )
        if not record["question"].strip():
            raise GhostInputError(f"{where}: empty question")
        for name in ("chain", "facts"):
            value = record.get(name)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise GhostInputError(f"{where}: field '{name}' must be a list of strings")
        for name in ("kind", "split"):
            if record.get(name) is not None and not isinstance(record[name], str):
                raise GhostInputError(f"{where}: field '{name}' must be a string")
        return "qa"
    if "text" in record:
        if not isinstance(record["text"], str):
            raise GhostInputError(f"{where}: field 'text' must be a string")
        return "text"
    raise GhostInputError(f"{where}: record has neither 'question'/'answer' nor 'text'")


def _read_jsonl(path: Path) -> list[dict]:
    records = []
    with open(path, "rb") as f:
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), start=1):
            where = f"{path}:{number}"
            if len(raw) > MAX_LINE_BYTES:
                raise GhostInputError(f"{where}: line longer than {MAX_LINE_BYTES} bytes")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise GhostInputError(f"{where}: not valid UTF-8 (byte {e.start})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise GhostInputError(
                    f"{where}: malformed JSON ({e.msg} at column {e.colno})"
                ) from None
            _check_record(record, where)
            records.append(record)
    return records


def _utf8_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise GhostInputError(f"{path}: not valid UTF-8 (byte {e.start})") from None


def _read_txt(path: Path) -> list[dict]:
    text = _utf8_text(path)
    blocks = [b.strip("\n") for b in text.replace("\r\n", "\n").split("\n\n")]
    return [{"text": b} for b in blocks if b.strip()]


def _exists(path: Path) -> bool:
    """Path.exists, except that a name the OS refuses (too long, ...) is the user's error."""
    try:
        return path.exists()
    except OSError as e:
        raise GhostInputError(f"{path}: unusable path ({e.strerror})") from None


def read_records(path: str | Path, kind: str | None = None) -> list[dict]:
    """Records of a .jsonl or .txt file, validated; `kind` ('qa'/'text') demands one kind."""
    path = Path(path)
    if not _exists(path):
        raise GhostInputError(f"{path}: file not found")
    if path.is_dir():
        raise GhostInputError(f"{path}: is a directory, expected a .jsonl or .txt file")
    if path.suffix not in (".txt", ".jsonl", ".json"):
        raise GhostInputError(f"{path}: unknown data format (expected .jsonl or .txt)")
    try:
        records = _read_txt(path) if path.suffix == ".txt" else _read_jsonl(path)
    except OSError as e:  # unreadable: permissions, a device error, a FIFO gone away
        raise GhostInputError(f"{path}: cannot read ({e.strerror or e})") from None
    if not records:
        raise GhostInputError(f"{path}: no records (the file is empty)")
    kinds = {_check_record(r, str(path)) for r in records}
    if len(kinds) > 1:
        raise GhostInputError(f"{path}: mixes Q&A and text records; use one kind per file")
    if kind is not None and kinds != {kind}:
        raise GhostInputError(f"{path}: expected {kind} records, found {kinds.pop()} records")
    return records


def _builtin():
    from ghost.data import builtin  # the built-in datasets import this module

    return builtin


def load_data(spec: str, kind: str | None = None) -> Dataset:
    """A built-in NAME[:SPLIT] or a path to a .jsonl/.txt file, as a Dataset."""
    if not spec:
        raise GhostInputError(
            "no data given (use a built-in name such as facts200, or a file path)"
        )
    path = Path(spec)
    if path.suffix in (".jsonl", ".json", ".txt") or _exists(path):
        records = read_records(path, kind)
        name = str(path)
    elif _builtin().is_builtin(spec):
        builtin = _builtin()
        records = builtin.load_builtin(spec)
        name = spec if ":" in spec else f"{spec}:train"
        if not records:
            raise GhostInputError(f"{name}: no records")
        for i, r in enumerate(records, start=1):
            _check_record(r, f"{name} record {i}")
    else:
        names = ", ".join(d.name for d in _builtin().list_datasets())
        raise GhostInputError(f"{spec}: no such file or built-in dataset (built-in: {names})")
    kinds = {_check_record(r, name) for r in records}
    found = kinds.pop()
    if kinds:
        raise GhostInputError(f"{name}: mixes Q&A and text records")
    if kind is not None and found != kind:
        raise GhostInputError(f"{name}: expected {kind} records, found {found} records")
    return Dataset(name=name, kind=found, records=records)


def read_facts(item: str, must_be_data: bool = False) -> list[str]:
    """Memory entries from one command-line item: a .txt file (one entry per non-empty line),
    a .jsonl file or built-in NAME:SPLIT of {"text"} records or of Q&A records with `facts`
    lists (their facts, each once), or else (unless `must_be_data`) the item itself as one
    entry's text. An existing file of another kind is an error, never a fact."""
    path = Path(item)
    is_builtin = " " not in item and ":" in item and _builtin().is_builtin(item)
    if _exists(path) and path.is_file() and path.suffix not in (".txt", ".jsonl", ".json"):
        raise GhostInputError(f"{path}: unknown memory file format (expected .txt or .jsonl)")
    if path.suffix == ".txt" and _exists(path) and path.is_file():
        try:
            text = _utf8_text(path)
        except OSError as e:
            raise GhostInputError(f"{path}: cannot read ({e.strerror or e})") from None
        facts = [line.strip() for line in text.splitlines() if line.strip()]
        if not facts:
            raise GhostInputError(f"{path}: no entries (the file is empty)")
        return facts
    if path.suffix not in (".jsonl", ".json", ".txt") and not is_builtin:
        if must_be_data:
            raise GhostInputError(
                f"{item}: no such memory file (.txt or .jsonl) or built-in NAME:SPLIT"
            )
        return [item]
    dataset = load_data(item)
    facts: list[str] = []
    for record in dataset.records:
        if "text" in record:
            facts.append(record["text"])
        else:
            facts.extend(record.get("facts") or [])
    if not facts:
        raise GhostInputError(
            f'{dataset.name}: Q&A records without `facts`: a memory file holds {{"text": ...}} '
            "records, or Q&A records with a facts list"
        )
    return list(dict.fromkeys(facts))
