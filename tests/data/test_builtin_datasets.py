"""The built-in datasets: API, schemas, counts, held-out hygiene and the code50 cache."""

import json
import re
import warnings

import pytest

from ghost.data import builtin, math1k
from ghost.errors import GhostInputError

ALL_SPLITS = [(info.name, split) for info in builtin.list_datasets() for split in info.splits]


def _load(name, split):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # code50 may warn about a skipped name
        return builtin.load_builtin(f"{name}:{split}")


def normalise(question: str) -> str:
    """Lower-cased, punctuation stripped (arithmetic operators kept), whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s+\-*/=]", " ", question.lower()).split())


def _has_control_byte(text: str, allow_newline: bool) -> bool:
    return any(ord(ch) < 32 and not (allow_newline and ch == "\n") for ch in text)


# API --------------------------------------------------------------------------------------


def test_list_datasets_names_and_info():
    infos = builtin.list_datasets()
    assert [info.name for info in infos] == ["bash100", "math1k", "facts200", "code50"]
    for info in infos:
        assert info.default_split == "train" and "train" in info.splits
        assert set(info.held_out) <= set(info.splits) and "train" not in info.held_out
        assert set(info.text_splits) <= set(info.splits)


def test_is_builtin_accepts_name_and_split():
    assert builtin.is_builtin("facts200")
    assert builtin.is_builtin("facts200:novel")
    assert builtin.is_builtin("math1k:test")
    assert not builtin.is_builtin("facts300")
    assert not builtin.is_builtin("data/train.jsonl")


def test_plain_name_means_train_split():
    assert builtin.load_builtin("bash100") == builtin.load_builtin("bash100:train")


def test_unknown_name_and_split_raise_one_line_errors():
    with pytest.raises(GhostInputError) as error:
        builtin.load_builtin("facts300")
    assert "bash100" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(GhostInputError) as error:
        builtin.load_builtin("facts200:bogus")
    message = str(error.value)
    assert "novel" in message and "paraphrase" in message and "\n" not in message


def test_loads_return_fresh_dicts():
    first = builtin.load_builtin("facts200:test_hard")
    first[0]["chain"].append("mutated")
    assert "mutated" not in builtin.load_builtin("facts200:test_hard")[0]["chain"]


def test_describe_counts_every_split():
    described = builtin.describe("facts200")
    assert described["name"] == "facts200" and described["purpose"]
    assert described["splits"] == {s: len(_load("facts200", s)) for s in described["splits"]}
    assert set(described["held_out"]) == {"paraphrase", "novel"}


# Schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,split", ALL_SPLITS)
def test_records_match_their_schema(name, split):
    info = next(i for i in builtin.list_datasets() if i.name == name)
    records = _load(name, split)
    assert records, f"{name}:{split} is empty"
    for record in records:
        if info.record_type(split) == "text":
            assert isinstance(record["text"], str) and record["text"].strip()
            assert "question" not in record
            assert not _has_control_byte(record["text"], allow_newline=True)
            continue
        assert isinstance(record["question"], str) and record["question"].strip()
        assert isinstance(record["answer"], str) and record["answer"].strip()
        assert record["answer"] == record["answer"].strip()
        assert "\n" not in record["answer"], "answers are one line"
        assert isinstance(record.get("kind", ""), str)
        for field in ("chain", "facts"):
            value = record.get(field, [])
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        for text in [record["question"], record["answer"], *record.get("chain", [])]:
            assert not _has_control_byte(text, allow_newline=False), text


@pytest.mark.parametrize("name", ["bash100", "facts200", "math1k"])
def test_questions_unique_within_each_split(name):
    for split in builtin.describe(name)["splits"]:
        questions = [r["question"] for r in _load(name, split) if "question" in r]
        assert len(questions) == len({normalise(q) for q in questions}), f"{name}:{split}"


def test_shipped_jsonl_is_one_object_per_line():
    """No blank lines, a final newline: the files stay diffable and simple to read."""
    for name in ("bash100", "facts200", "math1k"):
        for split in builtin.describe(name)["splits"]:
            if split in ("text", "test_text"):
                continue  # math1k's text splits are made from train/test, not shipped
            text = builtin._dataset_file(name, f"{split}.jsonl").read_text(encoding="utf-8")
            lines = text.split("\n")
            assert lines[-1] == "", f"{name}:{split}"
            assert all(isinstance(json.loads(line), dict) for line in lines[:-1])


# Counts -----------------------------------------------------------------------------------


def test_bash100_counts_and_topics():
    train = _load("bash100", "train")
    assert len(train) == 100
    assert len(_load("bash100", "paraphrase")) >= 50
    topics = "files text search processes archives permissions networking git".split()
    assert {r["topic"] for r in train} == set(topics)
    assert all(r["kind"] == "command" for r in train)


def test_facts200_counts():
    train = _load("facts200", "train")
    assert sum(r["kind"] == "fact" for r in train) == 200
    assert {r["kind"] for r in train} == {"fact", "2hop", "3hop"}
    assert len(_load("facts200", "paraphrase")) >= 100
    assert len(_load("facts200", "novel")) >= 50
    assert len(_load("facts200", "facts")) == 200
    assert len(_load("facts200", "seed10")) == 10
    test_10q = _load("facts200", "test_10q")
    assert len(test_10q) == 10
    assert all(r in train and r["kind"] == "fact" for r in test_10q)
    assert all(r in train for r in _load("facts200", "seed10"))
    test_hard = _load("facts200", "test_hard")
    assert test_hard and all(r in train and r["kind"] in ("2hop", "3hop") for r in test_hard)


def test_facts_split_is_the_sentences_of_the_trained_facts():
    train = _load("facts200", "train")
    sentences = [r["facts"][0] for r in train if r["kind"] == "fact"]
    assert [r["text"] for r in _load("facts200", "facts")] == sentences
    assert all(len(r["facts"]) == 1 for r in train if r["kind"] == "fact")


def test_math1k_counts():
    assert len(_load("math1k", "train")) == math1k.TRAIN_SIZE == 1000
    test = _load("math1k", "test")
    assert len(test) == math1k.TEST_SIZE
    assert sum(r["kind"] == "commuted" for r in test) == math1k.COMMUTED_SIZE
    assert len(_load("math1k", "text")) == 1000 // math1k.EQUATIONS_PER_TEXT_RECORD


def test_code50_counts_on_this_python():
    names = builtin.code50_names()
    assert len(names) == 50 and len(set(names)) == 50
    train, test = _load("code50", "train"), _load("code50", "test")
    assert 45 <= len(train) + len(test) <= 50
    assert {r["name"] for r in train} <= set(names[:40])
    assert {r["name"] for r in test} <= set(names[40:])


# Held-out hygiene -------------------------------------------------------------------------


def _trained_and_held_out():
    trained, held_out = set(), []
    for info in builtin.list_datasets():
        for split in info.splits:
            records = _load(info.name, split)
            questions = [r["question"] for r in records if "question" in r]
            if split in info.held_out:
                held_out += [(f"{info.name}:{split}", q) for q in questions]
            else:
                trained |= {normalise(q) for q in questions}
    return trained, held_out


def test_no_held_out_question_appears_in_any_training_split():
    trained, held_out = _trained_and_held_out()
    assert len(held_out) > 500
    leaked = [(where, q) for where, q in held_out if normalise(q) in trained]
    assert not leaked, leaked[:5]


def test_held_out_text_not_in_training_text():
    assert not {r["name"] for r in _load("code50", "test")} & {
        r["name"] for r in _load("code50", "train")
    }
    train_lines = {line for r in _load("math1k", "text") for line in r["text"].split("\n")}
    test_lines = {line for r in _load("math1k", "test_text") for line in r["text"].split("\n")}
    assert len(test_lines) == math1k.TEST_SIZE and not train_lines & test_lines


# Code-50 cache ----------------------------------------------------------------------------


def test_code50_extracts_into_the_cache_then_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = builtin.code50_cache_path()
    assert path.parent == tmp_path / "ghost" / "datasets"
    assert re.fullmatch(r"code50-py\d+\.\d+\.jsonl", path.name)
    records = _load("code50", "train")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [row["name"] for row in rows] == builtin.code50_names()
    assert not list(path.parent.glob("*.tmp")), "the temporary file was renamed away"
    # A second load reads the cache: prove it by planting a marker in one cached source.
    rows[0]["text"] = "def planted():\n    return 1\n"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    assert _load("code50", "train")[0]["text"] == rows[0]["text"]
    assert records[0]["name"] == rows[0]["name"]


def test_code50_cache_for_another_list_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = builtin.code50_cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"name": "old.name", "text": "x = 1\n"}) + "\n", encoding="utf-8")
    names = [r["name"] for r in _load("code50", "train")]
    assert "old.name" not in names and names[0] == builtin.code50_names()[0]


def test_code50_records_are_the_functions_source():
    for record in _load("code50", "train") + _load("code50", "test"):
        function_name = record["name"].rpartition(".")[2]
        assert record["text"].startswith(f"def {function_name}("), record["name"]
        assert 3 <= record["text"].count("\n") <= 60, record["name"]


def test_code50_missing_name_is_skipped_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    listed = builtin.code50_names()
    listed[1] = "textwrap.no_such_function"
    monkeypatch.setattr(builtin, "code50_names", lambda: listed)
    monkeypatch.setattr(builtin, "_warned_skips", set())
    with pytest.warns(UserWarning, match="skipped textwrap.no_such_function"):
        train = builtin.load_builtin("code50:train")
    assert "textwrap.no_such_function" not in {r["name"] for r in train}
    assert len(train) <= 39  # fewer if another name is missing on this Python
    assert builtin.extract_source("no_such_module_xyz.f")[0] is None
    assert builtin.extract_source("textwrap.no_such_function")[0] is None
