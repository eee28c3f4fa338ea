"""`skip`: after a warm-up, skip the samples the model already knows and train on others.

A sample's confidence is the mean probability the model gives its target bytes,

    c = (1 / T) * sum over target bytes t of p(byte_t | bytes before t)

(the loop's `RowStats.confidence`). From step `warmup` on, a candidate row with c > threshold
is skipped: it gets no forward pass with gradient and no backward. The batch is refilled
from the same seeded order (`batcher.take` + `batcher.collate`), so every step still trains
a full batch. The first `warmup` steps, and with `final_all_steps` the last steps of a
fixed-step run, train on every sample.

Where c comes from (`scoring`):
- "cached": c of each record's last training visit, recorded from the training forward
  pass (no extra compute). Stale by up to a few steps, so a record is skipped at most
  `max_skips` visits in a row, then trained again, which refreshes its c. Q&A data only:
  a text window's start moves every epoch, so there is no sample to remember.
- "fresh": a forward pass without gradient scores the candidates just before they would be
  trained (one extra forward of the batch per step, more when refilling). Q&A and text.

The refill is bounded: a step draws at most one epoch's worth of candidates; if fewer than
a batch of them are kept, the least confident skipped ones fill the rest, so a step never
runs empty because every sample is known. `metrics["skip_fraction"]` is the share of this
step's candidates that were skipped.

Put `skip` before recipes that rewrite a batch's rows: a refilled batch is collated again
from its indices. The cached confidences (NaN = not seen yet), the consecutive-skip counts
and the totals are saved with each checkpoint, so a resume is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.distributed as dist

from ghost.data.batches import Batch, QABatcher, TextBatcher
from ghost.errors import GhostInputError
from ghost.model.ghost import next_byte_loss, scored_positions
from ghost.runtime import autocast
from ghost.train.hooks import Recipe, TrainState
from ghost.train.loop import row_stats
from ghost.train.recipes import number_option, whole_option

SCORINGS = ("cached", "fresh")


def _all_ranks(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor concatenated over the data-parallel ranks (as is, in one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(tensors)
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, tensors)
    return [torch.cat(parts) for parts in zip(*gathered, strict=True)]


@dataclass
class ConfidenceSkipper(Recipe):
    """Skip samples the model already predicts with confidence > threshold; refill the batch."""

    name: ClassVar[str] = "skip"

    threshold: float = 0.7
    """Skip a sample whose confidence (mean p of its target bytes) exceeds this (0 < t < 1)."""
    warmup: int = 100
    """Train on every sample for this many steps first."""
    final_all_steps: int = 0
    """Train on every sample again for the last this-many steps of a fixed-step run."""
    scoring: str = "cached"
    """'cached' (Q&A only: confidence from the last training visit, free) or 'fresh' (an extra
    forward pass without gradient scores the candidates)."""
    max_skips: int = 2
    """'cached': after this many skips in a row a record is trained again (refreshing it)."""

    def __post_init__(self):
        self.threshold = number_option("skip", "threshold", self.threshold)
        if not 0 < self.threshold < 1:
            raise GhostInputError(
                f"recipe 'skip': threshold must be in (0, 1), got {self.threshold}"
            )
        self.warmup = whole_option("skip", "warmup", self.warmup, 0)
        self.final_all_steps = whole_option("skip", "final_all_steps", self.final_all_steps, 0)
        self.max_skips = whole_option("skip", "max_skips", self.max_skips, 1)
        if self.scoring not in SCORINGS:
            raise GhostInputError(
                f"recipe 'skip': scoring must be one of {', '.join(SCORINGS)}, got {self.scoring!r}"
            )
        # State (not options): per record for cached scoring, NaN = not trained yet.
        self.confidence: torch.Tensor | None = None  # (N,) float
        self.skip_streak: list[int] = []  # (N,) skips in a row (a list: read per candidate)
        self.skipped_total, self.drawn_total = 0, 0
        # This step's decisions: samples trained and skipped, candidates drawn.
        self.kept_now: list[int] = []
        self.skipped_now: list[int] = []
        self.drawn_now = 0

    def on_train_begin(self, state: TrainState) -> None:
        if not isinstance(state.batcher, QABatcher | TextBatcher):
            raise GhostInputError(
                f"recipe 'skip' needs Q&A or text data, got a {type(state.batcher).__name__}"
            )
        if self.scoring == "fresh":
            return
        if isinstance(state.batcher, TextBatcher):
            raise GhostInputError(
                "recipe 'skip': scoring=cached needs Q&A data (text windows move every epoch, "
                "so there is no sample to remember); use skip:scoring=fresh"
            )
        records = len(state.batcher)
        if self.confidence is None:
            self.confidence = torch.full((records,), math.nan)
            self.skip_streak = [0] * records
        elif len(self.confidence) != records:
            raise GhostInputError(
                f"recipe 'skip': the checkpoint remembers {len(self.confidence)} records, "
                f"the data has {records}"
            )

    def skipping(self, state: TrainState) -> bool:
        """Whether the step about to be trained may skip samples (not warm-up, not the end)."""
        if state.step < self.warmup:
            return False
        if state.total_steps is not None:
            return state.step < state.total_steps - self.final_all_steps
        return True

    def scores(self, state: TrainState, indices: list[int], batch: Batch | None) -> list[float]:
        """Confidence of each candidate: cached (NaN if unknown), or from a forward pass
        without gradient over `batch` (the candidates collated, when not given)."""
        if self.scoring == "cached":
            return self.confidence[indices].tolist()
        if batch is None:
            batch = state.batcher.collate(indices, state.seq_len)
        with torch.no_grad(), autocast(state.precision):
            at = scored_positions(batch.labels)
            logits = state.model(batch.input_ids, logits_at=at).logits  # (B, L, 256)
        per_byte = next_byte_loss(logits, batch.labels, "none")  # (B, L-1)
        return row_stats(per_byte, logits, batch).confidence.tolist()

    def decide(self, index: int, confidence: float) -> bool:
        """Skip this visit of sample `index`? Counts consecutive skips in cached mode."""
        if not confidence > self.threshold:  # NaN (never trained) is not confident
            return self._trained(index)
        if self.scoring == "cached":
            if self.skip_streak[index] >= self.max_skips:
                return self._trained(index)
            self.skip_streak[index] += 1
        return True

    def _trained(self, index: int) -> bool:
        """This visit of `index` is trained: its skip count restarts. Returns False (not
        skipped), so `decide` can return it."""
        if self.scoring == "cached":
            self.skip_streak[index] = 0
        return False

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        """The batch without its known samples, refilled to the same number of rows."""
        wanted = len(batch.indices)
        self.kept_now, self.skipped_now, self.drawn_now = batch.indices.tolist(), [], wanted
        if not self.skipping(state):
            for index in self.kept_now:
                self._trained(index)
            return batch
        budget = state.batcher.steps_per_epoch * wanted  # about one epoch of candidates
        kept: list[int] = []
        skipped: list[tuple[float, int]] = []  # (confidence, index)
        candidates, collated, drawn = batch.indices.tolist(), batch, 0
        while True:
            scores = self.scores(state, candidates, collated)
            for index, score in zip(candidates, scores, strict=True):
                if self.decide(index, score):
                    skipped.append((score, index))
                else:
                    kept.append(index)
            drawn += len(candidates)
            if len(kept) >= wanted or drawn >= budget:
                break
            candidates, collated = state.batcher.take(wanted - len(kept)), None
        if len(kept) < wanted:  # the budget ran out: train the least confident skipped ones
            short = wanted - len(kept)
            skipped.sort()
            for _, index in skipped[:short]:
                self._trained(index)
                kept.append(index)
            skipped = skipped[short:]
        self.kept_now, self.skipped_now = kept, [index for _, index in skipped]
        self.drawn_now = drawn
        if drawn == wanted and not skipped:  # nothing skipped: the batch as it came
            return batch
        return state.batcher.collate(kept, state.seq_len)

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self.scoring == "cached" and state.rows is not None:
            indices, confidence, n_targets = _all_ranks(
                state.rows.indices, state.rows.confidence, state.rows.n_targets
            )
            # A rank's placeholder row without targets says nothing; rows of index -1 were
            # added by memory training and are no record of the dataset.
            seen = (n_targets > 0) & (indices >= 0)
            self.confidence[indices[seen]] = confidence[seen].float()
        self.skipped_total += len(self.skipped_now)
        self.drawn_total += self.drawn_now
        metrics["skip_fraction"] = len(self.skipped_now) / self.drawn_now if self.drawn_now else 0.0
        self.kept_now, self.skipped_now, self.drawn_now = [], [], 0

    def state_dict(self) -> dict:
        state = {"skipped_total": self.skipped_total, "drawn_total": self.drawn_total}
        if self.confidence is not None:
            state.update(confidence=self.confidence, skip_streak=torch.tensor(self.skip_streak))
        return state

    def load_state_dict(self, state: dict) -> None:
        self.skipped_total = int(state["skipped_total"])
        self.drawn_total = int(state["drawn_total"])
        if "confidence" in state:
            self.confidence = state["confidence"].clone()
            self.skip_streak = state["skip_streak"].tolist()
