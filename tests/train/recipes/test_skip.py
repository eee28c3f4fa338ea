import csv
import json
from types import SimpleNamespace

import pytest
import torch
from tiny_runs import assert_resumes_exactly, tiny_config

from ghost.config import GhostConfig
from ghost.data.records import load_data
from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe
from ghost.train.loop import make_batcher, train
from ghost.train.recipes import build_recipes
from ghost.train.recipes.skip import ConfidenceSkipper

# The tiny model learns the sums' answer format within a few steps at this rate, so some
# rows pass a low threshold well inside 12 steps.
FAST = {"lr": 3e-2, "warmup_steps": 0, "eval_every": 20}


@pytest.fixture
def sums_file(tmp_path):
    """40 Q&A records (5 batches of 8): a record is seen again every 5 steps."""
    path = tmp_path / "sums.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for a in range(8):
            for b in range(5):
                record = {"question": f"What is {a} plus {b}?", "answer": str(a + b)}
                f.write(json.dumps(record) + "\n")
    return path


@pytest.fixture
def text_file(tmp_path):
    subjects = ["The river", "A small cat", "Our old radio", "Every morning", "The red kite"]
    verbs = ["runs past", "waits for", "sings about", "turns toward", "forgets"]
    objects = ["the mill.", "a quiet town.", "seven lanterns.", "the harbour wall.", "June."]
    lines = [f"{s} {v} {o}" for s in subjects for v in verbs for o in objects]
    path = tmp_path / "story.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _metrics(run):
    return list(csv.DictReader(open(run / "metrics.csv")))


def _skip_fractions(run):
    return [float(r["skip_fraction"]) for r in _metrics(run)]


@pytest.mark.parametrize(
    "options",
    [
        {"threshold": 0},
        {"threshold": 1.0},
        {"threshold": "high"},
        {"warmup": -1},
        {"final_all_steps": 1.5},
        {"max_skips": 0},
        {"scoring": "stale"},
        {"confidence": 0.5},
    ],
)
def test_bad_options_are_input_errors(options):
    with pytest.raises(GhostInputError, match="skip"):
        build_recipes({"skip": options})


def test_a_confident_record_is_skipped_at_most_max_skips_visits_in_a_row():
    skipper = ConfidenceSkipper(max_skips=2)
    skipper.skip_streak = [0, 0, 0]
    visits = [skipper.decide(1, 0.9) for _ in range(6)]
    assert visits == [True, True, False, True, True, False]
    assert skipper.decide(2, 0.5) is False and skipper.decide(0, float("nan")) is False


def test_when_every_candidate_is_known_the_least_confident_fill_the_batch(sums_file, tmp_path):
    cfg = tiny_config(sums_file, tmp_path / "run", steps=100)
    batcher = make_batcher(load_data(str(sums_file)), GhostConfig.from_preset("tiny"), cfg)
    skipper = ConfidenceSkipper(threshold=0.5, warmup=0)
    state = SimpleNamespace(step=0, total_steps=100, seq_len=None, batcher=batcher)
    skipper.on_train_begin(state)
    skipper.confidence = 0.6 + torch.arange(40) / 100  # all known; record i at 0.6 + i/100
    batch = skipper.on_batch(state, batcher.next_batch())
    # One epoch's worth of candidates (all 40 records) was drawn, then the 8 least confident.
    assert sorted(batch.indices.tolist()) == list(range(8))
    assert batch.input_ids.shape[0] == 8 and batcher.position == 40
    metrics = {}
    skipper.on_step_end(SimpleNamespace(rows=None), metrics)
    assert metrics["skip_fraction"] == 32 / 40


def test_warmup_and_final_steps_train_everything_and_other_steps_skip(sums_file, tmp_path):
    options = {"threshold": 0.05, "warmup": 6, "final_all_steps": 2}
    run = tmp_path / "run"
    train(tiny_config(sums_file, run, steps=12, recipes={"skip": options}, **FAST))
    rows = _metrics(run)
    fractions = [float(r["skip_fraction"]) for r in rows]
    assert fractions[:6] == [0.0] * 6 and fractions[-2:] == [0.0, 0.0]
    assert max(fractions[6:10]) > 0  # the model passes the threshold on some records
    assert [int(r["batch_rows"]) for r in rows] == [8] * 12  # refilled to a full batch


