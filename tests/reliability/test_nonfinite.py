"""Numerical faults: a step whose loss or gradients are NaN/inf is skipped (weights and
optimiser state untouched) and counted; a run that keeps failing stops with a clear
message and its last good checkpoint intact."""

import csv
import math

import pytest
import torch
from safetensors.torch import load_file
from tiny_runs import tiny_config

import ghost.train.loop
from ghost.cli import main
from ghost.train.hooks import Recipe
from ghost.train.loop import train


class InfiniteGradient(torch.autograd.Function):
    """Identity forward, infinite gradient: a finite loss whose backward blows up."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, math.inf)


class Sabotage(Recipe):
    """Spoils the loss (NaN) or its gradient (inf) at chosen steps; records what they change."""

    name = "sabotage"

    def __init__(self, nan_steps, inf_grad_steps):
        self.nan_steps, self.inf_grad_steps = set(nan_steps), set(inf_grad_steps)
        self.before = None
        self.unchanged = []

    def _snapshot(self, state):
        weights = {k: v.clone() for k, v in state.model.state_dict().items()}
        moments = [s["exp_avg"].clone() for s in state.optimizer.state.values()]
        return weights, moments

    def on_loss(self, state, loss, output, batch):
        step = state.step + 1
        if step in self.nan_steps | self.inf_grad_steps:
            self.before = self._snapshot(state)
        if step in self.nan_steps:
            return loss * math.nan
        if step in self.inf_grad_steps:
            return InfiniteGradient.apply(loss)
        return loss

    def on_step_end(self, state, metrics):
        if self.before is not None:
            (w0, m0), (w1, m1) = self.before, self._snapshot(state)
            self.unchanged.append(
                all(torch.equal(w0[k], w1[k]) for k in w0)
                and all(torch.equal(a, b) for a, b in zip(m0, m1, strict=True))
            )
            self.before = None


def test_nan_and_inf_steps_are_skipped_counted_and_never_reach_the_weights(tmp_path, qa_file):
    sabotage = Sabotage(nan_steps=[3, 4], inf_grad_steps=[6])
    result = train(
        tiny_config(qa_file, tmp_path / "run", lr=1e-2, steps=10),
        recipes=[sabotage],
    )
    assert result.steps == 10 and result.nonfinite_steps == 3
    assert sabotage.unchanged == [True, True, True]
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        losses = {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}
    assert math.isnan(losses[3]) and math.isnan(losses[4]) and math.isfinite(losses[5])
    assert losses[10] < losses[1]  # and training went on learning


@pytest.fixture
def loss_turns_nan_after(monkeypatch):
    """Make every step's loss NaN after the first `good` ones (in whichever process trains)."""

    def install(good: int):
        real, calls = ghost.train.loop.next_byte_loss, []

        def failing(logits, labels, reduction="mean"):
            calls.append(1)
            return real(logits, labels, reduction) * (math.nan if len(calls) > good else 1.0)

        monkeypatch.setattr(ghost.train.loop, "next_byte_loss", failing)

    return install


def test_a_run_that_keeps_failing_stops_and_keeps_its_last_good_checkpoint(
    tmp_path, qa_file, capsys, loss_turns_nan_after
):
    loss_turns_nan_after(5)
    run = tmp_path / "run"
    config = tmp_path / "ghost.toml"
    config.write_text("max_nonfinite_steps = 4\n")
    code = main(
        [
            "train",
            "--data",
            str(qa_file),
            "--preset",
            "tiny",
            "--out",
            str(run),
            "--steps",
            "40",
            "--save-every",
            "2",
            "--keep-checkpoints",
            "1",
            "--threads",
            "1",
            "--quiet",
            "--config",
            str(config),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "loss or gradients were NaN or infinite for 4 steps in a row (steps 6-9)" in err
    assert "the last good checkpoint is " + str(run / "checkpoints" / "step-0000004") in err

    # No save happened during the failing streak, so pruning to 1 kept step 4's.
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-0000004"]
    saved = load_file(run / "checkpoints" / "step-0000004" / "model.safetensors")
    top = load_file(run / "model.safetensors")
    for name, tensor in saved.items():
        assert torch.isfinite(tensor).all() and torch.equal(top[name], tensor), name
