"""Batches of bytes for training: Q&A records padded per batch, or windows of a text stream.

Both batchers are deterministic functions of (seed, position): the order is a permutation
drawn per epoch from a generator seeded by (seed, epoch), so `state_dict()` is just where
the batcher stands, and a resumed run sees exactly the batches an uninterrupted one would.

Labels follow the model's convention: labels[t] is the byte at t when t is a target
(the model shifts), -100 elsewhere; padding is byte 0 with label -100.
"""

from __future__ import annotations

import math
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


# A call of a model costs about as much as this many more bytes of rows: every call streams
# all the weights (v5-fast on Zen 1: one 8-byte row took as long as ~68 byte-rows of a large
# batch in inference; training steps on facts200 batches were fastest from 32 to 128).
CALL_BYTES = 64


def length_batches(
    items: list, lengths: list[int], batch_size: int, call_bytes: float = CALL_BYTES
) -> list[list]:
    """`items` in batches of at most `batch_size`, in order of length, cut where the cost
    `call_bytes` per batch plus each batch's rows x its longest length is least (exactly:
    a shortest path over the cut points): padding is computed like any byte, and each call
    of a model costs about as much as `call_bytes` more bytes of rows."""
    order = sorted(zip(lengths, items, strict=True), key=lambda pair: pair[0])
    n = len(order)
    best, cut = [0] + [math.inf] * n, [0] * (n + 1)  # cost of the first i items, last cut
    for i in range(1, n + 1):
        for j in range(max(0, i - batch_size), i):
            cost = best[j] + call_bytes + (i - j) * order[i - 1][0]
            if cost < best[i]:
                best[i], cut[i] = cost, j
    batches, i = [], n
    while i:
        batches.append([item for _, item in order[cut[i] : i]])
        i = cut[i]
    return batches[::-1]


def run_in_groups(run, groups: list[list[int]], lengths: list[int], width: int) -> torch.Tensor:
    """`run(group, w)` -> (len(group), w, ...) for each group of row indices (`length_batches`),
    w the group's longest length; the outputs padded with zeros to `width` along dim 1 and put
    back in row order: (rows, width, ...). Rows are independent and padded on the right, so
    each row's output is what one padded pass gives it, without the padding's work."""
    parts = []
    for group in groups:
        w = max(lengths[i] for i in group)
        out = run(group, w)
        parts.append(torch.nn.functional.pad(out, (0, 0) * (out.dim() - 2) + (0, width - w)))
    joined = torch.cat(parts)
    order = torch.tensor([i for group in groups for i in group], device=joined.device)
    return joined.index_select(0, order.argsort())


def pad_rows(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, labels) pairs of any lengths -> input_ids, labels (B, longest): padding is byte 0
    with label IGNORE. The one collate of training, recipes and evaluation."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for r, (ids, row_labels) in enumerate(rows):
        input_ids[r, : len(ids)] = ids
        labels[r, : len(row_labels)] = row_labels
    return input_ids, labels


def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


AUGMENTS = ("none", "surface")
GROUP_BATCHES = 16  # batches' worth of records sorted by length together (group_by_length)


def surface_variant(question: str, choice: int) -> str:
    """The question as a user might type it: 1 lower case, 2 without its final '?' (or '.'),
    3 both. 0 is the question unchanged. Answers are never changed."""
    if choice & 1:
        question = question.lower()
    if choice & 2:
        question = question.rstrip().rstrip("?.").rstrip() or question
    return question


