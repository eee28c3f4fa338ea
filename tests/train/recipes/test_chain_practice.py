"""chain-practice: a practice row scores its hop questions, separators and end, never the
answers; each step adds round(share x batch) fresh rows (index -1), the same ones for the same
(seed, step); it needs --reasoning chain; it trains beside memory training (whose bank skips
the added rows) and resumes exactly."""

import pytest
import torch
from tiny_runs import assert_resumes_exactly, tiny_config

from ghost.config import GhostConfig
from ghost.data.batches import IGNORE, Batch
from ghost.data.fictional_chains import practice_chains
from ghost.data.template import STEP, QATemplate
from ghost.errors import GhostInputError
from ghost.train.loop import train
from ghost.train.recipes import build_recipes
from ghost.train.recipes.chain_practice import ChainPractice

HOPS = [
    ("In which country is the Brelo Gate?", "Zorvania"),
    ("What is the capital of Zorvania?", "Quessaro"),
]


def practice() -> ChainPractice:
    recipe = ChainPractice()
    recipe.template = QATemplate.from_config(GhostConfig.from_preset("tiny", qa_steps=True))
    return recipe


def test_a_row_scores_the_hop_questions_and_the_end_only():
    recipe = practice()
    ids, labels = recipe.row("What is the capital of the country where the Brelo Gate is?", HOPS)
    scored = bytes(int(b) for b in ids[labels != IGNORE]).decode("utf-8")
    asked = "".join(STEP + recipe.template.prompt(q).decode("utf-8") for q, _ in HOPS)
    assert scored == asked + chr(recipe.template.marker)
    record = {"question": "What is the capital of the country where the Brelo Gate is?"}
    whole, _ = recipe.template.render({**record, "answer": "Quessaro"}, HOPS)
    assert bytes(ids.tolist()) == whole  # the row is the record as chain training renders it
    assert torch.equal(ids[labels != IGNORE], labels[labels != IGNORE])


class Step:
    def __init__(self, step, seed=0):
        self.step, self.config = step, type("C", (), {"seed": seed})()


def test_each_step_adds_fresh_rows_seeded_by_the_step():
    recipe = practice()
    batch = Batch(torch.ones(8, 20, dtype=torch.long), torch.ones(8, 20, dtype=torch.long),
                  torch.arange(8))  # fmt: skip
    grown = recipe.on_batch(Step(3), batch)
    assert grown.input_ids.shape[0] == 10 and grown.indices[8:].tolist() == [-1, -1]
    assert torch.equal(grown.input_ids[:8, :20], batch.input_ids)
    again, later = recipe.on_batch(Step(3), batch), recipe.on_batch(Step(4), batch)
    assert torch.equal(again.input_ids, grown.input_ids)
    assert not torch.equal(later.input_ids[8:, :40], grown.input_ids[8:, :40])
    questions = [q for q, _ in practice_chains(50, "x")]
    assert len(set(questions)) == 50  # a fresh country per question


def test_bad_share_and_data_without_hops_are_refused(qa_file, tmp_path):
    with pytest.raises(GhostInputError, match="share"):
        build_recipes({"chain-practice": {"share": 0}})
    with pytest.raises(GhostInputError, match="--reasoning chain"):
        train(tiny_config(qa_file, tmp_path / "run", steps=2), recipes=[ChainPractice()])


def test_trains_beside_memory_training_and_resumes_exactly(tmp_path):
    def config(out, **overrides):
        return tiny_config(
            "facts200", out, steps=6, reasoning="chain", memory_training="on", memory_steps=0,
            recipes={"chain-practice": {"share": 0.5}}, **overrides,
        )  # fmt: skip

    assert_resumes_exactly(config, steps=6, stop_at=3, tmp_path=tmp_path)
