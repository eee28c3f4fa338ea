"""Safe loading: models are safetensors + JSON (nothing unpickled); trainer state is read
with torch.load(weights_only=True); a checkpoint carrying a pickle that would run code is
refused with exit 2 and one line, and the code never runs."""

import os
import pickle

import pytest
import torch
from ghost_process import snapshot
from tiny_runs import tiny_config

from ghost.cli import main
from ghost.model import GhostModel
from ghost.train.checkpoint import STATE_NAME, latest_checkpoint
from ghost.train.loop import train


class RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def run(tmp_path, qa_file):
    out = tmp_path / "run"
    train(tiny_config(qa_file, out, steps=2))
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_a_trainer_state_that_would_run_code_is_refused(run, qa_file, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    state_path = latest_checkpoint(run) / STATE_NAME
    # A real trainer state with the payload tucked inside, as an attacker would ship it.
    state = torch.load(state_path, weights_only=True)
    state["hooks"]["progress"] = RunsCode(marker)
    torch.save(state, state_path)
    before = snapshot(run)

    code = main(
        [
            "train",
            "--data",
            str(qa_file),
            "--out",
            str(run),
            "--resume",
            "--steps",
            "4",
            "--threads",
            "1",
            "--quiet",
        ]
    )
    assert code == 2
    err = one_error_line(capsys)
    assert str(state_path) in err and "refused" in err and "posix.system" in err
    assert not marker.exists()
    assert snapshot(run) == before


def test_model_weights_that_are_a_pickle_are_refused(run, qa_file, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    (run / "model.safetensors").write_bytes(pickle.dumps(RunsCode(marker)))
    before = snapshot(run)
    assert main(["eval", str(run), "--data", str(qa_file), "--threads", "1"]) == 2
    err = one_error_line(capsys)
    assert "model.safetensors" in err and "corrupt" in err
    assert not marker.exists()
    assert snapshot(run) == before


def test_loading_a_model_never_unpickles(run, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a model load unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    model = GhostModel.from_pretrained(run)
    assert model.num_parameters() > 0
