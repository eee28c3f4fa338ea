"""The memory bank as users handle it: ids, remove, clear, save/load, corrupt files, CLI."""

import json

import pytest
import torch

from ghost.cli import main
from ghost.errors import GhostInputError
from ghost.model import io
from ghost.model.ghost import GhostModel
from ghost.model.memory_text import fact_key

FACTS = ["The capital of Peru is Lima.", "Gold is Au.", "The Nile flows into the sea."]


@pytest.fixture
def model():
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").eval()
    for layer in model.layers:
        if layer.kind == "memory":
            layer.extra.gate.data.fill_(0.5)  # so that what the bank holds shows in the logits
    model.copy.gate.bias.data.fill_(0.0)
    return model


@pytest.fixture
def run(model, tmp_path):
    model.save_pretrained(tmp_path / "run")
    return tmp_path / "run"


def logits(model, text=b"Q: What is the capital of Peru?"):
    with torch.no_grad():
        return model(torch.tensor([list(text)])).logits


def test_the_encoder_runs_texts_in_length_groups_with_the_one_pass_states(model):
    """Texts from 2 to 120 bytes run in groups of similar length (each as wide as its
    longest): every real byte's state and every key is that of one padded pass."""
    import random

    rng = random.Random(0)
    texts = ["".join(rng.choice("abcdef .") for _ in range(rng.randint(2, 120))) for _ in range(70)]
    encoder = model.memory.encoder
    calls = []
    hook = encoder.mixer.register_forward_hook(lambda m, args, out: calls.append(args[0].shape))
    with torch.no_grad():
        states, ids, mask, keys = encoder(texts)
        hook.remove()
        one = encoder.states(ids)
        torch.testing.assert_close(states[mask], one[mask], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(keys, encoder.keys(one, mask), atol=1e-5, rtol=1e-4)
    assert len(calls) > 1 and min(shape[1] for shape in calls) < ids.shape[1]


def test_ids_are_stable_and_duplicates_are_not_added(model):
    assert model.memory.write(FACTS) == [1, 2, 3]
    assert model.memory.write(["Gold is Au.", " ", "Iron is Fe."]) == [2, 4]
    model.memory.remove([1])
    assert [e.id for e in model.memory.entries()] == [2, 3, 4]
    assert model.memory.write(["The capital of Peru is Lima."]) == [5]  # ids are not reused
    with pytest.raises(GhostInputError, match="no memory entry with id 9"):
        model.memory.remove([9])


def test_remove_takes_the_entry_out_of_what_the_model_reads(model):
    empty = logits(model)
    model.memory.write(FACTS[:1])
    only_peru = logits(model)
    model.memory.write(FACTS[1:])
    assert not torch.equal(logits(model), only_peru)
    model.memory.remove([2, 3])
    torch.testing.assert_close(logits(model), only_peru)
    model.memory.clear()
    assert torch.equal(logits(model), empty)


def test_conflicting_facts_are_found_by_what_they_are_about(model):
    model.memory.write(
        [
            "The capital of France is Paris.",
            "Gold is Au.",
            "The Great Gatsby was written by F. Scott Fitzgerald.",
        ]
    )
    assert fact_key("The capital of France is Lyon.") == "the capital of france is"
    (old,) = model.memory.conflicts("The capital of France is Lyon.")
    assert old.text == "The capital of France is Paris."
    assert model.memory.conflicts("The capital of France is Paris.") == []
    assert model.memory.conflicts("The Great Gatsby was first published in 1925.") == []
    (author,) = model.memory.conflicts("The Great Gatsby was written by Jane Austen.")
    assert author.text.endswith("Fitzgerald.")
    assert model.memory.conflicts("noverbhere") == []


def test_save_load_reuses_the_encodings_and_answers_the_same(model, tmp_path):
    model.memory.write(FACTS)
    model.memory.remove([2])
    model.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / io.MEMORY_VECTORS_NAME).is_file()
    loaded = GhostModel.from_pretrained(tmp_path / "run", memory=False)
    encoded = []
    loaded.memory.encode_texts = lambda texts, **kw: encoded.append(texts)
    io.load_memory(loaded, tmp_path / "run")
    assert encoded == []  # the same encoder weights: the saved encodings are used as they are
    loaded = GhostModel.from_pretrained(tmp_path / "run")
    assert [e.id for e in loaded.memory.entries()] == [1, 3]
    assert loaded.memory.next_id == 4
    torch.testing.assert_close(logits(loaded), logits(model))


def test_encodings_made_by_other_weights_are_made_again(model, tmp_path):
    model.memory.write(FACTS)
    model.save_pretrained(tmp_path / "run")
    other = GhostModel.from_preset("tiny")  # other encoder weights
    io.load_memory(other, tmp_path / "run")
    torch.testing.assert_close(other.memory.keys(), other.memory.encode_texts(FACTS))
    assert not torch.allclose(other.memory.keys(), model.memory.keys())


def test_a_cleared_bank_stays_cleared_after_saving(model, tmp_path):
    model.memory.write(FACTS)
    model.save_pretrained(tmp_path / "run")
    model.memory.clear()
    model.save_pretrained(tmp_path / "run")
    assert not (tmp_path / "run" / io.MEMORY_NAME).exists()
    assert not (tmp_path / "run" / io.MEMORY_VECTORS_NAME).exists()
    assert len(GhostModel.from_pretrained(tmp_path / "run").memory) == 0


def test_older_memory_files_without_ids_still_load(run):
    (run / io.MEMORY_NAME).write_text('{"text": "Gold is Au."}\n{"text": "Iron is Fe."}\n')
    loaded = GhostModel.from_pretrained(run)
    assert [(e.id, e.text) for e in loaded.memory.entries()] == [
        (1, "Gold is Au."),
        (2, "Iron is Fe."),
    ]


