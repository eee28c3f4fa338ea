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


def test_shared_stems_are_cut_at_multiples_of_the_step_and_shared_enough():
    from ghost.eval.metrics import shared_stems

    capital = [f"Q: What is the capital of {c}?\nA: ".encode() for c in ("Peru", "Chad", "Iran")]
    prompts = [*capital, b"Q: What is the cost of Peru?\nA: ", b"Q: Who?\nA: "]
    # "Q: What is the c" (16 bytes) begins four prompts, "Q: What is the capital o" three
    assert shared_stems(prompts) == [16, 16, 16, 16, 0]
    assert shared_stems(prompts, min_rows=3) == [24, 24, 24, 16, 0]
    assert shared_stems([b"Q: What is the capital?\nA: "] * 4, step=32) == [0] * 4  # not shorter


def test_answers_proven_by_one_forward_pass_are_the_generated_ones(tmp_path, monkeypatch):
    """evaluate_qa takes an answer from the teacher-forced check only where generation is
    certain to give it: the predictions equal generating every answer, right and wrong."""
    from tiny_runs import CAPITALS, tiny_config, write_qa

    from ghost.config import TrainConfig
    from ghost.data.template import QATemplate
    from ghost.eval import metrics
    from ghost.eval.metrics import answers_all_correct, checked_answers
    from ghost.train.loop import make_batcher, train

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
    template = QATemplate.from_config(model.config)
    proven = checked_answers(model, template, records)
    assert sum(proven[: len(CAPITALS)]) >= len(CAPITALS) // 2  # the trained ones, mostly
    assert proven[len(CAPITALS) :] == [False, False, False]
    # The capitals' shared stem is run once: the same verdicts as whole rows.
    stems = metrics.shared_stems([template.prompt(r["question"]) for r in records])
    assert stems[0] > 0
    with monkeypatch.context() as m:
        m.setattr(metrics, "shared_stems", lambda prompts: [0] * len(prompts))
        assert checked_answers(model, template, records) == proven
    # The training check's verdicts, batched by length, come back in the order asked.
    batcher = make_batcher(dataset, model.config, TrainConfig(data="d"))
    order = [9, 0, 3, 10, 1, 8, 2, 7, 4, 6, 5]
    alone = [bool(answers_all_correct(model, batcher, [i])[0]) for i in order]
    assert answers_all_correct(model, batcher, order, batch_size=4).tolist() == alone
    assert any(alone) and not all(alone)
    for bank in ([], ["The capital of Peru is Quito.", "Hamlet was written by Shakespeare."]):
        model.memory.clear()
        model.memory.write(bank)
        fast = evaluate_qa(model, dataset)
        generated = evaluate_qa(model, dataset, check_first=False)
        assert fast == generated
