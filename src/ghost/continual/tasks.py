"""The tasks of a continual run, and the fixed samples each one is scored and consolidated on.

A task is a Q&A dataset: its training records (what the weights learn) and, where it has
one, a held-out set (never trained on). From the training records, one seeded permutation
per task (the same for every seed and strategy) gives two disjoint samples:

    retention   the first min(R, ceil(n/2)) records: what forgetting is measured on
    validation  the next min(R, floor(n/2)): what the lambda sweep is scored on

(R = --eval-size, n = the task's training records), so the sweep never reads a reported
number. Both are training records: retention asks whether what was learnt is still known.
The held-out set (min(R, its size) records of it, also a fixed sample) asks whether the task
generalises, a separate question.

The Fisher of a finished task is estimated on a seeded sample of its training records, and
replay keeps, per earlier task, the first records of another fixed permutation, so the
buffer at task 3 holds a subset of what it held at task 2 (as a buffer that evicts would).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ghost.data.builtin import is_builtin, list_datasets
from ghost.data.records import Dataset, Source, load_data
from ghost.errors import GhostInputError

SAMPLE_SEED = 20261201  # fixes the retention / validation split of every task


@dataclass
class Task:
    name: str  # as given: facts200, path/to/file.jsonl
    train: Dataset
    heldout: Dataset | None  # a fixed sample of at most --eval-size records
    retention: list[int]  # indices into train.records
    validation: list[int]

    @property
    def slug(self) -> str:
        """A short file-name-safe name: the built-in name or the file's stem."""
        stem = Path(self.name).stem if not is_builtin(self.name) else self.name
        return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "task"

    def subset(self, kind: str) -> Dataset | None:
        """The records a score of `kind` ('retention', 'validation', 'heldout') is taken on."""
        if kind == "heldout":
            return self.heldout
        indices = self.retention if kind == "retention" else self.validation
        if not indices:
            return None
        records = [self.train.records[i] for i in indices]
        return Dataset(f"{self.train.name} ({kind} sample of {len(records)})", "qa", records)


def _permutation(n: int, *seeds: int) -> list[int]:
    g = torch.Generator().manual_seed(hash_seeds(*seeds))
    return torch.randperm(n, generator=g).tolist()


def hash_seeds(*seeds: int) -> int:
    """One 63-bit seed from several small ones (deterministic, unlike Python's hash)."""
    value = 0
    for s in seeds:
        value = (value * 1_000_003 + int(s)) % (2**63 - 1)
    return value


def _default_heldout(name: str) -> str | None:
    """A built-in's first held-out split of Q&A records (facts200:paraphrase, bash100:
    paraphrase, math1k:test); None for a file or a split of a built-in."""
    if not is_builtin(name) or ":" in name:
        return None
    info = next(d for d in list_datasets() if d.name == name)
    split = next((s for s in info.held_out if info.record_type(s) == "qa"), None)
    return f"{name}:{split}" if split else None


def load_tasks(names: list[str], heldout: list[str | None] | None, size: int) -> list[Task]:
    """Load every task (Q&A only) and fix its samples; any problem is a GhostInputError."""
    tasks = []
    for position, name in enumerate(names):
        train = load_data(name)
        if train.kind != "qa":
            raise GhostInputError(
                f"task {name!r}: continual learning scores Q&A tasks by exact match; "
                f"{train.name} holds text records"
            )
        held_name = heldout[position] if heldout is not None else _default_heldout(name)
        held = load_data(held_name, kind="qa") if held_name else None
        if held is not None and len(held) > size:
            keep = sorted(_permutation(len(held), SAMPLE_SEED, position, 1)[:size])
            records = [held.records[i] for i in keep]
            held = Dataset(f"{held.name} (sample of {size})", "qa", records)
        n = len(train)
        order = _permutation(n, SAMPLE_SEED, position)
        n_retention = min(size, math.ceil(n / 2))
        n_validation = min(size, n // 2)
        retention = sorted(order[:n_retention])
        validation = sorted(order[n_retention : n_retention + n_validation])
        tasks.append(Task(name, train, held, retention, validation))
    return tasks


def fisher_records(task: Task, samples: int, seed: int) -> list[dict]:
    """A seeded sample of `samples` training records (all of them when fewer)."""
    order = _permutation(len(task.train), seed, 7919)
    return [task.train.records[i] for i in sorted(order[:samples])]


def replay_buffer(earlier: list[Task], size: int, seed: int) -> list[dict]:
    """`size` records split evenly between the earlier tasks (the first ones get the
    remainder), each task's the first of a fixed seeded permutation of its records."""
    records = []
    for position, task in enumerate(earlier):
        share = size // len(earlier) + (1 if position < size % len(earlier) else 0)
        order = _permutation(len(task.train), seed, 104729, position)
        records += [task.train.records[i] for i in order[:share]]
    return records


def with_replay(task: Task, buffer: list[dict]) -> Dataset:
    """The task's records followed by the buffer's: every record equally likely per epoch."""
    records = task.train.records + buffer
    sources = [
        Source(task.train.name, 0, len(task.train)),
        Source("replay", len(task.train), len(records)),
    ]
    return Dataset(f"{task.train.name}+replay({len(buffer)})", "qa", records, sources)


def joint_dataset(tasks: list[Task]) -> Dataset:
    """Every task's records, each task an equal share of every epoch's rows (as sequential
    training gives each task an equal share of the steps)."""
    records, sources = [], []
    for task in tasks:
        sources.append(Source(task.train.name, len(records), len(records) + len(task.train), 1.0))
        records += task.train.records
    name = "+".join(f"{t.train.name}@1" for t in tasks)
    return Dataset(name, "qa", records, sources)