@pytest.mark.parametrize(
    "name, content, message",
    [
        (io.MEMORY_NAME, '{"text": "ok"}\n{"text": \n', "line 2: not valid JSON"),
        (io.MEMORY_NAME, '{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', "appears twice"),
        (io.MEMORY_NAME, '{"id": -3, "text": "a"}\n', "positive integer"),
        (io.MEMORY_VECTORS_NAME, "not safetensors", "corrupt memory encodings"),
    ],
)
def test_a_corrupt_bank_is_one_clear_line_and_the_model_still_loads(
    run, model, capsys, name, content, message
):
    model.memory.write(FACTS)
    io.save_memory(model, run)
    (run / name).write_text(content)
    assert main(["ask", str(run), "What is gold?", "--max-bytes", "4"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert len(GhostModel.from_pretrained(run, memory=False).memory) == 0  # weights are fine
    assert main(["memory", "clear", str(run)]) == 0
    assert main(["ask", str(run), "What is gold?", "--max-bytes", "4"]) == 0


def test_memory_commands_add_list_remove_clear(run, tmp_path, capsys):
    facts_file = tmp_path / "facts.txt"
    facts_file.write_text("Gold is Au.\n\nIron is Fe.\n")
    assert (
        main(["memory", "add", str(run), "The capital of France is Paris.", str(facts_file)]) == 0
    )
    assert "added 3 entries (ids 1-3); the bank holds 3" in capsys.readouterr().out
    assert main(["memory", "add", str(run), "The capital of France is Lyon."]) == 0
    captured = capsys.readouterr()
    assert (
        "'The capital of France is Paris.' (entry 1) and 'The capital of France is Lyon.' say"
        in captured.err
    )
    assert main(["memory", "add", "--replace", str(run), "Gold is Aurum."]) == 0
    assert "replaced entry 2: 'Gold is Au.'" in capsys.readouterr().out
    assert main(["memory", "list", str(run)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(None, 1) for line in listed] == [
        ["1", "The capital of France is Paris."],
        ["3", "Iron is Fe."],
        ["4", "The capital of France is Lyon."],
        ["5", "Gold is Aurum."],
    ]
    assert main(["memory", "remove", str(run), "4"]) == 0
    assert main(["memory", "remove", str(run), "4"]) == 2  # gone already
    assert "no memory entry with id 4" in capsys.readouterr().err
    assert [e.id for e in GhostModel.from_pretrained(run).memory.entries()] == [1, 3, 5]
    assert main(["memory", "clear", str(run)]) == 0
    assert "cleared 3 entries" in capsys.readouterr().out
    assert len(GhostModel.from_pretrained(run).memory) == 0


def test_memory_file_for_one_call_is_read_but_not_saved(run, tmp_path, capsys):
    jsonl = tmp_path / "extra.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in FACTS))
    question = "What is the capital of Peru?"
    for argv in (
        [str(run), question, "--memory", str(jsonl), "--show-memory"],
        [str(run), "--memory", str(jsonl), "--show-memory", question],  # options first
    ):
        assert main(["ask", *argv, "--max-bytes", "4"]) == 0
        shown = capsys.readouterr().out.split("\n  read ")
        assert len(shown) == 4  # the answer, then the 3 entries read most
        assert any(FACTS[0] in line for line in shown[1:])
    assert not (run / io.MEMORY_NAME).exists()
    assert (
        main(["eval", str(run), "--data", "facts200:test_10q", "--memory", "facts200:facts"]) == 0
    )
    for bad in ("missing.jsonl", "facts200", "notes.csv"):
        (tmp_path / "notes.csv").write_text("a,b\n")
        item = str(tmp_path / bad) if bad != "facts200" else bad
        assert main(["ask", str(run), "q", "--memory", item]) == 2
        assert "Traceback" not in capsys.readouterr().err
    assert main(["memory", "add", str(run), str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: file not found" in capsys.readouterr().err


def test_the_runs_bank_survives_saves_of_a_model_that_did_not_load_it(model, run, tmp_path):
    from tiny_runs import StopAt, tiny_config, write_qa

    from ghost.train.loop import train

    model.memory.write(FACTS)
    io.save_memory(model, run)
    GhostModel.from_pretrained(run, memory=False).save_pretrained(run)  # an empty bank
    assert len(GhostModel.from_pretrained(run).memory) == 3
    # A resumed run keeps the entries added to its bank after its last checkpoint.
    data = write_qa(tmp_path / "qa.jsonl")
    train(tiny_config(data, tmp_path / "t", steps=4, save_every=2), recipes=[StopAt(2)])
    assert main(["memory", "add", str(tmp_path / "t"), "Gold is Au."]) == 0
    train(tiny_config(data, tmp_path / "t", steps=4, save_every=2, resume=True))
    assert [e.text for e in GhostModel.from_pretrained(tmp_path / "t").memory.entries()] == [
        "Gold is Au."
    ]


def test_a_hand_edited_entry_is_encoded_again(model, run):
    model.memory.write(FACTS)
    io.save_memory(model, run)
    lines = (run / io.MEMORY_NAME).read_text().replace("Gold is Au.", "Gold is Aurum.")
    (run / io.MEMORY_NAME).write_text(lines)
    loaded = GhostModel.from_pretrained(run)
    expected = loaded.memory.encode_texts(["Gold is Aurum."])
    torch.testing.assert_close(loaded.memory.keys()[1:2], expected)
