"""Answers through hops (`--reasoning chain`): the rendering, where the hops come from, the
final answer taken from a trace, and a trained run evaluated the same way fast and slow."""

import json

import pytest
from tiny_runs import CAPITALS, tiny_config

from ghost.config import TrainConfig
from ghost.data.batches import QABatcher
from ghost.data.records import Dataset
from ghost.data.template import STEP, QATemplate, chain_hops
from ghost.errors import GhostInputError

LANDMARKS = {"the Louvre": "France", "Machu Picchu": "Peru", "Mount Fuji": "Japan"}


def records() -> list[dict]:
    """Capitals and landmark countries as facts, and two-hop questions chaining them."""
    rows = [
        {"question": f"What is the capital of {c}?", "answer": city, "kind": "fact"}
        for c, city in CAPITALS.items()
    ]
    rows += [
        {"question": f"In which country is {place}?", "answer": c, "kind": "fact"}
        for place, c in LANDMARKS.items()
    ]
    rows += [
        {
            "question": f"What is the capital of the country where {place} is?",
            "answer": CAPITALS[c],
            "kind": "2hop",
            "chain": [f"In which country is {place}?", f"What is the capital of {c}?"],
        }
        for place, c in LANDMARKS.items()
    ]
    return rows


def test_an_answer_through_hops_renders_each_hop_as_its_own_question_and_ends_with_the_last():
    template = QATemplate(steps=True)
    record = records()[-1]  # Mount Fuji
    hops = chain_hops(records())[len(records()) - 1]
    assert hops == [
        ("In which country is Mount Fuji?", "Japan"),
        ("What is the capital of Japan?", "Tokyo"),
    ]
    data, start = template.render(record, hops)
    assert data[:start] == template.prompt(record["question"])
    assert data[start:] == (
        b"\x1eQ: In which country is Mount Fuji?\nA: Japan"
        b"\x1eQ: What is the capital of Japan?\nA: Tokyo\x03"
    )
    assert template.clean_answer(data[start:]) == "Tokyo"
    written, final = template.split_steps(data[start:-1].decode())
    assert final == "Tokyo" and written[0] == "Q: In which country is Mount Fuji?\nA: Japan"
    # a direct answer and a model without steps are read as before
    assert template.clean_answer(b" Lima\x03junk") == "Lima"
    assert QATemplate().clean_answer(b"a\x1eb\x03") == "a\x1eb"
    assert QATemplate().render(record) == (
        template.prompt(record["question"]) + b"Tokyo\x03",
        start,
    )


def test_hops_come_only_from_the_records_given():
    rows = records()
    hops = chain_hops(rows)
    assert sorted(hops) == [len(rows) - 3, len(rows) - 2, len(rows) - 1]
    # without the landmark facts, no chain can be given through its hops
    no_landmarks = [r for r in rows if not r["question"].startswith("In which")]
    assert chain_hops(no_landmarks) == {}
    # the last hop is answered by the record itself, even when its question is unknown
    lonely = {"question": "q?", "answer": "x", "chain": ["In which country is the Louvre?", "p?"]}
    assert chain_hops([*rows[: len(CAPITALS) + 1], lonely])[len(CAPITALS) + 1][-1] == ("p?", "x")


def test_the_batcher_trains_multi_hop_rows_through_their_hops_only_with_steps():
    data = Dataset("d", "qa", records())
    with_steps = QABatcher(data, QATemplate(steps=True), 8, 512)
    plain = QABatcher(data, QATemplate(), 8, 512)
    n_facts = len(CAPITALS) + len(LANDMARKS)
    for i in range(len(data.records)):
        stepped = bytes(with_steps.samples[i][0].tolist())
        assert (STEP.encode() in stepped) == (i >= n_facts)
        if i < n_facts:
            assert stepped == bytes(plain.samples[i][0].tolist())
    assert STEP.encode() not in b"".join(bytes(s[0].tolist()) for s in plain.samples)
    # hops make rows longer: the trainer says how many a --seq-len would cut
    assert plain.n_cut == 0 and QABatcher(data, QATemplate(steps=True), 8, 100).n_cut == 3


def test_the_hop_separator_is_refused_in_data_only_when_it_means_something():
    bad = {"question": "a\x1eb?", "answer": "c"}
    QATemplate().check(bad)
    with pytest.raises(GhostInputError, match="hop separator byte 0x1e"):
        QATemplate(steps=True).check(bad)
    with pytest.raises(GhostInputError, match="reasoning"):
        TrainConfig(reasoning="tree")


def test_a_run_trained_with_hops_says_so_and_evaluates_the_same_fast_and_slow(tmp_path, capsys):
    from ghost.cli import main
    from ghost.eval.metrics import evaluate_qa
    from ghost.model import GhostModel
    from ghost.train.loop import train

    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records()), encoding="utf-8")
    train(tiny_config(path, tmp_path / "run", steps=120, lr=3e-3, reasoning="chain"))
    model = GhostModel.from_pretrained(tmp_path / "run")
    assert model.config.qa_steps
    dataset = Dataset("d", "qa", records())
    fast, predictions = evaluate_qa(model, dataset)
    assert (fast, predictions) == evaluate_qa(model, dataset, check_first=False)
    assert all("hops" in p for p in predictions)
    question = "What is the capital of the country where the Louvre is?"
    assert main(["ask", str(tmp_path / "run"), question, "--show-hops", "--threads", "1"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[1:] and all(
        line.startswith("  hop: Q: ") or line == "  (answered directly, no hops)"
        for line in shown[1:]
    )
