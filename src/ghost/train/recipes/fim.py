"""Fill-in-the-middle training: a `rate` share of text windows are rearranged to teach the
model to fill a hole between a prefix and a suffix (Bavarian et al. 2022, PSM order).

For each row r of a (B, L) text batch, chosen with probability `rate`:

    w       = the row's first n = L - 4 bytes        (the window, 4 bytes shorter)
    c1 <= c2  two uniform cut points in [0, n]       prefix w[:c1], middle w[c1:c2], suffix w[c2:]
    row     = PREFIX w[:c1] SUFFIX w[c2:] MIDDLE w[c1:c2] END              L bytes again

with the sentinel bytes of `ghost.data.fim` and END the model's end-of-answer marker, so
the batch keeps its shape (B, L). The loss is on every byte, as for plain text (labels =
input ids), the common choice: the rearranged rows still train left-to-right prediction.
Rows not chosen are left as they are. The choice and cuts come from a generator seeded by
(seed, step), so a resumed run rearranges exactly as an uninterrupted one, and nothing
needs saving.

Generation: `model.generate(prefix, fim_suffix=suffix)` or `ghost generate RUN PREFIX
--fim-suffix SUFFIX` continues `fim_prompt(prefix, suffix)` up to END: the middle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ghost.data.batches import IGNORE, Batch, TextBatcher
from ghost.data.fim import SENTINELS, fim_rearrange, reserved_byte_at
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe, TrainState
from ghost.train.recipes import number_option

ADDED_BYTES = 4  # three sentinels and the end marker


@dataclass
class FillInTheMiddle(Recipe):
    """Rearrange a share of text windows into prefix-suffix-middle order."""

    rate: float = 0.5
    """The share of rows rearranged, in [0, 1]."""

    name: ClassVar[str] = "fim"

    def __post_init__(self):
        self.rate = number_option("fim", "rate", self.rate)
        if not 0 <= self.rate <= 1:
            raise GhostInputError(f"recipe 'fim': rate must be in [0, 1], got {self.rate}")
        self.end_byte = QATemplate().marker  # the model's own marker, read in on_train_begin

    def on_train_begin(self, state: TrainState) -> None:
        if not isinstance(state.batcher, TextBatcher):
            raise GhostInputError(
                f"fim needs text data such as code50; {state.config.data} holds Q&A records"
            )
        self.end_byte = QATemplate.from_config(state.model.config).marker
        if self.end_byte in SENTINELS:
            raise GhostInputError(
                f"fim: the model's end-of-answer marker {self.end_byte:#04x} is one of the "
                "fill-in-the-middle sentinel bytes 0x0e-0x10; choose another marker"
            )
        # A sentinel in the data would make prefix, suffix and middle ambiguous, and an end
        # marker inside a middle would teach the model to stop filling early.
        found = reserved_byte_at(state.batcher.stream, SENTINELS + bytes([self.end_byte]))
        if found is not None:
            offset, byte = found
            raise GhostInputError(
                f"fim: {state.config.data} contains the reserved byte {byte:#04x} at byte "
                f"{offset} of its text (the fill-in-the-middle sentinels are 0x0e-0x10 and "
                f"the end marker is {self.end_byte:#04x}); remove it or train without fim"
            )

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        rows = batch.input_ids.shape[0]
        generator = torch.Generator().manual_seed(
            7_777_777 + 1_000_003 * state.config.seed + state.step
        )
        draws = torch.rand(rows, 3, generator=generator)  # (B, 3): choose?, cut, cut
        chosen = (draws[:, 0] < self.rate).tolist()
        lengths = (batch.labels != IGNORE).sum(1).tolist()  # (B,) text bytes per row
        input_ids, labels = batch.input_ids.clone(), batch.labels.clone()  # (B, L)
        for r in range(rows):
            n = lengths[r] - ADDED_BYTES
            if not chosen[r] or n < 1:
                continue
            cut1, cut2 = sorted((draws[r, 1:] * (n + 1)).long().clamp(max=n).tolist())
            example = fim_rearrange(batch.input_ids[r, :n], cut1, cut2, self.end_byte)
            input_ids[r, : n + ADDED_BYTES] = example
            labels[r, : n + ADDED_BYTES] = example
        return Batch(input_ids, labels, batch.indices)
