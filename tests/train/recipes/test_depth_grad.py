"""depth-grad: block i moves m_i = first^(1-t) last^t times the plain step (t = i/(L-1)), the
rest moves the plain step; a resume continues exactly; it composes with byte-lr."""

import pytest
import torch
from update_scale_runs import assert_resume_is_exact, assert_step_scaled, one_step

from ghost.errors import GhostInputError
from ghost.train.recipes import build_recipes
from ghost.train.recipes.depth_grad import depth_multipliers


def _block(name):
    """The block index of a parameter name, or None outside the blocks."""
    return int(name.split(".")[1]) if name.startswith("layers.") else None


def test_multipliers_interpolate_geometrically_from_first_to_last():
    assert depth_multipliers(3, 4.0, 1.0) == pytest.approx([4.0, 2.0, 1.0])
    assert depth_multipliers(5, 1.0, 16.0) == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0])
    assert depth_multipliers(1, 3.0, 1.0) == [3.0]
    assert depth_multipliers(4, 1.5, 1.5) == pytest.approx([1.5] * 4)


def test_each_block_moves_m_i_times_the_plain_step(tmp_path, qa_file):
    plain = one_step(qa_file, tmp_path / "plain", {})
    scaled = one_step(qa_file, tmp_path / "depth", {"depth-grad": {"first": 4.0, "last": 1.0}})
    m = [4.0, 2.0, 1.0]  # the tiny preset has 3 blocks
    moved_blocks = set()
    for name in plain.before:
        i = _block(name)
        if i is None:  # embedding/head, final norm, memory encoder: the plain step
            assert name not in scaled.update_scale
            assert torch.equal(scaled.after[name], plain.after[name]), name
            continue
        assert scaled.update_scale[name] == m[i]
        assert_step_scaled(scaled, plain, name, m[i])
        if plain.change(name).abs().sum() > 0:
            moved_blocks.add(i)
    assert moved_blocks == {0, 1, 2}


def test_resume_continues_exactly(tmp_path, qa_file):
    assert_resume_is_exact(qa_file, tmp_path, {"depth-grad": {}})


def test_composes_with_byte_lr(tmp_path, qa_file):
    plain = one_step(qa_file, tmp_path / "plain", {})
    byte_only = one_step(qa_file, tmp_path / "byte", {"byte-lr": {}})
    both = one_step(qa_file, tmp_path / "both", {"byte-lr": {}, "depth-grad": {}})
    m_bytes = byte_only.update_scale["embed.weight"]  # (256, 1)
    m_blocks = depth_multipliers(3, 2.0, 1.0)  # the defaults
    assert torch.equal(both.update_scale["embed.weight"], m_bytes)
    assert_step_scaled(both, plain, "embed.weight", m_bytes)
    for name in plain.before:
        i = _block(name)
        if i is not None:
            assert both.update_scale[name] == m_blocks[i]
            assert_step_scaled(both, plain, name, m_blocks[i])
        elif name != "embed.weight":
            assert torch.equal(both.after[name], plain.after[name]), name


@pytest.mark.parametrize(
    "options, message",
    [
        ({"first": 0}, "first must be a positive number"),
        ({"last": -1.0}, "last must be a positive number"),
        ({"first": "deep"}, "first must be a positive number"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(GhostInputError, match=message):
        build_recipes({"depth-grad": options})


def test_integer_options_become_float_multipliers():
    (recipe,) = build_recipes({"depth-grad": {"first": 3, "last": 1}})
    assert isinstance(recipe.first, float) and isinstance(recipe.last, float)
