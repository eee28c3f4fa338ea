"""Batches of bytes for training: Q&A records padded per batch, or windows of a text stream.

Both batchers are deterministic functions of (seed, position): the order is a permutation
drawn per epoch from a generator seeded by (seed, epoch), so `state_dict()` is just where
the batcher stands, and a resumed run sees exactly the batches an uninterrupted one would.

Labels follow the model's convention: labels[t] is the byte at t when t is a target
(the model shifts), -100 elsewhere; padding is byte 0 with label -100.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ghost.data.records import Dataset
from ghost.data.template import QATemplate

IGNORE = -100


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L) int64
    labels: torch.Tensor  # (B, L) int64, IGNORE where no loss
    indices: torch.Tensor  # (B,) which records (Q&A) or window starts (text)

    def select(self, keep: torch.Tensor) -> Batch:
        """The rows where `keep` (B,) is True (recipes that drop samples use this)."""
        return Batch(self.input_ids[keep], self.labels[keep], self.indices[keep])

    @property
    def n_target_bytes(self) -> int:
        return int((self.labels[:, 1:] != IGNORE).sum())


def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class QABatcher:
    """Each row is one rendered Q&A record; loss on the answer (and marker) or everywhere."""

    def __init__(
        self,
        dataset: Dataset,
        template: QATemplate,
        batch_size: int,
        seq_len: int,
        answer_only: bool = True,
        seed: int = 0,
    ):
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.samples = []
        for i, record in enumerate(dataset.records):
            template.check(record, f"{dataset.name} record {i + 1}")
            data, answer_start = template.render(record)
            ids = torch.tensor(list(data), dtype=torch.long)
            labels = ids.clone()
            labels[: answer_start if answer_only else 1] = IGNORE
            self.samples.append((ids, labels))
        self.epoch, self.position = 0, 0
        self._order = _permutation(len(self.samples), seed, 0)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, -(-len(self.samples) // self.batch_size))

    def collate(self, indices: list[int], max_len: int | None = None) -> Batch:
        limit = max_len or self.seq_len
        rows = [(ids[:limit], labels[:limit]) for ids, labels in (self.samples[i] for i in indices)]
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.zeros(len(rows), width, dtype=torch.long)
        label_ids = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for r, (ids, labels) in enumerate(rows):
            input_ids[r, : len(ids)] = ids
            label_ids[r, : len(labels)] = labels
        return Batch(input_ids, label_ids, torch.tensor(indices, dtype=torch.long))

    def next_batch(self, max_len: int | None = None) -> Batch:
        """The next batch_size records in this epoch's order (wrapping into the next epoch)."""
        indices = []
        while len(indices) < min(self.batch_size, len(self.samples)):
            if self.position >= len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = _permutation(len(self.samples), self.seed, self.epoch)
            indices.append(int(self._order[self.position]))
            self.position += 1
        return self.collate(indices, max_len)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = _permutation(len(self.samples), self.seed, self.epoch)


class TextBatcher:
    """Rows are windows of seq_len + 1 bytes of the concatenated records (blank-line joined)."""

    def __init__(self, dataset: Dataset, batch_size: int, seq_len: int, seed: int = 0):
        text = "\n\n".join(r["text"] for r in dataset.records).encode("utf-8")
        self.stream = torch.tensor(list(text), dtype=torch.long)
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.epoch, self.position = 0, 0
        self._order = self._starts(0)

    def _starts(self, epoch: int) -> torch.Tensor:
        # Non-overlapping windows, shuffled per epoch, with an offset that varies per epoch.
        span = min(self.seq_len, max(1, len(self.stream) - 1))
        offset = epoch % span
        starts = torch.arange(offset, max(offset + 1, len(self.stream) - span), span)
        return starts[_permutation(len(starts), self.seed, epoch)]

    def __len__(self) -> int:
        return len(self.stream)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, -(-len(self._order) // self.batch_size))

    def next_batch(self, max_len: int | None = None) -> Batch:
        length = min(max_len or self.seq_len, self.seq_len, len(self.stream))
        starts = []
        while len(starts) < self.batch_size:
            if self.position >= len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._starts(self.epoch)
            starts.append(int(self._order[self.position]))
            self.position += 1
        rows = [self.stream[s : s + length] for s in starts]
        width = max(len(r) for r in rows)
        input_ids = torch.zeros(len(rows), width, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = r
            labels[i, : len(r)] = r
        return Batch(input_ids, labels, torch.tensor(starts, dtype=torch.long))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._starts(self.epoch)
