import csv
import json
from types import SimpleNamespace

import pytest
import torch
from tiny_runs import CAPITALS, assert_resumes_exactly, tiny_config

from ghost.config import GhostConfig
from ghost.data.batches import IGNORE
from ghost.data.records import load_data
from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe
from ghost.train.loop import make_batcher, train
from ghost.train.recipes import build_recipes
from ghost.train.recipes.curriculum import SequenceLengthCurriculum


def _state(total_steps, seq_len=64, steps_per_epoch=10, step=0):
    """What the curriculum reads of a TrainState."""
    return SimpleNamespace(
        step=step,
        total_steps=total_steps,
        seq_len=None,
        config=SimpleNamespace(seq_len=seq_len),
        batcher=SimpleNamespace(steps_per_epoch=steps_per_epoch),
    )


def _write_text(path):
    """About 6 KB of varied sentences as one plain-text file."""
    subjects = ["The river", "A small cat", "Our old radio", "Every morning", "The red kite"]
    verbs = ["runs past", "waits for", "sings about", "turns toward", "forgets"]
    objects = ["the mill.", "a quiet town.", "seven lanterns.", "the harbour wall.", "June."]
    lines = [f"{s} {v} {o}" for s in subjects for v in verbs for o in objects]
    path.write_text("\n".join(lines * 2), encoding="utf-8")
    return path


def test_the_length_grows_linearly_over_a_fixed_run_as_in_the_original():
    curriculum = SequenceLengthCurriculum()  # 16 -> the run's seq_len (64 here) over all steps
    state = _state(total_steps=100)
    for step in range(100):  # the original: int(16 + step / steps * 48)
        assert curriculum.length_at(state, step) == int(16 + step / 100 * 48)
    assert [curriculum.length_at(state, s) for s in (0, 25, 50, 99, 100, 150)] == [
        16,
        28,
        40,
        63,
        64,
        64,
    ]
    half = SequenceLengthCurriculum(start=8, end=40, span=0.5)
    assert [half.length_at(state, s) for s in (0, 25, 49, 50, 99)] == [8, 24, 39, 40, 40]


def test_with_auto_steps_the_length_grows_over_span_epochs():
    curriculum = SequenceLengthCurriculum(span_epochs=4)
    state = _state(total_steps=None, steps_per_epoch=10)  # the span is 40 steps
    assert [curriculum.length_at(state, s) for s in (0, 10, 20, 39, 40, 1000)] == [
        16,
        28,
        40,
        62,
        64,
        64,
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"start": 1},
        {"start": 32, "end": 16},
        {"span": 0},
        {"span": 1.5},
        {"span_epochs": 0},
        {"start": "16"},
        {"length": 16},
    ],
)
def test_bad_options_are_input_errors(options):
    with pytest.raises(GhostInputError, match="curriculum"):
        build_recipes({"curriculum": options})


def test_a_start_or_end_beyond_the_runs_seq_len_is_an_input_error():
    for curriculum in (SequenceLengthCurriculum(start=80), SequenceLengthCurriculum(end=128)):
        with pytest.raises(GhostInputError, match="seq_len"):
            curriculum.on_train_begin(_state(total_steps=10, seq_len=64))


def test_short_qa_windows_keep_the_answer_so_every_row_has_targets(qa_file, tmp_path):
    cfg = tiny_config(qa_file, tmp_path / "run", steps=100, augment="none")  # rows as written
    batcher = make_batcher(load_data(str(qa_file)), GhostConfig.from_preset("tiny"), cfg)
    assert all(len(f"What is the capital of {c}?") > 16 for c in CAPITALS)
    state = _state(total_steps=100, seq_len=cfg.seq_len)
    state.batcher = batcher
    SequenceLengthCurriculum().on_train_begin(state)
    assert state.seq_len == 16
    batch = batcher.next_batch(state.seq_len)
    assert batch.input_ids.shape == (len(CAPITALS), 16)  # every record was cut
    targets = batch.labels[:, 1:] != IGNORE  # position t predicts byte t + 1
    assert (targets.sum(1) >= 1).all()
    for row, index in zip(batch.input_ids, batch.indices.tolist(), strict=True):
        full, _ = batcher.samples[index]
        assert torch.equal(row, full[-16:])  # the question's start went, the answer stayed


def test_every_trained_qa_row_has_target_bytes_in_a_run(qa_file, tmp_path):
    class TargetSpy(Recipe):
        name = "target-spy"

        def __init__(self):
            self.fewest, self.widths = [], []

        def on_loss(self, state, loss, output, batch):
            self.fewest.append(int(state.rows.n_targets.min()))
            self.widths.append(batch.input_ids.shape[1])
            return loss

    spy = TargetSpy()
    train(
        tiny_config(qa_file, tmp_path / "run", steps=4, seq_len=64, recipes={"curriculum": {}}),
        recipes=[spy],
    )
    assert min(spy.fewest) >= 1
    assert spy.widths[0] == 16  # the capitals' records are all longer than 16 bytes


def test_metrics_seq_len_follows_the_schedule(tmp_path):
    text = _write_text(tmp_path / "story.txt")
    cfg = tiny_config(text, tmp_path / "run", steps=8, seq_len=64, recipes={"curriculum": {}})
    train(cfg)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["seq_len"]) for r in rows] == [int(16 + s / 8 * 48) for s in range(8)]


def test_metrics_seq_len_follows_the_epoch_schedule_with_auto_steps(tmp_path):
    text = tmp_path / "story.jsonl"
    with open(text, "w", encoding="utf-8") as f:
        for line in _write_text(tmp_path / "story.txt").read_text().splitlines():
            f.write(json.dumps({"text": line}) + "\n")
    recipes = {"curriculum": {"start": 8, "end": 32, "span_epochs": 0.2}}
    cfg = tiny_config(text, tmp_path / "run", steps="auto", max_steps=6, seq_len=64)
    train(cfg, recipes=build_recipes(recipes))
    batcher = make_batcher(load_data(str(text)), GhostConfig.from_preset("tiny"), cfg)
    span = 0.2 * batcher.steps_per_epoch  # 4 steps: the end is reached within the run
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    expected = [int(8 + 24 * min(1, s / span)) for s in range(len(rows))]
    assert len(rows) == 6 and [int(r["seq_len"]) for r in rows] == expected
    assert expected[0] == 8 and expected[-1] == 32


def test_a_resumed_run_continues_exactly(qa_file, tmp_path):
    # The schedule depends on the run's total steps, so the first part is a 12-step run
    # stopped at step 6 (as by Ctrl-C), not a 6-step run.
    def config(out, **kw):
        recipes = {"curriculum": {"start": 8, "end": 48}}
        return tiny_config(
            qa_file, out, steps=12, save_every=6, lr=1e-2, eval_every=20, recipes=recipes, **kw
        )

    runs = assert_resumes_exactly(config, steps=12, stop_at=6, tmp_path=tmp_path)
    widths = [
        [int(r["seq_len"]) for r in csv.DictReader(open(run / "metrics.csv"))] for run in runs
    ]
    assert widths[0] == widths[1] and widths[0][0] == 8