class TrainingForwardSpy(Recipe):
    """Records, for each step, the rows of the forward pass with gradient and which sample
    visits the skipper dropped (a sample can be drawn twice in a step across epochs)."""

    name = "forward-spy"

    def __init__(self, skipper):
        self.skipper = skipper
        self.grad_inputs, self.no_grad_forwards = [], 0
        self.trained_rows, self.skipped_rows, self.scoring_forwards = [], [], []

    def on_train_begin(self, state):
        def record(module, args):
            if torch.is_grad_enabled():
                self.grad_inputs.append(args[0])
            else:
                self.no_grad_forwards += 1

        self.handle = state.model.register_forward_pre_hook(record)

    def on_loss(self, state, loss, output, batch):
        (inputs,) = self.grad_inputs  # exactly one forward with gradient per step
        self.grad_inputs.clear()
        self.scoring_forwards.append(self.no_grad_forwards)  # since the last step's loss
        self.no_grad_forwards = 0
        self.trained_rows.append({_content(row) for row in inputs})
        # The skipper's own decisions, not the batch it returned, say what must not be here.
        only_skipped = sorted(set(self.skipper.skipped_now) - set(self.skipper.kept_now))
        rows = state.batcher.collate(only_skipped, state.seq_len).input_ids if only_skipped else []
        self.skipped_rows.append({_content(row) for row in rows})
        return loss

    def on_train_end(self, state):
        self.handle.remove()


def _content(row):
    """A row's bytes without its padding (byte 0 never occurs in these records)."""
    return bytes(row[row != 0].tolist())


@pytest.mark.parametrize("scoring", ["cached", "fresh"])
def test_a_skipped_sample_gets_no_forward_with_gradient(sums_file, tmp_path, scoring):
    skipper = ConfidenceSkipper(threshold=0.05, warmup=2, scoring=scoring, max_skips=50)
    spy = TrainingForwardSpy(skipper)
    train(tiny_config(sums_file, tmp_path / "run", steps=10, **FAST), recipes=[skipper, spy])
    assert sum(len(s) for s in spy.skipped_rows) > 0  # something was skipped
    for trained, skipped in zip(spy.trained_rows, spy.skipped_rows, strict=True):
        assert not trained & skipped
    # Only fresh scoring runs extra forwards (no gradient), one per draw, after the warm-up.
    # (The progress check's forwards come after the last step: eval_every 20 > 10 steps.)
    assert spy.scoring_forwards[:2] == [0, 0]
    if scoring == "fresh":
        assert min(spy.scoring_forwards[2:]) >= 1
    else:
        assert spy.scoring_forwards == [0] * 10


def test_fresh_scoring_works_on_text_and_cached_scoring_is_refused(text_file, tmp_path):
    cfg = tiny_config(text_file, tmp_path / "run", steps=8, seq_len=32, **FAST)
    with pytest.raises(GhostInputError, match="scoring=fresh"):
        train(cfg, recipes=[ConfidenceSkipper(warmup=2)])
    fresh = {"skip": {"scoring": "fresh", "warmup": 2, "threshold": 0.06}}
    train(tiny_config(text_file, tmp_path / "fresh", steps=8, seq_len=32, recipes=fresh, **FAST))
    fractions = _skip_fractions(tmp_path / "fresh")
    assert fractions[:2] == [0.0, 0.0] and max(fractions) > 0
    assert [int(r["batch_rows"]) for r in _metrics(tmp_path / "fresh")] == [8] * 8


def test_a_resumed_run_continues_exactly(sums_file, tmp_path):
    # The LR schedule depends on the run's total steps, so the first part is a 12-step run
    # stopped at step 6 (as by Ctrl-C), not a 6-step run.
    def config(out, **kw):
        recipes = {"skip": {"threshold": 0.05, "warmup": 2}}
        return tiny_config(sums_file, out, steps=12, save_every=6, recipes=recipes, **FAST, **kw)

    straight, resumed = assert_resumes_exactly(config, steps=12, stop_at=6, tmp_path=tmp_path)
    fractions = _skip_fractions(straight)
    assert sum(fractions[6:]) > 0  # skipping happened after the resume point
    assert fractions == _skip_fractions(resumed)
