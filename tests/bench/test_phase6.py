"""The Phase 6 plan's composition (shared runs, sizes) and its two tables, on synthetic runs."""

import math

from ghost.bench import phase6
from ghost.bench.runner import planned_runs, run_key, run_spec
from ghost.bench.stats import summarize_test


def test_runs_shared_between_tables_run_once():
    scale = phase6.SCALES["full"]
    tests = {t.key: t for t in phase6.phase6_tests(scale)}

    def key(test, arm_name, seed=0):
        arm = next(a for a in tests[test].arms if a.name == arm_name)
        return run_key(run_spec(tests[test], arm, seed))

    assert key("techniques", "baseline") == key("test3", "baseline") == key("test4", "baseline")
    assert key("techniques", "byte-lr") == key("test3", "byte-lr")
    assert key("techniques", "baseline") != key("test2", "baseline")  # other data
    plan = planned_runs(list(tests.values()))
    arms_per_seed = 5 + 2 + 2 + 4  # techniques, test4's two combinations, test2, test1
    assert len(plan) == arms_per_seed * len(scale.seeds)
    assert all(spec["train"]["eval_every"] == scale.check_every for *_, spec in plan)
    # Recipes are compared on the weights: memory training is off in every run of the plan.
    assert all(spec["train"]["memory_training"] == "off" for *_, spec in plan)


def test_seeds_override_keeps_the_success_seeds_within_range():
    scale = phase6.SCALES["full"].with_seeds(5)
    assert scale.seeds == (0, 1, 2, 3, 4) and scale.success_seeds == 1
    assert phase6.SCALES["quick"].with_seeds(1).success_seeds == 1


def _run(arm, seed, speed, heldout=0.3, rss=500.0, final_loss=0.05):
    curve = [
        {
            "step": 10 * i,
            "train_seconds": 10.0 * i / speed,
            "check_loss": 3.0 * math.exp(-i / 4),
            "train_exact_match": min(1.0, i / 10),
        }
        for i in range(1, 13)
    ]
    final = {
        "steps": 120,
        "train_seconds": curve[-1]["train_seconds"],
        "check_loss": final_loss,
        "peak_rss_mib": rss,
        "heldout": {
            split: {"exact_match": heldout, "n": 100}
            for split in ("facts200:train", "facts200:paraphrase", "facts200:novel")
        },
    }
    return {"arm": arm, "seed": seed, "curve": curve, "final": final}


def _section(key, arms, speeds, **run_kwargs):
    runs = [
        _run(arm, seed, speeds[arm] * (1 + 0.01 * seed), **run_kwargs)
        for arm in arms
        for seed in range(3)
    ]
    section = {
        "key": key,
        "name": key,
        "data": "facts200",
        "steps": 120,
        "seeds": [0, 1, 2],
        "target": {"metric": "train_exact_match", "value": 0.95, "higher_is_better": True},
        "arms": arms,
        "arm_configs": {a: {"name": a, "recipes": {a: {}}, "settings": {}} for a in arms},
        "runs": runs,
    }
    section["summary"] = summarize_test(section)
    return section


def test_technique_table_has_a_row_per_technique_with_the_originals_numbers():
    arms = ["baseline", *phase6.QA_TECHNIQUES]
    speeds = {"baseline": 1.0, "curriculum": 1.3, "skip": 1.0, "byte-lr": 0.8, "depth-grad": 1.0}
    document = {"tests": [_section("techniques", arms, speeds)]}
    table = phase6.technique_table(document)
    assert [row[0] for row in table["rows"]] == phase6.QA_TECHNIQUES
    by_name = {row[0]: row for row in table["rows"]}
    assert by_name["curriculum"][1].startswith("1.30x") and by_name["curriculum"][4] == "USE"
    assert by_name["byte-lr"][4] == "SKIP"
    assert by_name["skip"][5] == phase6.ORIGINAL["skip"]["speedup"]
    assert by_name["curriculum"][3] == "30.0% / 30.0%"


