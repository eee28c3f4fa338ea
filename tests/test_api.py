"""The Python API of DESIGN.md section 4b, end to end on the tiny preset."""

import ghost
from ghost import GhostConfig, GhostModel, evaluate, train


def test_the_documented_api_trains_saves_loads_and_evaluates(tmp_path, qa_file):
    run = train(data=str(qa_file), preset="tiny", out=str(tmp_path / "run"), steps=3, quiet=True)
    assert run.steps == 3
    model = GhostModel.from_pretrained(tmp_path / "run")
    assert isinstance(model.config, GhostConfig)
    summary, predictions = evaluate(model, str(qa_file))
    assert summary["n"] == len(predictions) > 0
    assert isinstance(model.generate(b"Q: x\nA: ", max_bytes=4), bytes)
    assert "train" in ghost.__all__
