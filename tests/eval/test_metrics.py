import math

import torch

from ghost.data.records import Dataset
from ghost.eval.metrics import bits_per_byte, evaluate_qa, exact_match
from ghost.model import GhostModel


def test_exact_match_strips_surrounding_whitespace_only():
    assert exact_match(" Lima\n", "Lima")
    assert not exact_match("lima", "Lima")
    assert not exact_match("Lima Peru", "Lima")


def test_untrained_model_scores_zero_and_reports_by_kind():
    model = GhostModel.from_preset("tiny")
    data = Dataset(
        "d",
        "qa",
        [
            {"question": "a?", "answer": "b", "kind": "fact"},
            {"question": "c?", "answer": "d", "kind": "2hop"},
        ],
    )
    summary, predictions = evaluate_qa(model, data, max_answer_bytes=4)
    assert summary["n"] == 2 and summary["exact_match"] == 0.0
    assert set(summary["by_kind"]) == {"fact", "2hop"} and len(predictions) == 2


def test_bits_per_byte_of_a_uniform_model_is_eight():
    model = GhostModel.from_preset("tiny")
    with torch.no_grad():
        model.head.weight.zero_()  # tied: the embedding is zero too, so logits are all equal
    result = bits_per_byte(model, Dataset("t", "text", [{"text": "hello world " * 10}]), seq_len=32)
    assert math.isclose(result["bits_per_byte"], 8.0, rel_tol=1e-5)
