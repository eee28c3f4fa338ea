"""Crash-safe checkpoints: a save that dies half-way (disk full, power cut) never damages
the last good checkpoint or the run's top-level weights; the last K checkpoints are kept;
leftovers of a crashed save are cleaned up."""

import pytest
import torch
from safetensors.torch import load_file

import ghost.model.io
from ghost.config import TrainConfig
from ghost.model.io import load_model
from ghost.train.checkpoint import STATE_NAME, latest_checkpoint, load_trainer_state
from ghost.train.loop import train


def tiny(data, out, **kw) -> TrainConfig:
    settings = dict(
        data=str(data),
        preset="tiny",
        out=str(out),
        batch_size=8,
        lr=1e-2,
        threads=1,
        quiet=True,
        steps=6,
        save_every=2,
    )
    return TrainConfig(**{**settings, **kw})


def fail_on_call(real, failing_call: int):
    """`real`, except that call number `failing_call` writes half a file and dies."""
    calls = []

    def flaky(obj, target, *args, **kwargs):
        calls.append(target)
        if len(calls) != failing_call:
            return real(obj, target, *args, **kwargs)
        if isinstance(target, str):
            with open(target, "wb") as f:
                f.write(b"\x00" * 100)
        else:
            target.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    return flaky


# save_file runs twice per checkpoint (step-N, then the top level), torch.save once.
# Checkpoints are taken at steps 2, 4 and 6; each case dies during the one at step 4.
@pytest.mark.parametrize(
    "target,failing_call,latest_step",
    [
        ("safetensors", 3, 2),  # model.safetensors of step-4: step-4 never appears
        ("torch.save", 2, 2),  # trainer_state.pt of step-4: step-4 never appears
        ("safetensors", 4, 4),  # the top-level weights, after step-4 was renamed into place
    ],
)
def test_a_save_that_dies_half_way_leaves_the_last_checkpoint_whole(
    tmp_path, qa_file, monkeypatch, target, failing_call, latest_step
):
    straight = train(tiny(qa_file, tmp_path / "straight"))
    run = tmp_path / "run"
    if target == "safetensors":
        monkeypatch.setattr(
            ghost.model.io, "save_file", fail_on_call(ghost.model.io.save_file, failing_call)
        )
    else:
        monkeypatch.setattr(torch, "save", fail_on_call(torch.save, failing_call))
    with pytest.raises(OSError, match="No space left"):
        train(tiny(qa_file, run))
    monkeypatch.undo()

    checkpoint = latest_checkpoint(run)
    assert checkpoint.name == f"step-{latest_step:07d}"
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == [f"step-{s:07d}" for s in range(2, latest_step + 1, 2)]  # no leftovers
    assert [p.name for p in run.glob(".*")] == []
    load_model(checkpoint)
    assert load_trainer_state(checkpoint / STATE_NAME)["step"] == latest_step
    # The top-level weights (what `ghost eval` loads) are whole: still those of step 2.
    top = load_model(run).state_dict()
    for name, tensor in load_file(run / "checkpoints" / kept[0] / "model.safetensors").items():
        assert torch.equal(top[name], tensor), name

    resumed = train(tiny(qa_file, run, resume=True))  # and the run continues exactly
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


def test_only_the_last_k_checkpoints_are_kept(tmp_path, qa_file):
    train(tiny(qa_file, tmp_path / "run", steps=5, save_every=1, keep_checkpoints=2))
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step-0000004", "step-0000005"]


def test_leftovers_of_a_killed_save_are_removed_by_the_next_save(tmp_path, qa_file):
    run = tmp_path / "run"
    train(tiny(qa_file, run, steps=2, keep_checkpoints=2))
    (run / "checkpoints" / ".step-0000003.tmp").mkdir()
    (run / "checkpoints" / ".step-0000003.tmp" / "model.safetensors").write_bytes(b"half")
    (run / ".model.safetensors.x1y2.tmp").write_bytes(b"half")
    train(tiny(qa_file, run, steps=4, resume=True, keep_checkpoints=2))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-0000002",
        "step-0000004",
    ]
    assert [p.name for p in run.glob(".*")] == []