def qa_row(
    template: QATemplate,
    record: dict,
    answer_only: bool = True,
    hops: list[tuple[str, str]] | None = None,
):
    """A Q&A record as one row: (ids, labels), the labels -100 before the answer (or only on
    the first byte, with `answer_only` False); with `hops`, the answer is given through them."""
    data, answer_start = template.render(record, hops)
    ids = torch.tensor(list(data), dtype=torch.long)
    labels = ids.clone()
    labels[: answer_start if answer_only else 1] = IGNORE
    return ids, labels


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
        augment: str = "none",
        group_by_length: bool = False,
    ):
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        # Rows are padded to the longest of their batch: grouping records of similar length
        # into batches (`_grouped`) spares most of that padding.
        self.group_by_length = group_by_length
        self.records = dataset.records
        # "surface": each training row's question is, with probability 1/2, typed casually
        # (lower case, no final '?', or both; `surface_variant`). Drawn from (seed, epoch,
        # position), so a resumed run sees the same rows; checks (`collate`) see the originals.
        self.augment = augment
        self._template, self._answer_only = template, answer_only
        # A template with steps answers multi-hop records through their hops (template.py).
        self.hops = template.hops(dataset.records)
        self.samples = []
        for i, record in enumerate(dataset.records):
            template.check(record, f"{dataset.name} record {i + 1}")
            self.samples.append(qa_row(template, record, answer_only, self.hops.get(i)))
        self.sources = dataset.sources if dataset.sources and dataset.sources[0].weight else None
        self.epoch, self.position = 0, 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """This epoch's record order: a seeded permutation of all records or, for weighted
        sources, round(N * w_i / sum(w)) draws from source i (cycling through seeded
        permutations of its records), shuffled together; then grouped by length if asked."""
        if self.sources is None:
            order = _permutation(len(self.samples), self.seed, epoch)
        else:
            order = self._weighted_order(epoch)
        return self._grouped(order, epoch) if self.group_by_length else order

    def _weighted_order(self, epoch: int) -> torch.Tensor:
        total = sum(s.weight for s in self.sources)
        parts = []
        for i, source in enumerate(self.sources):
            size = source.stop - source.start
            n = round(len(self.samples) * source.weight / total)
            cycles = [
                _permutation(size, self.seed + 7919 * (i + 1), epoch * 1009 + c)
                for c in range(-(-n // size))
            ]
            parts.append(torch.cat(cycles)[:n] + source.start)
        order = torch.cat(parts)
        return order[_permutation(len(order), self.seed, epoch)]

    def _grouped(self, order: torch.Tensor, epoch: int) -> torch.Tensor:
        """`order` with records of similar length in the same batches: each run of
        GROUP_BATCHES batches' worth of records is sorted by length, cut into batches, and
        those batches are shuffled (seeded by seed and epoch, so a resume sees the same)."""
        lengths = torch.tensor([len(ids) for ids, _ in self.samples])
        size = self.batch_size * GROUP_BATCHES
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 7 + 3)
        grouped = []
        for start in range(0, len(order), size):
            part = order[start : start + size]
            part = part[torch.sort(lengths[part], stable=True).indices]
            batches = list(part.split(self.batch_size))
            grouped += [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        return torch.cat(grouped)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def n_cut(self) -> int:
        """Records longer than seq_len: `collate` cuts the start of their question."""
        return sum(len(ids) > self.seq_len for ids, _ in self.samples)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, -(-len(self.samples) // self.batch_size))

    def check_sample(self, limit: int) -> list[int]:
        """A fixed, evenly spaced sample of at most `limit` records, for progress checks."""
        stride = max(1, -(-len(self.samples) // limit))
        return list(range(0, len(self.samples), stride))[:limit]

    def collate(self, indices: list[int], max_len: int | None = None) -> Batch:
        """The records `indices` as one batch. A record longer than `max_len` (default
        seq_len) loses the start of its question: the answer and marker are kept, so every
        row has target bytes (an answer longer than the window keeps its end)."""
        limit = max_len or self.seq_len
        rows = [
            (ids[-limit:], labels[-limit:]) for ids, labels in (self.samples[i] for i in indices)
        ]
        input_ids, labels = pad_rows(rows)
        return Batch(input_ids, labels, torch.tensor(indices, dtype=torch.long))

    def take(self, n: int) -> list[int]:
        """The next n record indices in this epoch's seeded order (wrapping into the next)."""
        indices = []
        while len(indices) < n:
            if self.position >= len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._epoch_order(self.epoch)
            indices.append(int(self._order[self.position]))
            self.position += 1
        return indices

    def next_batch(self, max_len: int | None = None) -> Batch:
        """The next batch_size records in this epoch's order (wrapping into the next epoch),
        questions varied as `augment` says."""
        if self.augment == "none":
            return self.collate(self.take(min(self.batch_size, len(self.samples))), max_len)
        g = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + self.epoch) * 100_003 + self.position
        )
        indices = self.take(min(self.batch_size, len(self.samples)))
        choices = torch.randint(0, 6, (len(indices),), generator=g).tolist()  # 0-2: unchanged
        limit = max_len or self.seq_len
        rows = []
        for i, choice in zip(indices, choices, strict=True):
            if choice < 3:
                ids, labels = self.samples[i]
            else:
                record = dict(self.records[i])
                record["question"] = surface_variant(record["question"], choice - 2)
                ids, labels = qa_row(self._template, record, self._answer_only, self.hops.get(i))
            rows.append((ids[-limit:], labels[-limit:]))
        input_ids, labels = pad_rows(rows)
        return Batch(input_ids, labels, torch.tensor(indices, dtype=torch.long))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_order(self.epoch)


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

    def check_sample(self, limit: int) -> list[int]:
        """A fixed, evenly spaced sample of at most `limit` window starts, for checks."""
        starts = sorted(self._starts(0).tolist())
        stride = max(1, -(-len(starts) // limit))
        return starts[::stride][:limit]

    def take(self, n: int) -> list[int]:
        """The next n window starts in this epoch's seeded order (wrapping into the next)."""
        starts = []
        while len(starts) < n:
            if self.position >= len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._starts(self.epoch)
            starts.append(int(self._order[self.position]))
            self.position += 1
        return starts

    def collate(self, starts: list[int], max_len: int | None = None) -> Batch:
        """Windows of min(max_len, seq_len) bytes at `starts`, every byte a target."""
        length = min(max_len or self.seq_len, self.seq_len, len(self.stream))
        input_ids, labels = pad_rows(
            [(w, w) for w in (self.stream[s : s + length] for s in starts)]
        )
        return Batch(input_ids, labels, torch.tensor(starts, dtype=torch.long))

    def next_batch(self, max_len: int | None = None) -> Batch:
        return self.collate(self.take(self.batch_size), max_len)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._starts(self.epoch)
