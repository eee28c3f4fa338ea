"""`ghost bench` end to end on the tiny preset: arms, paired runs in worker processes, the
report, and resuming a stopped bench."""

import json

import pytest
from tiny_runs import write_qa

from ghost.bench import bench
from ghost.bench.arms import parse_arms, read_arms_file
from ghost.bench.runner import BenchTest, Target, planned_runs
from ghost.cli import main
from ghost.errors import GhostInputError


def test_arms_parse_from_the_flag_and_a_toml_file(tmp_path):
    arms = parse_arms("baseline,curriculum+skip:threshold=0.8")
    assert [a.name for a in arms] == ["baseline", "curriculum+skip:threshold=0.8"]
    assert arms[1].recipes == {"curriculum": {}, "skip": {"threshold": 0.8}}
    path = tmp_path / "arms.toml"
    path.write_text(
        "[arms.fast]\nrecipes.curriculum = {}\nrecipes.skip = { threshold = 0.9 }\n"
        "grad_checkpoint = true\n"
    )
    (fast,) = read_arms_file(path)
    assert fast.recipes == {"curriculum": {}, "skip": {"threshold": 0.9}}
    assert fast.settings == {"grad_checkpoint": True}
    path.write_text("[arms.bad]\nsteps = 5\n")
    with pytest.raises(GhostInputError, match="not a setting an arm may change"):
        read_arms_file(path)
    with pytest.raises(GhostInputError, match="given twice"):
        parse_arms("baseline,baseline")


def test_targets_parse():
    assert Target.parse("train_exact_match>=0.9") == Target("train_exact_match", 0.9, True)
    assert Target.parse("val_loss<=1.5") == Target("val_loss", 1.5, False)
    assert Target.parse("val_loss") == Target("val_loss", None, False)
    with pytest.raises(GhostInputError):
        Target.parse("accuracy")


def test_identical_runs_of_two_tests_are_planned_once():
    arms = parse_arms("baseline,byte-lr")
    common = dict(data="facts200", target=Target(), steps=10, seeds=[0, 1])
    a = BenchTest("a", "A", "?", arms=arms, **common)
    b = BenchTest("b", "B", "?", arms=arms[:1], **common)
    plan = planned_runs([a, b])
    assert len(plan) == 4  # b's baseline runs are a's
    assert [(t.key, arm.name, seed) for t, arm, seed, _, _ in plan] == [
        ("a", "baseline", 0),
        ("a", "byte-lr", 0),  # arms alternate within a seed
        ("a", "baseline", 1),
        ("a", "byte-lr", 1),
    ]


def test_a_small_bench_writes_its_report_and_resumes(tmp_path):
    data = write_qa(tmp_path / "capitals.jsonl")
    out = tmp_path / "bench"
    settings = dict(preset="tiny", batch_size=8, threads=1, lr=0.01)
    messages = []
    results = bench(
        data=str(data),
        arms="baseline,byte-lr",
        out=out,
        seeds=2,
        steps=10,
        heldout=[str(data)],
        progress=messages.append,
        **settings,
    )
    for name in ("results.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    assert list(out.glob("*.png"))
    saved = json.loads((out / "results.json").read_text())
    (test,) = saved["tests"]
    assert {(r["arm"], r["seed"]) for r in test["runs"]} == {
        (arm, seed) for arm in ("baseline", "byte-lr") for seed in (0, 1)
    }
    run = test["runs"][0]
    assert run["curve"][-1]["step"] == 10 and run["final"]["peak_rss_mib"] > 0
    assert 0 <= run["final"]["heldout"][str(data)]["exact_match"] <= 1
    assert set(test["summary"]) == {"baseline", "byte-lr"}
    report = (out / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| byte-lr")]
    assert rows, report
    assert saved["machine"]["cpu"] and saved["machine"]["commit"]
    assert results["tests"][0]["summary"]["byte-lr"]["speedup"] is not None

    # A second call finds every run finished and trains nothing.
    messages.clear()
    bench(data=str(data), arms="baseline,byte-lr", out=out, seeds=2, steps=10,
          heldout=[str(data)], progress=messages.append, **settings)  # fmt: skip
    assert messages[0] == "resuming: 4 of 4 runs already finished"
    assert not any(m.startswith("[") for m in messages)


def test_bench_usage_errors_exit_2(capsys, tmp_path):
    assert main(["bench", "--out", str(tmp_path / "b")]) == 2
    assert "give --data" in capsys.readouterr().err
    assert main(["bench", "--plan", "phase6", "--data", "x", "--out", str(tmp_path)]) == 2
