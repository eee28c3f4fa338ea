"""Practice answering through hops by copying: every step adds `share` x batch rows, each a
multi-hop question about a fictional country drawn for that step, answered through its hops.

    row = "Q: What is the capital of the country where the Brelo Gate is?\\nA: "   (no loss)
          STEP "Q: In which country is the Brelo Gate?\\nA: "                       (loss)
          "Zorvania"                                                              (no loss)
          STEP "Q: What is the capital of Zorvania?\\nA: "                           (loss)
          "Quessaro"                                                              (no loss)
          END                                                                     (loss)

Only what the question determines is scored: each hop question, the separators and where the
answer ends. No row repeats (the names are drawn per step from `ghost.data.fictional`'s
training pool), so the hop questions can only be written by copying the entity the question
names, and the second hop by copying the first hop's answer: what a model trained on
facts200's chains alone does not learn, recalling a training chain's entity instead. The
answers (fictional) are never scored. Paired with the context copy head (`--context-copy`),
which gives the model a way to copy bytes it has read (docs/distill.md, "A pointer over the
question").

Needs Q&A data answered through hops (`--reasoning chain`). The questions use facts200's
relations and training wordings (`ghost.data.fictional_chains`). The rows of a step come from
a generator seeded by (seed, step), so a resumed run adds exactly the rows of an
uninterrupted one and nothing needs saving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ghost.data.batches import IGNORE, Batch, QABatcher, pad_rows
from ghost.data.fictional_chains import practice_chains
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe, TrainState
from ghost.train.recipes import number_option


@dataclass
class ChainPractice(Recipe):
    """Add rows of fictional multi-hop questions, scored on their hop questions."""

    share: float = 0.25
    """Rows added per step, as a share of the batch's rows."""

    name: ClassVar[str] = "chain-practice"

    def __post_init__(self):
        self.share = number_option("chain-practice", "share", self.share)
        if not 0 < self.share <= 4:
            raise GhostInputError(
                f"recipe 'chain-practice': share must be in (0, 4], got {self.share}"
            )
        self.template = QATemplate(steps=True)

    def on_train_begin(self, state: TrainState) -> None:
        if not isinstance(state.batcher, QABatcher) or not state.model.config.qa_steps:
            raise GhostInputError(
                "chain-practice needs Q&A data answered through hops: add --reasoning chain"
            )
        self.template = QATemplate.from_config(state.model.config)

    def row(self, question: str, hops: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, labels) of one practice row: `question` answered through `hops`."""
        prompt = self.template.prompt(question)
        ids, labels = list(prompt), [IGNORE] * len(prompt)
        for asked, answer in self.template.stepped_parts(hops):
            ids += [*asked, *answer]
            labels += [*asked, *[IGNORE] * len(answer)]
        ids.append(self.template.marker)
        labels.append(self.template.marker)
        return torch.tensor(ids), torch.tensor(labels)

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        added = round(self.share * len(batch.indices))
        if not added:
            return batch
        chains = practice_chains(added, f"chain-practice-{state.config.seed}-{state.step}")
        rows = [(batch.input_ids[i], batch.labels[i]) for i in range(len(batch.indices))]
        rows += [self.row(question, hops) for question, hops in chains]
        input_ids, labels = pad_rows(rows)
        indices = torch.cat([batch.indices, torch.full((added,), -1, dtype=torch.long)])
        return Batch(input_ids, labels, indices)  # (index -1: no record of the data)
