"""Surface augmentation (`--augment surface`): training rows ask some questions casually,
answers never change, checks see the questions as written, and a resumed batcher draws the
same rows."""

import json

import pytest

from ghost.cli import main
from ghost.config import GhostConfig, TrainConfig
from ghost.data.batches import QABatcher, surface_variant
from ghost.data.records import Dataset
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError


def _batcher(augment: str, seed: int = 0) -> QABatcher:
    records = [
        {"question": f"What is the capital of Country{i}?", "answer": f"City{i}"} for i in range(12)
    ]
    template = QATemplate.from_config(GhostConfig.from_preset("tiny"))
    return QABatcher(Dataset("caps", "qa", records), template, 8, 64, True, seed, augment)


def _rows(batch) -> list[str]:
    return [bytes(r[r > 0].tolist()).decode() for r in batch.input_ids]


def test_surface_variants():
    assert surface_variant("What is X?", 0) == "What is X?"
    assert surface_variant("What is X?", 1) == "what is x?"
    assert surface_variant("What is X?", 2) == "What is X"
    assert surface_variant("What is X?", 3) == "what is x"


def test_surface_augmentation_varies_questions_and_keeps_answers():
    plain, varied = _batcher("none"), _batcher("surface")
    seen_casual = 0
    for _ in range(6):
        a, b = _rows(plain.next_batch()), _rows(varied.next_batch())
        for x, y in zip(a, b, strict=True):
            qx, ax = x.split("\n", 1)
            qy, ay = y.split("\n", 1)
            assert ax == ay  # the answer (and marker) unchanged
            prefix, q = qx.split(": ", 1)
            casual = {q, q.lower(), q.rstrip("?"), q.lower().rstrip("?")}
            assert qy in {f"{prefix}: {c}" for c in casual}
            seen_casual += qy != qx
    assert 8 <= seen_casual <= 40  # about half of 48 rows
    # checks (collate) see the questions as written
    assert _rows(varied.collate([0, 1])) == _rows(plain.collate([0, 1]))


def test_augmented_batches_resume_exactly():
    a = _batcher("surface", seed=3)
    for _ in range(3):
        a.next_batch()
    state = a.state_dict()
    expected = [_rows(a.next_batch()) for _ in range(3)]
    b = _batcher("surface", seed=3)
    b.load_state_dict(state)
    assert [_rows(b.next_batch()) for _ in range(3)] == expected


def test_unknown_augment_is_a_clear_error():
    with pytest.raises(GhostInputError, match="augment"):
        TrainConfig(augment="typos")


def test_a_default_run_trains_casual_forms_and_none_turns_it_off(tmp_path, capsys):
    assert TrainConfig().augment == "surface"
    # the flag reaches the run's config (what `ghost train` trained with)
    for flag, expected in (([], "surface"), (["--augment", "none"], "none")):
        out = tmp_path / expected
        data = tmp_path / "caps.jsonl"
        data.write_text(
            "".join(
                json.dumps({"question": f"What is the capital of C{i}?", "answer": f"X{i}"}) + "\n"
                for i in range(6)
            )
        )
        args = ["train", "--data", str(data), "--preset", "tiny", "--steps", "2"]
        assert main([*args, "--threads", "1", "--out", str(out), *flag]) == 0
        assert json.loads((out / "config.json").read_text())["train"]["augment"] == expected
        said = capsys.readouterr()
        assert ("typed casually (--augment surface)" in said.out + said.err) == (not flag)
