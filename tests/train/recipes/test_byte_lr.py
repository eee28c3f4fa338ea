"""byte-lr: each byte row of the (tied) embedding moves m_b times the plain step, with m_b from
the byte counts of the training data; a resume continues exactly."""

import json
from collections import Counter

import pytest
import torch
from tiny_runs import tiny_config
from update_scale_runs import assert_resume_is_exact, assert_step_scaled, one_step

from ghost.config import GhostConfig
from ghost.data.records import load_data
from ghost.errors import GhostInputError
from ghost.train.loop import make_batcher
from ghost.train.recipes import build_recipes
from ghost.train.recipes.byte_lr import byte_update_scale


def _expected_multipliers(qa_file, alpha=0.5, lo=0.25, hi=4.0):
    """m_b written out from the definition, over the bytes the Q&A batcher holds."""
    cfg = tiny_config(qa_file, "unused")
    batcher = make_batcher(load_data(str(qa_file)), GhostConfig.from_preset("tiny"), cfg)
    counts = Counter(b for ids, _ in batcher.samples for b in ids.tolist())
    mean = sum(counts.values()) / len(counts)
    m = [min(hi, max(lo, (mean / counts[b]) ** alpha)) if b in counts else 1.0 for b in range(256)]
    return torch.tensor(m).view(256, 1), torch.tensor([b in counts for b in range(256)])


def test_each_byte_row_moves_m_b_times_the_plain_step(tmp_path, qa_file):
    plain = one_step(qa_file, tmp_path / "plain", {})
    # Narrow clamps, so that this small set reaches both ends.
    scaled = one_step(
        qa_file, tmp_path / "byte-lr", {"byte-lr": {"min_scale": 0.5, "max_scale": 2}}
    )
    m, seen = _expected_multipliers(qa_file, lo=0.5, hi=2.0)
    torch.testing.assert_close(scaled.update_scale["embed.weight"], m)
    assert (m == 2.0).any() and (m == 0.5).any() and ((0.5 < m) & (m < 2) & (m != 1)).any()

    assert_step_scaled(scaled, plain, "embed.weight", m)
    step, moved = plain.change("embed.weight"), scaled.change("embed.weight")  # (256, D)
    assert not torch.allclose(moved[seen], step[seen])  # it did change something
    # Bytes absent from the data keep the plain step, which is not zero: through the tied
    # head's softmax every row gets a gradient.
    assert step[~seen].abs().sum() > 0
    assert torch.equal(moved[~seen], step[~seen])
    for name in plain.after:
        if name != "embed.weight":
            assert torch.equal(scaled.after[name], plain.after[name]), name


def test_multipliers_follow_the_formula():
    text = "the quick brown fox jumps over the lazy dog\n" * 20 + "QQQ{}"
    data = torch.tensor(list(text.encode()))
    m = byte_update_scale(data, alpha=0.5, min_scale=0.25, max_scale=4.0)
    counts = torch.bincount(data, minlength=256).double()
    seen = counts > 0
    mean = float(counts[seen].mean())  # 48.5 over 31 distinct bytes
    assert m[ord(" ")] == pytest.approx(max(0.25, (mean / counts[ord(" ")].item()) ** 0.5))
    assert m[ord("Q")] == pytest.approx((mean / 3) ** 0.5)
    assert m[ord("{")] == 4.0  # (48.5 / 1) ** 0.5 = 7.0, clamped
    assert m[ord("Q")] > m[ord("o")] > m[ord(" ")]  # rarer bytes move faster
    assert torch.equal(m[~seen], torch.ones(int((~seen).sum())))
    assert torch.equal(byte_update_scale(data, 0.0, 0.25, 4.0), torch.ones(256))  # alpha 0: plain


def test_text_runs_count_the_text_stream(tmp_path):
    path = tmp_path / "notes.jsonl"
    lines = [f"Note {i}: the {w} sat on mat #{i * 7}." for i, w in enumerate(["cat", "dog"] * 20)]
    path.write_text("".join(json.dumps({"text": line}) + "\n" for line in lines))
    snap = one_step(path, tmp_path / "run", {"byte-lr": {}})
    stream = "\n\n".join(lines).encode()
    expected = byte_update_scale(torch.tensor(list(stream)), 0.5, 0.25, 4.0).view(256, 1)
    assert torch.equal(snap.update_scale["embed.weight"], expected)


def test_an_untied_head_gets_the_same_row_multipliers(tmp_path, qa_file):
    untied = GhostConfig.from_preset("tiny", tie_embeddings=False)
    plain = one_step(qa_file, tmp_path / "plain", {}, model_config=untied)
    scaled = one_step(qa_file, tmp_path / "byte-lr", {"byte-lr": {}}, model_config=untied)
    m, _ = _expected_multipliers(qa_file)
    for name in ("embed.weight", "head.weight"):
        torch.testing.assert_close(scaled.update_scale[name], m)
        assert_step_scaled(scaled, plain, name, m)


def test_resume_continues_exactly(tmp_path, qa_file):
    assert_resume_is_exact(qa_file, tmp_path, {"byte-lr": {"alpha": 1.0}})


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
