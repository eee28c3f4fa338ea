import json

import pytest

from ghost.data.batches import IGNORE, QABatcher, TextBatcher
from ghost.data.records import Dataset, load_data, read_records
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError


def test_qa_and_text_files_load(qa_file, tmp_path):
    assert load_data(str(qa_file)).kind == "qa"
    txt = tmp_path / "notes.txt"
    txt.write_text("first block\nline two\n\n\nsecond block\n", encoding="utf-8")
    assert [r["text"] for r in read_records(txt)] == ["first block\nline two", "second block"]


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"question": "a", "answer": "b"}\n{"question": "c", "answer": \n', ":2: malformed JSON"),
        ('{"question": "a", "answer": 3}\n', ":1: field 'answer' must be a string, got int"),
        ('{"question": "a"}\n', ":1: field 'answer' is missing"),
        ("[1, 2]\n", ":1: expected a JSON object"),
        ('{"foo": "bar"}\n', ":1: record has neither"),
        ("", "no records"),
        ('{"question": "a", "answer": "b"}\n{"text": "t"}\n', "mixes Q&A and text"),
    ],
)
def test_bad_jsonl_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GhostInputError, match=message) as info:
        read_records(path)
    assert str(path) in str(info.value)


def test_non_utf8_is_refused_with_the_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(
        b'{"question": "ok", "answer": "ok"}\n{"question": "caf\xe9", "answer": "x"}\n'
    )
    with pytest.raises(GhostInputError, match=":2: not valid UTF-8"):
        read_records(path)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(GhostInputError, match="not found"):
        load_data(str(tmp_path / "nope.jsonl"))
    other = tmp_path / "data.csv"
    other.write_text("a,b\n")
    with pytest.raises(GhostInputError, match="unknown data format"):
        load_data(str(other))


def test_template_renders_prompt_answer_and_marker_and_refuses_the_marker():
    template = QATemplate()
    data, start = template.render({"question": "Capital of Peru?", "answer": "Lima"})
    assert data == b"Q: Capital of Peru?\nA: Lima\x03" and data[:start] == template.prompt(
        "Capital of Peru?"
    )
    assert template.clean_answer(b" Lima \x03junk") == "Lima"
    with pytest.raises(GhostInputError, match="marker"):
        template.check({"question": "a\x03", "answer": "b"})


def test_answer_only_labels_and_deterministic_resumable_order(qa_file):
    dataset = load_data(str(qa_file))
    batcher = QABatcher(dataset, QATemplate(), batch_size=3, seq_len=256, answer_only=True, seed=7)
    batch = batcher.next_batch()
    row = batch.input_ids[0].tolist()
    first_target = next(i for i, label in enumerate(batch.labels[0].tolist()) if label != IGNORE)
    assert bytes(row[first_target - 3 : first_target]) == b"A: "
    saved = batcher.state_dict()
    expected = [batcher.next_batch().indices.tolist() for _ in range(5)]
    again = QABatcher(dataset, QATemplate(), batch_size=3, seq_len=256, seed=7)
    again.load_state_dict(saved)
    assert [again.next_batch().indices.tolist() for _ in range(5)] == expected


def test_text_batches_are_windows_with_every_byte_a_target():
    dataset = Dataset("t", "text", [{"text": "abcdefghij" * 20}])
    batch = TextBatcher(dataset, batch_size=4, seq_len=16, seed=0).next_batch()
    assert batch.input_ids.shape == (4, 16)
    assert (batch.labels == batch.input_ids).all()


def test_marker_in_training_data_is_refused(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a\u0003"}) + "\n", encoding="utf-8")
    with pytest.raises(GhostInputError, match="end-of-answer marker"):
        QABatcher(load_data(str(path)), QATemplate(), 2, 64)
