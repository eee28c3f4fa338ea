"""What many tests share: a small memorisable Q&A set, seeded text, a tiny training config,
a recipe that stops a run as Ctrl-C would, and a tensor comparison on the scale of its terms."""

import json
import random
from pathlib import Path

import torch

from ghost.config import TrainConfig
from ghost.train.hooks import Recipe

WORDS = "def return class import for while if else print value list dict self yield".split()

CAPITALS = {
    "France": "Paris",
    "Peru": "Lima",
    "Japan": "Tokyo",
    "Kenya": "Nairobi",
    "Chile": "Santiago",
    "Egypt": "Cairo",
    "Spain": "Madrid",
    "Italy": "Rome",
}


def write_qa(path: Path) -> Path:
    """The eight capitals as Q&A JSONL at `path`."""
    with open(path, "w", encoding="utf-8") as f:
        for country, city in CAPITALS.items():
            question = f"What is the capital of {country}?"
            f.write(json.dumps({"question": question, "answer": city, "kind": "fact"}) + "\n")
    return path


def tiny_config(data, out, **overrides) -> TrainConfig:
    """The tiny preset at batch 8 on one thread, quiet: a run takes seconds."""
    settings = dict(
        data=str(data), out=str(out), preset="tiny", batch_size=8, threads=1, quiet=True
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def word_text(n_blocks: int = 40, seed: int = 0) -> str:
    """Seeded blank-line-separated blocks of 25 code-like words: text data for tests."""
    rng = random.Random(seed)
    return "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(25)) for _ in range(n_blocks))


class StopAt(Recipe):
    """Stops the run after `step` steps as Ctrl-C would: a checkpoint is saved there. (A run
    of fewer steps would not do: the LR schedule and some recipes depend on the total.)"""

    name = "stop-at"

    def __init__(self, step):
        self.step = step

    def on_step_end(self, state, metrics):
        if state.step == self.step:
            state.stop_reason = "interrupted"


def assert_resumes_exactly(config, steps: int, stop_at: int, tmp_path: Path):
    """A straight run equals the same run stopped at `stop_at` (as Ctrl-C stops it: a
    checkpoint there) and resumed: every weight bit for bit. `config(out, **overrides)` gives
    the TrainConfig of a `steps`-step run. Returns the two run directories."""
    from ghost.train.loop import train

    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight = train(config(straight_dir))
    assert straight.steps == steps
    assert train(config(resumed_dir), recipes=[StopAt(stop_at)]).steps == stop_at
    resumed = train(config(resumed_dir, resume=True))
    assert resumed.steps == steps
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    return straight_dir, resumed_dir


def assert_close(actual, expected, tol=1e-5, what=""):
    """Elementwise within tol of the expected tensor's largest magnitude (so a sum that
    cancels to ~0 is judged on the scale of its terms) plus a relative tol."""
    expected = expected.double()
    scale = expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(
        actual.double(),
        expected,
        rtol=tol,
        atol=tol * max(scale, 1e-6),
        msg=lambda m: f"{what}: {m}",
    )
