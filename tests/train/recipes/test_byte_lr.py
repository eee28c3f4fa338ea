"""byte-lr: each byte row of the (tied) embedding moves m_b times the plain step, with m_b from
the byte counts of the training data; a resume continues exactly."""

import json
from collections import Counter

import pytest
import torch
from tiny_runs import tiny_config

from ghost.config import GhostConfig
from ghost.data.records import load_data
from ghost.errors import GhostInputError
from ghost.train.hooks import Recipe
from ghost.train.loop import make_batcher, train
from ghost.train.recipes import build_recipes
from ghost.train.recipes.byte_lr import byte_update_scale


class Snapshot(Recipe):
    """Weights at the start of training and after the last step, and the multipliers used."""

    name = "snapshot"

    def on_train_begin(self, state):
        self.before = {k: v.detach().clone() for k, v in state.model.named_parameters()}
        self.update_scale = state.update_scale  # filled by the recipes whose hooks run later

    def on_train_end(self, state):
        self.after = {k: v.detach().clone() for k, v in state.model.named_parameters()}


def _one_step(qa_file, out, recipes):
    snap = Snapshot()
    cfg = tiny_config(qa_file, out, steps=1, lr=1e-2, warmup_steps=0, recipes=recipes)
    train(cfg, recipes=[snap])
    return snap


def _expected_multipliers(qa_file, alpha=0.5, lo=0.25, hi=4.0):
    """m_b written out from the definition, over the bytes the Q&A batcher holds."""
    cfg = tiny_config(qa_file, "unused")
    batcher = make_batcher(load_data(str(qa_file)), GhostConfig.from_preset("tiny"), cfg)
    counts = Counter(b for ids, _ in batcher.samples for b in ids.tolist())
    mean = sum(counts.values()) / len(counts)
    m = [min(hi, max(lo, (mean / counts[b]) ** alpha)) if b in counts else 1.0 for b in range(256)]
    return torch.tensor(m).view(256, 1), torch.tensor([b in counts for b in range(256)])


def test_each_byte_row_moves_m_b_times_the_plain_step(tmp_path, qa_file):
    plain = _one_step(qa_file, tmp_path / "plain", {})
    # Narrow clamps, so that this small set reaches both ends.
    options = {"min_scale": 0.5, "max_scale": 2.0}
    scaled = _one_step(qa_file, tmp_path / "byte-lr", {"byte-lr": options})
    m, seen = _expected_multipliers(qa_file, lo=0.5, hi=2.0)
    assert torch.equal(plain.before["embed.weight"], scaled.before["embed.weight"])
    torch.testing.assert_close(scaled.update_scale["embed.weight"], m)
    assert (m == 2.0).any() and (m == 0.5).any() and ((0.5 < m) & (m < 2) & (m != 1)).any()

    step = plain.after["embed.weight"] - plain.before["embed.weight"]  # (256, D)
    moved = scaled.after["embed.weight"] - scaled.before["embed.weight"]
    # The step is ~lr = 1e-2 per weight; 1e-8 is a few float32 roundings of weights ~0.05.
    torch.testing.assert_close(moved, m * step, atol=1e-8, rtol=1e-5)
    assert not torch.allclose(moved[seen], step[seen])  # it did change something
    # Bytes absent from the data keep the plain step; the tied head's softmax still moves them.
    assert step[~seen].abs().sum() > 0
    torch.testing.assert_close(moved[~seen], step[~seen], atol=1e-8, rtol=1e-5)
    for name in plain.after:
        if name != "embed.weight":
            assert torch.equal(scaled.after[name], plain.after[name]), name


def test_text_data_counts_the_stream():
    text = "the quick brown fox jumps over the lazy dog\n" * 20 + "QQQ{}"
    data = torch.tensor(list(text.encode()))
    m = byte_update_scale(data, alpha=0.5, min_scale=0.25, max_scale=4.0)
    counts = torch.bincount(data, minlength=256).double()
    seen = counts > 0
    mean = counts[seen].mean()
    assert m[ord(" ")] == pytest.approx(max(0.25, float((mean / counts[ord(" ")]) ** 0.5)))
    assert m[ord("{")] == pytest.approx(min(4.0, float((mean / 1) ** 0.5)))
    assert m[ord("Q")] > m[ord("o")] > m[ord(" ")]  # rarer bytes move faster
    assert torch.equal(m[~seen], torch.ones(int((~seen).sum())))
    assert torch.equal(byte_update_scale(data, 0.0, 0.25, 4.0), torch.ones(256))  # alpha 0: plain


def test_text_runs_use_the_text_streams_bytes(tmp_path):
    path = tmp_path / "notes.jsonl"
    lines = [f"Note {i}: the {w} sat on mat #{i * 7}." for i, w in enumerate(["cat", "dog"] * 20)]
    path.write_text("".join(json.dumps({"text": line}) + "\n" for line in lines))
    snap = Snapshot()
    train(tiny_config(path, tmp_path / "run", steps=1, recipes={"byte-lr": {}}), recipes=[snap])
    stream = "\n\n".join(lines).encode()
    expected = byte_update_scale(torch.tensor(list(stream)), 0.5, 0.25, 4.0).view(256, 1)
    assert torch.equal(snap.update_scale["embed.weight"], expected)


def test_an_untied_head_gets_the_same_row_multipliers(tmp_path, qa_file):
    snap = Snapshot()
    cfg = tiny_config(qa_file, tmp_path / "run", steps=1, recipes={"byte-lr": {}})
    train(cfg, model_config=GhostConfig.from_preset("tiny", tie_embeddings=False), recipes=[snap])
    m, _ = _expected_multipliers(qa_file)
    torch.testing.assert_close(snap.update_scale["head.weight"], m)
    torch.testing.assert_close(snap.update_scale["embed.weight"], m)


def test_resume_continues_exactly(tmp_path, qa_file):
    def run(out, steps, resume=False):
        recipes = {"byte-lr": {"alpha": 1.0}}
        cfg = tiny_config(qa_file, out, steps=steps, save_every=4, recipes=recipes, resume=resume)
        return train(cfg)

    straight = run(tmp_path / "a", 8)
    run(tmp_path / "b", 4)
    resumed = run(tmp_path / "b", 8, resume=True)
    assert resumed.steps == 8
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "options, message",
    [
        ({"basis": "entropy"}, "basis must be one of frequency"),
        ({"min_scale": 2.0, "max_scale": 1.0}, "0 < min_scale <= max_scale"),
        ({"min_scale": 0}, "0 < min_scale <= max_scale"),
        ({"alpha": -1}, "alpha must be >= 0"),
        ({"alpha": "big"}, "alpha must be a number"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(GhostInputError, match=message):
        build_recipes({"byte-lr": options})
