"""`ghost distill` end to end on the tiny preset: one round writes its files and report row,
every pair's provenance points at a pair that exists, a round is reproducible from its seed,
and bad input is one line and exit code 2 with nothing written."""

import json

import pytest

from ghost.cli import main
from ghost.distill import run_distill


def _settings(out, **overrides):
    settings = dict(
        data="facts200:seed10",
        out=str(out),
        rounds=1,
        preset="tiny",
        steps=6,
        batch_size=8,
        seq_len=96,
        budget=60,
    )
    settings.update(overrides)
    return settings


@pytest.fixture(scope="module")
def one_round(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "run"
    results = run_distill(**_settings(out), threads=1, quiet=True)
    return out, results


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_round_writes_its_files_and_report_row(one_round):
    out, results = one_round
    for name in ("plan.json", "results.json", "report.md"):
        assert (out / name).is_file(), name
    for model in (out / "seed-0/round-0/model", out / "seed-0/round-1/model", out / "model"):
        assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()
    round_dir = out / "seed-0/round-1"
    for name in ("candidates.jsonl", "pairs.jsonl", "filters.json", "round.json"):
        assert (round_dir / name).is_file(), name
    assert results["complete"]
    rows = {r["round"]: r for r in results["rows"]}
    assert set(rows) == {0, 1}
    assert rows[0]["pairs"] == 10
    row = rows[1]
    assert row["pairs"] == 10 + row["added"] == len(_jsonl(round_dir / "pairs.jsonl"))
    assert row["candidates"] == len(_jsonl(round_dir / "candidates.jsonl")) <= 60
    for name in ("seeds", "seeds, casual", "validation"):
        assert 0.0 <= row["scores"][name]["exact_match"] <= 1.0
    assert row["diversity"]["distinct"] >= 10
    assert "By round" in (out / "report.md").read_text(encoding="utf-8")


def test_provenance_points_to_existing_parents(one_round):
    out, _ = one_round
    pairs = _jsonl(out / "seed-0/round-1/pairs.jsonl")
    ids = {p["id"] for p in pairs}
    assert len(ids) == len(pairs)
    for p in pairs:
        prov = p["provenance"]
        if prov["operator"] == "seed":
            continue
        assert prov["round"] == 1 and prov["operator"] and prov["parent"] in ids
        assert all(parent in ids for parent in prov["parents"])


def test_a_round_is_reproducible_from_its_seed(one_round, tmp_path):
    out, _ = one_round
    again = tmp_path / "again"
    run_distill(**_settings(again), threads=1, quiet=True)
    for name in ("candidates.jsonl", "pairs.jsonl", "filters.json"):
        assert (again / "seed-0/round-1" / name).read_bytes() == (
            out / "seed-0/round-1" / name
        ).read_bytes(), name


def test_resume_after_a_stop_finishes_the_run(tmp_path):
    out = tmp_path / "stopped"
    flags = ["distill", "--data", "facts200:seed10", "--rounds", "1", "--preset", "tiny",
             "--steps", "6", "--batch-size", "8", "--seq-len", "96", "--budget", "30",
             "--threads", "1", "--quiet", "--out", str(out)]  # fmt: skip
    assert main([*flags, "--stop-after", "1"]) == 0
    assert not json.loads((out / "results.json").read_text())["complete"]
    assert not (out / "seed-0/round-1/round.json").exists()
    assert main(["distill", "--out", str(out), "--resume", "--threads", "1", "--quiet"]) == 0
    assert json.loads((out / "results.json").read_text())["complete"]
    assert (out / "model/model.safetensors").is_file()


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?", "answer": "A"}\n{not json\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["distill", "--data", str(bad), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.jsonl" in err[0]
    assert not out.exists()
    assert main(["distill", "--operators", "reword,magic", "--out", str(out)]) == 2
    assert "magic" in capsys.readouterr().err
    assert main(["distill", "--recipe", "sorcery", "--out", str(out)]) == 2
    assert "sorcery" in capsys.readouterr().err and not out.exists()


def test_every_training_takes_the_model_and_recipes_asked_for(tmp_path):
    out = tmp_path / "run"
    flags = ["distill", "--data", "facts200:seed10", "--rounds", "1", "--preset", "tiny",
             "--steps", "4", "--batch-size", "8", "--seq-len", "96", "--budget", "20",
             "--reasoning", "chain", "--context-copy", "--recipe", "chain-practice:share=0.5",
             "--threads", "1", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(flags) == 0
    for run in (out / "seed-0/round-0/model", out / "model"):
        config = json.loads((run / "config.json").read_text())
        assert config["model"]["context_copy"] is True
        assert config["train"]["recipes"] == {"chain-practice": {"share": 0.5}}
