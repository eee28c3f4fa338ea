"""grad-checkpoint: the blocks run under activation checkpointing, with the same loss and
gradients as the plain pass; a resume continues exactly."""

import torch
from tiny_runs import tiny_config
from update_scale_runs import assert_resume_is_exact

import ghost.model.ghost as ghost_model
from ghost.train.loop import train


def test_checkpointed_blocks_take_the_same_step(tmp_path, qa_file, monkeypatch):
    plain = train(tiny_config(qa_file, tmp_path / "plain", steps=1, lr=1e-2, warmup_steps=0))
    calls = []

    def counting_checkpoint(*args, **kwargs):
        calls.append(1)
        return torch.utils.checkpoint.checkpoint(*args, **kwargs)

    monkeypatch.setattr(ghost_model, "checkpoint", counting_checkpoint)
    cfg = tiny_config(
        qa_file,
        tmp_path / "ckpt",
        steps=1,
        lr=1e-2,
        warmup_steps=0,
        recipes={"grad-checkpoint": {}},
    )
    checkpointed = train(cfg)
    assert checkpointed.model.gradient_checkpointing is True
    assert len(calls) == len(checkpointed.model.layers)  # every block of the one step
    assert checkpointed.metrics["loss"] == plain.metrics["loss"]
    for (name, a), b in zip(
        plain.model.state_dict().items(), checkpointed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)


def test_resume_continues_exactly(tmp_path, qa_file):
    assert_resume_is_exact(qa_file, tmp_path, {"grad-checkpoint": {}})
