"""Memory training: each row reads a bank of facts, and some rows can be answered only by
reading it, so the memory layers and the copy head learn to read.

On by default when the records carry facts (TrainConfig.memory_training = "auto"; "on" trains it
on any Q&A data: without facts in the records, reading is practised on the generated
(fictional) facts alone, and every data row reads distractors or nothing, what keeps a model's
reading alive while it learns a domain without facts: `ghost continual`'s `memory` strategy).

When: a memory step that trains every weight costs ~2x one without it and, trained jointly
from the first step, half the data rows answered from the bank, so the weights learnt the
training set slower (the default facts200 run: 88% of it after 30 minutes, against 100% in
12). So by default the memory is trained in a *stage* (`stage_steps`,
TrainConfig.memory_steps): the weights learn the data first, exactly as without memory
training; when the run would stop on its own (the `--steps N` are done, or `--steps auto`'s
rule fired), `stage_steps` more steps teach the readers, and only them (`freeze_weights`):
the other weights stay as they were, so with an empty bank the model answers exactly as
without memory training, and a stage step needs no gradient for them. The stage's learning
rate is then the run's peak (`--lr`), warmed up and decayed again over the stage.
`stage_steps = 0` trains the memory jointly from the first step.

Per step:

- every Q&A row of the batch reads a bank of its own facts plus the distractors its
  retrieval would bring: the facts nearest its prompt by the current encoder's keys plus the
  lexical score, among a pool of dataset and fictional facts drawn for the step (hard
  negatives, as top-k retrieval gives them at inference), shuffled, `bank_size` entries in
  all; a share `no_memory` of the dataset rows never reads its own facts: half of them read
  only distractors (the model must answer from its weights while a bank is there, else
  writing unrelated facts would change trained answers; their loss weighs
  `distractor_weight`), half an empty bank (the weights
  learn as without memory training: with distractor-only banks alone, training exact match
  after 300 steps of `small` on facts200 was 6% against 53%);
- `fictional` x batch rows are added about entities that do not exist ("The capital of
  Zorvania is Quessaro."): fresh ones every step, from the "train" pool of
  `ghost.data.fictional`, so the only way to answer them is to copy from the bank; a share
  `reword` of them is asked in one of the distillation's question templates for the relation
  (`ghost.data.fictional.reword`: ~25 wordings each, none near the memory benchmark's
  held-out wording), so reading does not hang on three sentence shapes;
- `counterfactual` x batch rows are added that ask a trained question while the bank holds
  an edited fact ("The capital of France is Tokyo.") and not the true one: memory overrides
  the weights;
- a contrastive loss (weight `retrieval_weight`) pulls each question's retrieval key towards
  its first fact's key and away from the other rows' facts and from the other entries of
  its own bank (the hard negatives), so that top-k retrieval finds the right entries in a
  bank far larger than `bank_size`, and the copy head's entry score picks the right one.

Added rows carry the index -1 (not a record of the dataset): recipes that keep per-record
state ignore them. Everything drawn is a function of (seed, step) and the weights, so a
resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F

from ghost.data.batches import Batch, QABatcher, pad_rows, qa_row
from ghost.data.fictional import counterfactual_edits, fictional_facts, reword
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.model.ghost import next_byte_loss, scored_positions
from ghost.model.memory_text import LexicalIndex
from ghost.train.hooks import Recipe, TrainState


def records_carry_facts(records: list[dict]) -> bool:
    return any(r.get("facts") for r in records)


@dataclass
class MemoryTraining(Recipe):
    bank_size: int = 8
    no_memory: float = 0.5
    fictional: float = 0.25
    # 0.2 was chosen on validation over 0.1 (3 seeds of the default run, validation edits
    # 76/70/76% -> 77/79/86%; docs/memory.md): reading against the weights is learnt only here.
    counterfactual: float = 0.2
    retrieval_weight: float = 0.2
    temperature: float = 0.05
    pool_size: int = 32  # distractor candidates per step: this many dataset + fictional facts
    # Share of fictional rows asked in one of the distillation's question templates instead
    # of the fictional facts' own three wordings a relation: 0.25 was chosen on a validation
    # set (train-pool facts asked in the distillation's validation templates; small, 500
    # steps): seed 0: 0 -> 43% (training wordings 93%), 0.25 -> 60% (90%), 0.5 -> 60% (84%);
    # seeds 0-2: median 41% -> 57% (docs/memory.md).
    reword: float = 0.25
    stage_steps: int = 0  # 0: from the first step; N: a final stage of N steps (see above)
    # In the stage, only the memory's own parameters train (`GhostModel.memory_parameter_names`:
    # the encoder, the memory layers' cross-attention, the copy head); the weights keep
    # exactly what they learnt, so with an empty bank the model answers as without memory
    # training, and a step needs no gradient for the other weights nor any backward pass
    # below the first memory layer. (False: every weight trains in the stage too.)
    freeze_weights: bool = True
    # Update multiplier of the memory's scalar parameters (its gates' and the copy head's
    # scales and biases, 4 values or fewer each): they start at values of order 1-20, and at
    # the stage's learning rate (3e-3 at its peak) its 300-500 AdamW steps move one by 0.5-0.8
    # at most, so at 1 they stay near where they started. 10 read better on validation (3 seeds:
    # +1.2 to +5.1 points) but let written facts change twice as many trained answers
    # (docs/memory.md), so the default is 1.
    scalar_update: float = 1.0
    # Loss weight of the rows whose bank holds only distractors (a trained question answered
    # from the weights beside facts about other things): the relevance gates shut on most
    # of them, so at 1 they teach the cross-attention little about the few the gates let
    # through, which is where written facts change trained answers. 2 was chosen on
    # validation over 1 and 3 (3 seeds of the default run; the rule: the best mean reading
    # score among weights changing <= 1% of trained answers): trained answers changed by
    # 500 facts 25 -> 13 of 2,457, reading 82.0 -> 81.3 (3: 9 changed, 79.6; docs/memory.md).
    distractor_weight: float = 2.0
    # Share of the dataset rows reading their own facts that a frozen stage keeps (each
    # kept with this probability; the added fictional rows, whose answers are only in
    # memory, always stay). Chosen on validation, three default runs each (AMD Zen 4, bf16;
    # docs/memory.md): at 300 steps, 1 -> a stage step 1.72-1.81x a plain one, reading
    # score 81.5; 0.5 -> 1.44-1.48x, 79.9; 0 -> 1.12-1.14x, 79.6; 0 over 400 steps -> 80.8;
    # 0 over 500 steps (the default, with TrainConfig.memory_steps) -> 84.1, in about the
    # stage time of 1 over 300, with fewer trained answers changed (5 against 13 of 2,457).
    stage_own_rows: float = 0.0

    name = "memory"

    def __post_init__(self):
        self._started: int | None = None  # the step the stage began at (None: not yet)
        self._peak_lr = 0.0  # the stage's learning rate
        self._frozen: list[torch.nn.Parameter] = []  # what the stage does not train
        self._distractor_rows: list[int] = []  # this step's rows reading distractors only

    def on_train_begin(self, state: TrainState) -> None:
        batcher = state.batcher
        if not isinstance(batcher, QABatcher):
            raise GhostInputError("memory training needs Q&A records")
        self.template = QATemplate.from_config(state.model.config)
        self.records = batcher.records
        self.all_facts = sorted({f for r in self.records for f in r.get("facts") or []})
        self.edits = counterfactual_edits(self.records, seed=state.config.seed)
        self.true_facts: dict[str, set[str]] = {}  # question -> its facts (not read with an edit)
        for r in self.records:
            self.true_facts.setdefault(r["question"], set()).update(r.get("facts") or [])
        self.seed = state.config.seed
        self._fictional = range(0)  # this step's rows about fictional facts
        self._questions: list[tuple[int, str]] = []  # (row, its first fact), this step
        self._query_keys: torch.Tensor | None = None  # keys of every row's prompt
        self._bank_targets: list[tuple[int, int]] = []
        self._fact_keys: torch.Tensor | None = None  # keys of those facts, with gradient
        self._retrieval_loss: float | None = None
        if self._started is not None:  # resumed inside the stage
            self._freeze(state.model)
        if self.scalar_update != 1.0:
            reading = set(state.model.memory_parameter_names())
            for name, p in state.model.named_parameters():
                if name in reading and p.numel() <= 4:  # composes with other recipes' scales
                    state.update_scale[name] = state.update_scale.get(name, 1.0) * float(
                        self.scalar_update
                    )

    def on_train_end(self, state: TrainState) -> None:
        for p in self._frozen:  # the model object trains whole again (Python API)
            p.requires_grad_(True)
        self._frozen = []

    def _freeze(self, model) -> None:
        """The stage trains only the memory's parameters (`freeze_weights`)."""
        if not (self.stage_steps and self.freeze_weights):
            return
        reading = set(model.memory_parameter_names())
        self._frozen = [
            p for name, p in model.named_parameters() if name not in reading and p.requires_grad
        ]
        for p in self._frozen:
            p.requires_grad_(False)

    @property
    def reading(self) -> bool:
        """Whether this step's rows read memory (always, without a stage)."""
        return not self.stage_steps or self._started is not None

    def stage_done(self, state: TrainState) -> bool:
        return self._started is not None and state.step >= self._started + self.stage_steps

    def begin_stage(self, state: TrainState, metrics: dict) -> bool:
        """Called when the weights' training would stop on its own: start the memory stage
        instead (True), unless there is none or it already ran (False)."""
        if self.reading:
            return False
        self._started = state.step
        self._freeze(state.model)
        # Frozen weights leave the readers, never trained, the run's peak learning rate (on
        # validation it read better than the weights' last, 9e-4 in the default run, and
        # frozen weights cannot be knocked off what they learnt); else the weights' last.
        self._peak_lr = state.config.lr if self._frozen else float(metrics["lr"])
        with torch.no_grad():  # a model that never read opens its copy gate a little
            bias = state.model.copy.gate.bias
            if float(bias.max()) < -10:
                bias.fill_(-4.0)
        self._schedule(state)
        metrics["stage_steps"] = self.stage_steps  # the progress bar's new end
        metrics["event"] = (
            f"memory stage: {self.stage_steps} steps teaching the model to read its fact "
            "memory (--memory-steps; --memory-training off skips it)"
        )
        return True

    def _schedule(self, state: TrainState) -> None:
        """Sets `state.lr_scale` so that the next step's learning rate is the stage's: the
        trainer's schedule from `peak_lr` over `stage_steps` (warm-up and cosine decay)."""
        from ghost.train.loop import learning_rate

        cfg = state.config
        stage = learning_rate(
            replace(cfg, lr=self._peak_lr), state.step - self._started, self.stage_steps
        )
        base = learning_rate(cfg, state.step, None if cfg.steps == "auto" else int(cfg.steps))
        state.lr_scale = stage / base

    def record(self) -> dict | None:
        """How the memory was trained, for the run's config (None: it was not)."""
        if not self.reading:
            return None
        return {**asdict(self), "started": self._started if self.stage_steps else 0}

    def state_dict(self) -> dict:
        return {"started": self._started, "peak_lr": self._peak_lr}

    def load_state_dict(self, state: dict) -> None:
        self._started, self._peak_lr = state["started"], float(state["peak_lr"])

    def _keeps_own_row(self, rng: random.Random) -> bool:
        share = self.stage_own_rows  # (no draw at 0 or 1: the other draws stay as they were)
        return share >= 1 or (share > 0 and rng.random() >= 1 - share)

    def _row(self, state: TrainState, question: str, answer: str):
        """A rendered Q&A row cut as QABatcher cuts one: its start goes, its answer stays."""
        record = {"question": question, "answer": answer}
        ids, labels = qa_row(self.template, record, state.config.answer_only_loss)
        limit = state.seq_len or state.config.seq_len
        return ids[-limit:], labels[-limit:]

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        if not self.reading:
            return batch
        rng = random.Random(f"memory-{self.seed}-{state.step}")
        rows, kept = [], []
        self._distractor_rows = []
        asked, owns, excluded = [], [], []  # per row: question, facts it reads, facts it may not
        for i, index in enumerate(batch.indices.tolist()):
            if index < 0:  # a row another recipe added: no record, so no bank of its own
                own, shut = None, set()
                question = (
                    bytes(batch.input_ids[i].tolist()).rstrip(b"\0").decode("utf-8", "replace")
                )
            else:
                record = self.records[index]
                facts, question = list(record.get("facts") or []), record["question"]
                if rng.random() < self.no_memory:  # its bank: distractors only, or nothing
                    own, shut = (None if rng.random() < 0.5 else []), set(facts)
                else:
                    own, shut = facts, set()
            if own is None and self._frozen:
                continue  # a row without a bank teaches nothing while the weights are frozen
            if own and self._frozen and not self._keeps_own_row(rng):
                continue
            if own == []:  # (its record's facts, if any, are shut out of its bank)
                self._distractor_rows.append(len(rows))
            rows.append((batch.input_ids[i], batch.labels[i]))
            kept.append(i)
            asked.append(question)
            owns.append(own)
            excluded.append(shut)
        n, size = len(rows), len(batch.indices)  # (the added rows' shares are of the batch)
        made = fictional_facts(round(self.fictional * size), seed=f"{self.seed}-{state.step}")
        self._fictional = range(n, n + len(made))
        for fact in made:
            question = fact.question
            if self.reword and rng.random() < self.reword:  # more ways of asking (no draw at 0)
                question = reword(fact, rng)
            rows.append(self._row(state, question, fact.answer))
            asked.append(question)
            owns.append([fact.fact])
            excluded.append(set())
        for edit in rng.sample(self.edits, min(len(self.edits), round(self.counterfactual * size))):
            rows.append(self._row(state, edit.question, edit.answer))
            asked.append(edit.question)
            owns.append([edit.fact])
            excluded.append(self.true_facts.get(edit.question, set()))
        prompts = [self.template.prompt(q) for q in asked]  # what retrieval is keyed by
        banks, encoded, queries, corpus, lexicon, lexical = self._banks(
            state, rng, prompts, owns, excluded, made
        )
        questions = [(row, own[0]) for row, own in enumerate(owns) if own]
        # (row, position of its first fact in its bank): the bank's hard-negative loss
        self._bank_targets = [(row, banks[row].index(f)) for row, f in questions if banks[row]]
        input_ids, labels = pad_rows(rows)
        added = torch.full((len(rows) - n,), -1, dtype=torch.long)
        indices = torch.cat([batch.indices[kept], added])
        keyed = self.retrieval_weight and len(questions) > 1
        self._fact_keys = encoded.keys_of([f for _, f in questions]) if keyed else None
        self._query_keys = encoded.keys_of(queries)
        memory = state.model.memory.read_rows(
            encoded, banks, self._query_keys, lexical, corpus, queries, lexicon
        )
        if memory is not None:  # the copy head mixes only where a byte is scored
            memory.read_at = scored_positions(labels)
        state.forward_kwargs["memory"] = memory
        self._questions = questions
        return Batch(input_ids, labels, indices)

    def _banks(self, state, rng, prompts, owns, excluded, made):
        """Each row's bank: its own facts plus the distractors its retrieval would bring, the
        candidates nearest its prompt by the current encoder's keys plus the lexical score
        (hard negatives, as top-k retrieval gives them at inference), from a pool of dataset
        and fictional facts.

        One encoder pass, with gradient, over the pool, the facts read and the prompts: its
        keys (detached) choose the banks, and its states and keys are what the rows read and
        the retrieval loss trains. The lexical scores, with word weights from the pool and
        the facts read (`corpus`, as a bank holds the fact asked about at inference), are
        computed once: for the choice and for the copy head. Returns (banks, the encoded
        texts, the prompts as keyed, corpus, its `LexicalIndex`, lexical (R, C) scores over
        corpus)."""
        pool = rng.sample(self.all_facts, min(len(self.all_facts), self.pool_size))
        extra = fictional_facts(self.pool_size, seed=f"{self.seed}-{state.step}-distractors")
        pool = list(dict.fromkeys(pool + [f.fact for f in made + extra]))
        owns = [None if own is None else own[: self.bank_size] for own in owns]
        corpus = list(dict.fromkeys([*pool, *(f for own in owns if own for f in own)]))
        memory = state.model.memory
        queries = memory.query_texts(prompts)
        # In fp32 whatever the run's precision: with the encoder under bf16 autocast, facts
        # in wordings training never used were answered 41% of the time instead of 76%
        # (benchmarks/memory_facts.py, small preset, 500 steps, one seed each), for ~2% of
        # the step time.
        # (Encoding the candidates that are no row's own fact without gradient cost less, but
        # read worse on validation: docs/memory.md.)
        encoded = memory.encode([*corpus, *queries])
        lexicon = LexicalIndex(corpus)
        lexical = lexicon.scores(queries).to(encoded.keys.device)  # (R, C)
        with torch.no_grad():  # pool = corpus[: len(pool)]
            cosine = encoded.keys_of(queries) @ encoded.keys_of(pool).T  # (R, len(pool))
        similarity = cosine + lexical[:, : len(pool)]
        order = similarity.argsort(dim=-1, descending=True).tolist()
        banks = []
        for row, own in enumerate(owns):
            if own is None:
                banks.append([])
                continue
            skip = set(own) | excluded[row]
            nearest = [pool[c] for c in order[row] if pool[c] not in skip]
            bank = own + nearest[: self.bank_size - len(own)]
            rng.shuffle(bank)
            banks.append(bank)
        return banks, encoded, queries, corpus, lexicon, lexical

    def on_loss(self, state, loss, output, batch):
        if self.distractor_weight != 1.0 and self._distractor_rows:
            # The loop's loss is the sum over target bytes / their count: these rows' bytes
            # count `distractor_weight` times (memory training runs in one process).
            rows = torch.tensor(self._distractor_rows, device=batch.labels.device)
            extra = next_byte_loss(output.logits[rows], batch.labels[rows], "sum")
            loss = loss + (self.distractor_weight - 1.0) * extra / batch.n_target_bytes
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
        memory = state.forward_kwargs.get("memory")
        if memory is not None and memory.prior is not None and self._bank_targets:
            # Hard negatives: against the other entries of its own bank (the facts nearest
            # its question), each question's fact must still score highest.
            rows = torch.tensor([r for r, _ in self._bank_targets], device=device)
            where = torch.tensor([m for _, m in self._bank_targets], device=device)
            present = memory.mask.any(-1)[rows]  # (Q, M)
            bank = (memory.prior[rows] / self.temperature).masked_fill(~present, -1e4)
            retrieval = (retrieval + F.cross_entropy(bank, where)) / 2
        self._retrieval_loss = float(retrieval.detach())
        return loss + self.retrieval_weight * retrieval

    def on_optimizer_step(self, state: TrainState) -> None:
        if self.reading:
            state.model.memory.invalidate()  # states of the bank made by the old encoder weights

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self.stage_steps and self.reading and not self.stage_done(state):
            self._schedule(state)  # the next step's learning rate
        if self._retrieval_loss is not None:
            metrics["retrieval_loss"] = self._retrieval_loss
        self._retrieval_loss = None
        if state.rows is not None and len(self._fictional):
            # Facts drawn fresh this step, answerable only from the bank: how well the model
            # reads facts it never saw (teacher-forced, as batch_exact_match), a validation
            # signal from the training pool's entities, never the benchmark's.
            correct = state.rows.correct[self._fictional.start : self._fictional.stop]
            metrics["memory_exact_match"] = float(correct.float().mean())
