"""The Python API of DESIGN.md section 4b, end to end on the tiny preset."""

import torch

import ghost
from ghost import GhostConfig, GhostModel, evaluate, train


def test_the_documented_api_trains_saves_loads_evaluates_and_answers(tmp_path, qa_file):
    run = train(data=str(qa_file), preset="tiny", out=str(tmp_path / "run"), lr=1e-2, quiet=True)
    assert run.stop_reason == "training exact match reached 100%"
    model = GhostModel.from_pretrained(tmp_path / "run")
    assert isinstance(model.config, GhostConfig) and model.config == run.model.config
    x = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        assert torch.equal(model(x).logits, run.model(x).logits)
    summary, predictions = evaluate(model, str(qa_file))
    assert summary["exact_match"] == 1.0 and summary["n"] == len(predictions) == 8
    assert model.generate(b"Q: What is the capital of Peru?\nA: ", max_bytes=16) == b"Lima"
    out = model(x, labels=x)
    assert out.loss.ndim == 0 and out.logits.shape == (2, 12, 256)
    model.save_pretrained(tmp_path / "copy")
    assert (
        GhostModel.from_pretrained(tmp_path / "copy").generate(
            b"Q: What is the capital of Peru?\nA: ", max_bytes=16
        )
        == b"Lima"
    )
    assert {"train", "evaluate", "GhostModel", "GhostConfig"} <= set(ghost.__all__)
