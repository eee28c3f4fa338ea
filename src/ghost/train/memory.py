"""Memory training: each row reads a bank of facts, and some rows can be answered only by
reading it, so the memory layers and the copy head learn to read.

On by default when the training records carry `facts` (TrainConfig.memory_training =
"auto"; "off" turns it off, "on" demands facts). Per step:

- every Q&A row of the batch reads a bank of its own facts plus distractor facts drawn from
  the other records, shuffled, `bank_size` entries in all; a share `no_memory` of the rows
  reads nothing (the model must still answer from its weights);
- `fictional` x batch rows are added about entities that do not exist ("The capital of
  Zorvania is Quessaro."): fresh ones every step, from the "train" pool of
  `ghost.data.fictional`, so the only way to answer them is to copy from the bank;
- `counterfactual` x batch rows are added that ask a trained question while the bank holds
  an edited fact ("The capital of France is Tokyo.") and not the true one: memory overrides
  the weights;
- a contrastive loss (weight `retrieval_weight`) pulls each question's retrieval key towards
  its first fact's key and away from the other rows' facts, so that top-k retrieval finds
  the right entries in a bank far larger than `bank_size`.

Added rows carry the index -1 (not a record of the dataset): recipes that keep per-record
state ignore them. Everything drawn is a function of (seed, step), so a resumed run draws
what an uninterrupted one would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ghost.data.batches import Batch, QABatcher, pad_rows
from ghost.data.fictional import counterfactual_edits, fictional_facts
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe, TrainState


def records_carry_facts(records: list[dict]) -> bool:
    return any(r.get("facts") for r in records)


@dataclass
class MemoryTraining(Recipe):
    bank_size: int = 8
    no_memory: float = 0.5
    fictional: float = 0.25
    counterfactual: float = 0.1
    retrieval_weight: float = 0.1
    temperature: float = 0.05
    pool_size: int = 32  # distinct distractor facts per step, shared by its rows

    name = "memory"

    def on_train_begin(self, state: TrainState) -> None:
        batcher = state.batcher
        if not isinstance(batcher, QABatcher) or not records_carry_facts(batcher.records):
            raise GhostInputError(
                "memory training needs Q&A records with a `facts` list (like facts200's)"
            )
        self.template = QATemplate.from_config(state.model.config)
        self.records = batcher.records
        self.all_facts = sorted({f for r in self.records for f in r.get("facts") or []})
        self.edits = counterfactual_edits(self.records, seed=state.config.seed)
        self.seed = state.config.seed
        self._questions: list[tuple[int, str]] = []  # (row, its first fact), this step
        self._query_keys: torch.Tensor | None = None  # keys of every row's prompt
        self._fact_keys: torch.Tensor | None = None  # keys of those facts, with gradient
        self._retrieval_loss: float | None = None

    def _bank(self, rng: random.Random, own: list[str], pool: list[str]) -> list[str]:
        """Own facts plus distractors from this step's `pool` (shared by the rows, so the
        encoder runs over few distinct texts), shuffled; empty for a `no_memory` share."""
        if rng.random() < self.no_memory:
            return []
        own = own[: self.bank_size]
        taken = set(own)
        others = [f for f in pool if f not in taken]  # callers shuffle the pool
        bank = own + others[: self.bank_size - len(own)]
        rng.shuffle(bank)
        return bank

    def _row(self, state: TrainState, question: str, answer: str):
        """A rendered Q&A row cut as QABatcher cuts one: its start goes, its answer stays."""
        data, answer_start = self.template.render({"question": question, "answer": answer})
        ids = torch.tensor(list(data), dtype=torch.long)
        labels = ids.clone()
        labels[: answer_start if state.config.answer_only_loss else 1] = -100
        limit = state.seq_len or state.config.seq_len
        return ids[-limit:], labels[-limit:]

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        rng = random.Random(f"memory-{self.seed}-{state.step}")
        pool = rng.sample(self.all_facts, min(len(self.all_facts), self.pool_size))
        rows = [(batch.input_ids[i], batch.labels[i]) for i in range(len(batch.indices))]
        banks, questions = [], []  # questions: (row, its first fact) for the retrieval loss
        asked = [self.records[i]["question"] for i in batch.indices.tolist()]  # each row's
        for row, index in enumerate(batch.indices.tolist()):
            record = self.records[index]
            own = list(record.get("facts") or [])
            banks.append(self._bank(rng, own, rng.sample(pool, len(pool))))
            if own:
                questions.append((row, own[0]))
        n = len(rows)
        made = fictional_facts(round(self.fictional * n), seed=f"{self.seed}-{state.step}")
        made_facts = [f.fact for f in made]  # each other's distractors: same relations
        for fact in made:
            rows.append(self._row(state, fact.question, fact.answer))
            asked.append(fact.question)
            alike = rng.sample(made_facts, len(made_facts))[: self.bank_size // 2]
            bank = self._bank(rng, [fact.fact], alike + rng.sample(pool, len(pool)))
            bank = bank or [fact.fact]
            if fact.fact not in bank:
                bank[0] = fact.fact
            banks.append(bank)
            questions.append((len(rows) - 1, fact.fact))
        for edit in rng.sample(self.edits, min(len(self.edits), round(self.counterfactual * n))):
            rows.append(self._row(state, edit.question, edit.answer))
            asked.append(edit.question)
            true_facts = {f for r in self.records if r["question"] == edit.question
                          for f in r.get("facts") or []}  # fmt: skip
            bank = [
                f for f in self._bank(rng, [], rng.sample(pool, len(pool))) if f not in true_facts
            ]
            banks.append([edit.fact, *bank[: self.bank_size - 1]])
        input_ids, labels = pad_rows(rows)
        extra = len(rows) - n
        indices = torch.cat([batch.indices, torch.full((extra,), -1, dtype=torch.long)])
        facts = [f for _, f in questions] if self.retrieval_weight and len(questions) > 1 else []
        prompts = [self.template.prompt(q) for q in asked]  # what retrieval is keyed by
        memory, self._fact_keys, query_keys = state.model.memory.encode_rows(banks, facts, prompts)
        state.forward_kwargs["memory"] = memory
        self._questions = questions
        self._query_keys = query_keys
        return Batch(input_ids, labels, indices)

    def on_loss(self, state, loss, output, batch):
        if self._fact_keys is None:
            return loss
        facts = [f for _, f in self._questions]
        q = self._query_keys[[row for row, _ in self._questions]]  # keys of those rows' prompts
        f = self._fact_keys  # encoded with the step's banks (`on_batch`)
        scores = q @ f.T / self.temperature  # (Q, Q): row i's own fact is column i
        device = scores.device
        same = torch.tensor([[a == b for b in facts] for a in facts], device=device)
        others = ~torch.eye(len(facts), dtype=torch.bool, device=device)
        scores = scores.masked_fill(same & others, -1e4)  # a duplicate fact is no negative
        retrieval = F.cross_entropy(scores, torch.arange(len(facts), device=device))
        self._retrieval_loss = float(retrieval.detach())
        return loss + self.retrieval_weight * retrieval

    def on_optimizer_step(self, state: TrainState) -> None:
        state.model.memory.invalidate()  # states of the bank made by the old encoder weights

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self._retrieval_loss is not None:
            metrics["retrieval_loss"] = self._retrieval_loss
        self._retrieval_loss = None
