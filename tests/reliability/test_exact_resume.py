"""Exact resume: a run killed at any step (SIGKILL) or stopped with Ctrl-C (SIGINT) and
resumed with --resume ends with the same weights, bit for bit, as a run never stopped
(one thread, fp32), and its metrics.csv has each step once."""

import csv
import re
import shlex
import signal
import time
from pathlib import Path

import pytest
import torch
from ghost_process import run_ghost, start_ghost
from safetensors.torch import load_file
from tiny_runs import tiny_config

from ghost.train.loop import train

STEPS, SAVE_EVERY = 60, 25


def cli_flags(data: Path, run: Path, **settings) -> list[str]:
    """The `ghost train` command line of a tiny one-thread run with these settings."""
    args = ["train", "--data", str(data)]
    for key, value in {"preset": "tiny", "threads": 1, "batch_size": 8, **settings}.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return [*args, "--quiet", "--out", str(run)]


def flags(data: Path, run: Path) -> list[str]:
    return cli_flags(data, run, lr=0.01, steps=STEPS, save_every=SAVE_EVERY, eval_every=20)


@pytest.fixture(scope="module")
def reference(qa_path, tmp_path_factory) -> dict[str, torch.Tensor]:
    """The weights of the same run, never stopped (in this process: the same arithmetic)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train(tiny_config(qa_path, out, lr=0.01, steps=STEPS, save_every=SAVE_EVERY, eval_every=20))
    return load_file(out / "model.safetensors")


def logged_steps(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="", encoding="utf-8") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row["step"].isdigit()]


def wait_until(condition, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended too early (exit {proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the run")
        time.sleep(0.005)


def checkpoint_steps(run: Path) -> list[int]:
    root = run / "checkpoints"
    return sorted(int(p.name[5:]) for p in root.glob("step-*")) if root.is_dir() else []


def assert_same_weights(run: Path, reference: dict[str, torch.Tensor]) -> None:
    weights = load_file(run / "model.safetensors")
    assert weights.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(weights[name], tensor), f"{name} differs after the resume"


def test_sigkill_at_any_step_then_resume_gives_the_uninterrupted_weights(
    tmp_path, qa_path, reference
):
    run = tmp_path / "run"
    proc = start_ghost(*flags(qa_path, run))
    wait_until(lambda: checkpoint_steps(run), proc)
    saved = checkpoint_steps(run)[-1]
    # Kill only once the run has logged steps past its checkpoint: those rows must go.
    wait_until(lambda: (run / "metrics.csv").is_file() and logged_steps(run)[-1] > saved + 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert saved < STEPS and max(logged_steps(run)) > saved

    done = run_ghost(*flags(qa_path, run), "--resume")
    assert done.returncode == 0, done.stderr
    assert f"stopped after {STEPS} steps" in done.stdout
    assert_same_weights(run, reference)
    assert logged_steps(run) == list(range(1, STEPS + 1))  # none lost, none twice


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_the_current_step_and_prints_how_to_resume(
    tmp_path, qa_path, reference, signum
):
    run = tmp_path / "run"
    proc = start_ghost(*flags(qa_path, run))
    wait_until(lambda: (run / "metrics.csv").is_file() and len(logged_steps(run)) >= 3, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    found = re.search(r"^ghost: interrupted at step (\d+); resume with: (.+)$", err, re.M)
    assert found, err
    step, command = int(found[1]), shlex.split(found[2])
    assert 3 <= step < SAVE_EVERY  # so the checkpoint below is the interrupt's own
    assert checkpoint_steps(run) == [step]
    assert command[:2] == ["ghost", "train"] and command[-1] == "--resume"
    assert command[2:-1] == flags(qa_path, run)[1:]  # the user's own flags, verbatim

    done = run_ghost(*command[1:])
    assert done.returncode == 0, done.stderr
    assert_same_weights(run, reference)
    assert logged_steps(run) == list(range(1, STEPS + 1))


# Every recipe, killed with SIGKILL mid-run and resumed: the weights equal a straight run's.
# Q&A recipes run together on the capitals; the text-only ones on a stretch of text (each
# alone: state-momentum refuses recipes that change its rows).
RECIPE_RUNS = {
    "qa": "curriculum:start=8:end=48,skip:warmup=4:threshold=0.05,"
    "byte-lr,depth-grad,grad-checkpoint",
    "text-state-momentum": "state-momentum",
    "text-fim": "fim:rate=0.5,curriculum:start=8:end=48",
}
RECIPE_STEPS, RECIPE_SAVE_EVERY = 24, 8


@pytest.fixture(scope="module")
def text_path(tmp_path_factory) -> Path:
    import textwrap

    path = tmp_path_factory.mktemp("text") / "stdlib.txt"
    path.write_text(Path(textwrap.__file__).read_text(encoding="utf-8")[:6000], encoding="utf-8")
    return path


RECIPE_SETTINGS = dict(
    seq_len=48, lr=0.01, steps=RECIPE_STEPS, save_every=RECIPE_SAVE_EVERY, eval_every=6
)


def recipe_flags(data: Path, run: Path, recipes: str) -> list[str]:
    return cli_flags(data, run, **RECIPE_SETTINGS, recipe=recipes)


@pytest.mark.parametrize("kind", list(RECIPE_RUNS))
def test_every_recipe_resumes_bit_identically_after_sigkill(tmp_path, qa_path, text_path, kind):
    data = qa_path if kind == "qa" else text_path
    straight = tmp_path / "straight"  # in this process: the same arithmetic as the child's
    train(tiny_config(data, straight, **RECIPE_SETTINGS, recipes=RECIPE_RUNS[kind]))
    run = tmp_path / "run"
    proc = start_ghost(*recipe_flags(data, run, RECIPE_RUNS[kind]))
    wait_until(lambda: checkpoint_steps(run), proc)
    saved = checkpoint_steps(run)[-1]
    wait_until(lambda: (run / "metrics.csv").is_file() and logged_steps(run)[-1] > saved + 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert saved < RECIPE_STEPS
    done = run_ghost(*recipe_flags(data, run, RECIPE_RUNS[kind]), "--resume")
    assert done.returncode == 0, done.stderr
    assert_same_weights(run, load_file(straight / "model.safetensors"))
    assert logged_steps(run) == list(range(1, RECIPE_STEPS + 1))
