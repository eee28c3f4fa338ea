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


def test_answers_proven_by_one_forward_pass_are_the_generated_ones(tmp_path):
    """evaluate_qa takes an answer from the teacher-forced check only where generation is
    certain to give it: the predictions equal generating every answer, right and wrong."""
    from tiny_runs import CAPITALS, tiny_config, write_qa

    from ghost.data.template import QATemplate
    from ghost.eval.metrics import checked_answers
    from ghost.train.loop import train

    data = write_qa(tmp_path / "qa.jsonl")
    train(tiny_config(data, tmp_path / "run", steps=150, lr=3e-3))
    model = GhostModel.from_pretrained(tmp_path / "run")
    records = [
        {"question": f"What is the capital of {country}?", "answer": city, "kind": "fact"}
        for country, city in CAPITALS.items()
    ]
    records += [  # wrong references, and one the model has never seen
        {"question": "What is the capital of Peru?", "answer": "Quito", "kind": "fact"},
        {"question": "What is the capital of France?", "answer": "Pari", "kind": "fact"},
        {"question": "Who wrote Hamlet?", "answer": "Shakespeare", "kind": "fact"},
    ]
    dataset = Dataset("d", "qa", records)
    proven = checked_answers(model, QATemplate.from_config(model.config), records)
    assert sum(proven[: len(CAPITALS)]) >= len(CAPITALS) // 2  # the trained ones, mostly
    assert proven[len(CAPITALS) :] == [False, False, False]
    for bank in ([], ["The capital of Peru is Quito.", "Hamlet was written by Shakespeare."]):
        model.memory.clear()
        model.memory.write(bank)
        fast = evaluate_qa(model, dataset)
        generated = evaluate_qa(model, dataset, check_first=False)
        assert fast == generated
