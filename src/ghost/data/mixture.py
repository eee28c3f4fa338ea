"""Several datasets in one run, and a validation set held out of the training data.

    --data facts200,bash100          the records of both, each record equally likely
    --data facts200@3,bash100@1      3/4 of each epoch's rows from facts200, 1/4 from bash100
    data = {facts200 = 3, bash100 = 1}   (TOML; a list of names means equal records)

With weights, each epoch draws round(N * w_i / sum(w)) rows from source i (N: all records),
so proportions hold per epoch, whatever the sources' sizes; without weights an epoch is one
pass over every record. All sources must be of one kind (Q&A or text); weights are for Q&A.

`split_validation` holds out a seeded fraction of each source's records: the validation set
never shares a record with training.
"""

from __future__ import annotations

import torch

from ghost.data.records import Dataset, Source, load_data
from ghost.errors import GhostInputError


def parse_data_spec(spec: str | list | dict) -> list[tuple[str, float | None]]:
    """'a,b@2' | ['a', 'b'] | {'a': 1, 'b': 2} -> [(name, weight or None)]."""
    if isinstance(spec, dict):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        parts = spec.split(",") if isinstance(spec, str) else [str(p) for p in spec]
        items = []
        for part in (p.strip() for p in parts):
            name, sep, weight = part.rpartition("@") if "@" in part else (part, "", None)
            items.append((name.strip(), weight if sep else None))
    parsed = []
    for name, weight in items:
        if not name:
            raise GhostInputError(f"--data {spec!r}: empty dataset name")
        if weight is not None:
            try:
                weight = float(weight)
            except (TypeError, ValueError):
                raise GhostInputError(
                    f"--data {name}: weight must be a number, got {weight!r}"
                ) from None
            if not weight > 0:
                raise GhostInputError(f"--data {name}: weight must be positive, got {weight}")
        parsed.append((name, weight))
    weighted = [w is not None for _, w in parsed]
    if any(weighted) and not all(weighted):
        raise GhostInputError(f"--data {spec!r}: give every dataset a weight, or none")
    return parsed


def load_training_data(spec: str | list | dict, kind: str | None = None) -> Dataset:
    """One dataset, or several concatenated with their sources (and weights) recorded."""
    parts = parse_data_spec(spec)
    if len(parts) == 1 and parts[0][1] is None:
        return load_data(parts[0][0], kind)
    datasets = [load_data(name, kind) for name, _ in parts]
    kinds = {d.kind for d in datasets}
    if len(kinds) > 1:
        listed = ", ".join(f"{d.name} ({d.kind})" for d in datasets)
        raise GhostInputError(f"--data mixes Q&A and text datasets: {listed}")
    found = kinds.pop()
    if found == "text" and parts[0][1] is not None:
        raise GhostInputError("--data weights apply to Q&A datasets; text datasets are joined")
    records, sources = [], []
    for d, (_, weight) in zip(datasets, parts, strict=True):
        sources.append(Source(d.name, len(records), len(records) + len(d), weight))
        records += d.records
    name = "+".join(
        d.name if w is None else f"{d.name}@{w:g}"
        for d, (_, w) in zip(datasets, parts, strict=True)
    )
    return Dataset(name=name, kind=found, records=records, sources=sources)


def split_validation(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(train, validation): a seeded `fraction` of each source's records held out."""
    sources = dataset.sources or [Source(dataset.name, 0, len(dataset), None)]
    g = torch.Generator().manual_seed(seed * 7919 + 17)
    train_records, val_records, train_sources = [], [], []
    for source in sources:
        n = source.stop - source.start
        n_val = min(n - 1, max(1, round(n * fraction)))
        if n_val < 1:
            raise GhostInputError(
                f"{source.name}: {n} record(s) cannot be split into training and validation"
            )
        order = (torch.randperm(n, generator=g) + source.start).tolist()
        held = set(order[:n_val])
        kept = [dataset.records[i] for i in range(source.start, source.stop) if i not in held]
        val_records += [dataset.records[i] for i in sorted(held)]
        train_sources.append(
            Source(source.name, len(train_records), len(train_records) + len(kept), source.weight)
        )
        train_records += kept
    train = Dataset(
        dataset.name, dataset.kind, train_records, train_sources if dataset.sources else None
    )
    val = Dataset(f"{dataset.name} (validation {fraction:g})", dataset.kind, val_records)
    return train, val
