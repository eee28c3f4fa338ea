"""What the update-multiplier recipe tests share: one-step runs from the same start, the check
that a step was scaled, and the straight-vs-resumed comparison."""

import torch
from tiny_runs import assert_resumes_exactly, tiny_config

from ghost.train.hooks import Recipe
from ghost.train.loop import train


class Snapshot(Recipe):
    """Weights at the start of training and after the last step, and the multipliers used."""

    name = "snapshot"

    def on_train_begin(self, state):
        self.before = {k: v.detach().clone() for k, v in state.model.named_parameters()}
        self.update_scale = state.update_scale  # filled by the recipes whose hooks run later

    def on_train_end(self, state):
        self.after = {k: v.detach().clone() for k, v in state.model.named_parameters()}

    def change(self, name: str) -> torch.Tensor:
        return self.after[name] - self.before[name]


def one_step(data, out, recipes, model_config=None) -> Snapshot:
    """One step at lr 1e-2 without warm-up (steps of ~1e-2 per weight) from the seed-0 start."""
    snap = Snapshot()
    cfg = tiny_config(data, out, steps=1, lr=1e-2, warmup_steps=0, recipes=recipes)
    train(cfg, model_config=model_config, recipes=[snap])
    return snap


def assert_step_scaled(scaled: Snapshot, plain: Snapshot, name: str, m) -> None:
    """scaled's step of `name` is m times plain's, from the same start, up to rounding.

    p_before + m * (p_after - p_before) rounds at the scale of the weight, not of the step:
    the tolerance is a few float32 ulps of the largest weight (A_log reaches log 16 = 2.8)."""
    assert torch.equal(scaled.before[name], plain.before[name]), name
    ulps = 4 * torch.finfo(torch.float32).eps * float(plain.before[name].abs().max())
    torch.testing.assert_close(
        scaled.change(name), m * plain.change(name), atol=ulps, rtol=1e-5, msg=name
    )


def assert_resume_is_exact(data, tmp_path, recipes) -> None:
    """8 steps straight == the same run stopped at step 4 and resumed: equal weights."""

    def config(out, **kw):
        return tiny_config(data, out, steps=8, recipes=recipes, **kw)

    assert_resumes_exactly(config, steps=8, stop_at=4, tmp_path=tmp_path)