def test_best_arm_is_the_fastest_use_arm_of_test4_and_success_table_reads_its_runs():
    arms = ["baseline", "curriculum+skip", "all"]
    test4 = _section("test4", arms, {"baseline": 1.0, "curriculum+skip": 1.2, "all": 1.5})
    best = phase6.best_arm({"tests": [test4]})
    assert best.name == "all"
    success_arms = ["baseline", "all", "all + grad-checkpoint"]
    success = _section("success", success_arms, {a: 1.0 for a in success_arms})
    for run in success["runs"]:
        if run["arm"] == "all + grad-checkpoint":
            run["final"]["peak_rss_mib"] = 300.0
    table = phase6.success_table({"tests": [test4, success]})
    metrics = [row[0] for row in table["rows"]]
    assert metrics[0].startswith("time for 120 training steps (v5-fast") and len(metrics) == 5
    assert "300 MiB (60%)" in table["rows"][-1][4]


def test_nothing_used_means_plain_training_is_best():
    test4 = _section("test4", ["baseline", "x"], {"baseline": 1.0, "x": 1.0})
    assert phase6.best_arm({"tests": [test4]}).name == "baseline"


def test_success_runs_without_a_duplicate_arm_when_nothing_earned_its_place():
    scale = phase6.SCALES["quick"]
    (success,) = phase6.success_tests(scale, phase6.Arm("baseline"))
    assert [a.name for a in success.arms] == ["baseline", "baseline + grad-checkpoint"]
    section = _section(
        "success", [a.name for a in success.arms], {a.name: 1.0 for a in success.arms}
    )
    table = phase6.success_table({"tests": [section]})
    assert table["title"].endswith("(baseline)")


def test_publish_writes_results_readme_tables_and_cards_without_touching_the_repo(tmp_path):
    import json
    import shutil
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo / "benchmarks"))
    import publish_phase6

    root = tmp_path / "checkout"
    (root / "docs").mkdir(parents=True)
    shutil.copytree(repo / "docs" / "recipes", root / "docs" / "recipes")
    (root / "README.md").write_text("# x\n\n<!-- phase6:begin -->\nold\n<!-- phase6:end -->\nend\n")
    arms = ["baseline", *phase6.QA_TECHNIQUES]
    speeds = {"baseline": 1.0, "curriculum": 1.3, "skip": 1.0, "byte-lr": 0.8, "depth-grad": 1.0}
    success_arms = ["baseline", "baseline + grad-checkpoint"]  # nothing earned its place
    document = {
        "title": "t",
        "command": "ghost bench --plan phase6 --out x",
        "machine": {"cpu": "Test CPU", "cpu_flags": ["avx2"], "threads": 2, "commit": "abc"},
        "method": ["Sizes: tiny things.", "m"],
        "tests": [
            _section("techniques", arms, speeds),
            _section("test3", ["baseline", "byte-lr"], speeds),
            _section("success", success_arms, dict.fromkeys(success_arms, 1.0)),
        ],
    }
    for test in document["tests"]:
        test["question"] = "?"
    document["tables"] = phase6.tables(document)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "results.json").write_text(json.dumps(document))
    assert publish_phase6.main([str(bench), "--root", str(root)]) == 0
    readme = (root / "README.md").read_text()
    assert "old" not in readme and readme.endswith("<!-- phase6:end -->\nend\n")
    assert "| curriculum | 1.30x" in readme and "Success metrics" in readme
    assert (root / "benchmarks" / "results" / "phase6" / "report.md").is_file()
    curriculum = (root / "docs" / "recipes" / "curriculum.md").read_text()
    assert "speed-up 1.30x" in curriculum and "To be filled" not in curriculum
    byte_lr = (root / "docs" / "recipes" / "byte-lr.md").read_text()
    assert byte_lr.count("arm `byte-lr`") == 1  # test3 repeats the same runs: reported once
    assert (
        "grad-checkpoint` peak RSS"
        in (root / "docs" / "recipes" / "grad-checkpoint.md").read_text()
    )
    assert "Not measured by the Phase 6 plan" in (root / "docs" / "recipes" / "fim.md").read_text()
    (bench / "results.json").unlink()
    assert publish_phase6.main([str(bench), "--root", str(root)]) == 2
