"""`ghost continual` on two tiny tasks: EWC forgets less than naive fine-tuning, a run
stopped between tasks and resumed gives the straight run's matrices, and bad input is one
line and exit code 2 with nothing written."""

import json

import pytest
from tiny_runs import CAPITALS
from two_tasks import tiny_settings

from ghost.cli import main
from ghost.continual import run_continual
from ghost.errors import GhostInputError


@pytest.mark.parametrize("form", ["diagonal", "kfac"])
def test_ewc_forgets_measurably_less_than_naive_fine_tuning(form, two_tasks, tmp_path):
    results = run_continual(
        **tiny_settings(two_tasks, strategies=["naive", "ewc"], steps_per_task=80),
        ewc_lambda=1e4,
        fisher_form=form,
        out=str(tmp_path / "cl"),
    )
    naive, ewc = results["runs"]["naive"]["0"], results["runs"]["ewc"]["0"]
    assert naive["nodes"][0] == ewc["nodes"][0]  # the first task is one shared training
    assert naive["retention"][0][0] == ewc["retention"][0][0] == 1.0
    assert naive["retention"][1][1] == 1.0 and ewc["retention"][1][1] >= 0.75  # both learnt B
    # Forgetting of the first task: exact match (coarse on 4 records) and the mean loss of
    # its answer bytes (nats), which the exact match is a threshold of.
    em = {
        name: r["retention"][0][0] - r["retention"][1][0]
        for name, r in (("naive", naive), ("ewc", ewc))
    }
    rise = {
        name: r["retention_loss"][1][0] - r["retention_loss"][0][0]
        for name, r in (("naive", naive), ("ewc", ewc))
    }
    assert naive["retention"][1][0] == 0.0 and rise["naive"] > 3.0  # naive forgets it all
    assert em["ewc"] <= em["naive"]
    assert rise["ewc"] < 0.4 * rise["naive"]
    summary = results["summary"]
    assert summary["ewc"]["retention"]["average_forgetting"]["median"] <= 1.0
    assert (tmp_path / "cl" / "report.md").is_file()
    fisher = "fisher-kfac.safetensors" if form == "kfac" else "fisher.safetensors"
    assert (tmp_path / "cl" / "runs" / ewc["nodes"][0] / fisher).is_file()
    assert results["fisher"]["form"] == form and results["timing"]["fisher_seconds"] > 0
    assert (tmp_path / "cl" / "ewc" / "seed-0" / "2-task_b" / "model.safetensors").is_file()


def test_resume_between_tasks_gives_the_same_matrices_as_a_straight_run(two_tasks, tmp_path):
    settings = tiny_settings(two_tasks, strategies=["naive", "ewc", "replay"], steps_per_task=20)
    straight = run_continual(**settings, ewc_lambda=1e4, out=str(tmp_path / "straight"))
    out = tmp_path / "stopped"
    flags = ["continual", "--tasks", ",".join(two_tasks), "--strategy", "naive,ewc,replay",
             "--preset", "tiny", "--batch-size", "8", "--lr", "0.01", "--eval-size", "8",
             "--steps-per-task", "20", "--ewc-lambda", "1e4", "--threads", "1", "--quiet",
             "--out", str(out)]  # fmt: skip
    assert main([*flags, "--stop-after", "2"]) == 0
    stopped = json.loads((out / "results.json").read_text())
    assert not stopped["complete"] and stopped["timing"]["trainings"] == 2
    assert main(["continual", "--out", str(out), "--resume", "--threads", "1", "--quiet"]) == 0
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["complete"]
    for strategy in ("naive", "ewc", "replay"):
        for kind in ("retention", "retention_loss"):
            assert resumed["runs"][strategy]["0"][kind] == straight["runs"][strategy]["0"][kind]
    # A resumed run keeps its settings.
    assert main(["continual", "--out", str(out), "--resume", "--steps-per-task", "5"]) == 2


def test_a_plan_from_before_the_fisher_form_resumes_with_the_diagonal_it_used(tmp_path):
    from ghost.continual.config import ContinualConfig, check_plan, saved_plan, write_plan

    out = tmp_path / "old"
    out.mkdir()
    config = ContinualConfig(tasks=["facts200", "bash100"], out=str(out))
    plan = config.to_dict()
    del plan["fisher_form"]  # as plan.json was written before the setting existed
    (out / "plan.json").write_text(json.dumps({"config": plan}))
    assert config.fisher_form == "kfac" and saved_plan(out)["fisher_form"] == "diagonal"
    check_plan(out, ContinualConfig(**{**saved_plan(out), "out": str(out)}), resume=True)
    with pytest.raises(GhostInputError, match="--fisher-form 'kfac' differs"):
        check_plan(out, config, resume=True)
    write_plan(out, config)  # a new plan states it
    assert saved_plan(out)["fisher_form"] == "kfac"


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--tasks", "facts200,nosuch"], "nosuch: no such file or built-in dataset"),
        (["--tasks", "facts200,bash100", "--strategy", "ewc,magic"], "unknown strategy 'magic'"),
        (["--tasks", "facts200,bash100", "--ewc-lambda", "-3"], "--ewc-lambda"),
        (["--tasks", "facts200,bash100", "--ewc-lambda", "lots"], "--ewc-lambda"),
        (["--tasks", "facts200"], "at least two tasks"),
        (["--tasks", "facts200,bash100", "--heldout", "-"], "--heldout: give one per task"),
        (["--tasks", "facts200,code50:test"], "holds text records"),
        (["--out", "x"], "--tasks is required"),
        (
            ["--tasks", "facts200,bash100", "--fisher-draws", "2", "--fisher-targets", "empirical"],
            "--fisher-draws above 1 needs --fisher-targets model",
        ),
        (["--tasks", "facts200,bash100", "--fisher-draws", "0"], "--fisher-draws"),
        (["--tasks", "facts200,bash100", "--fisher-form", "full"], "--fisher-form"),
        (
            ["--tasks", "facts200,bash100", "--fisher-form", "kfac", "--ewc-update", "proximal"],
            "--ewc-update proximal needs --fisher-form diagonal",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(flags, needle, tmp_path, capsys):
    out = tmp_path / "cl"
    args = ["continual", *flags] + ([] if "--out" in flags else ["--out", str(out)])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not out.exists()


def test_a_corrupt_fisher_file_in_a_run_stops_the_resume_with_exit_2(two_tasks, tmp_path, capsys):
    out = tmp_path / "cl"
    flags = ["continual", "--tasks", ",".join(two_tasks), "--strategy", "ewc", "--preset",
             "tiny", "--steps-per-task", "5", "--ewc-lambda", "10", "--threads", "1", "--quiet",
             "--out", str(out)]  # fmt: skip
    assert main([*flags, "--stop-after", "1"]) == 0
    (first,) = (out / "runs").iterdir()
    (first / "fisher-kfac.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    capsys.readouterr()
    assert main(["continual", "--out", str(out), "--resume", "--threads", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt Fisher file" in err and "Traceback" not in err


def test_the_memory_strategy_leaves_the_first_tasks_facts_in_the_bank(tmp_path):
    """`memory`: the task whose records carry facts trains the memory and writes its facts to
    the bank; the next task starts from that bank, practising reading on generated facts
    while it learns its own data. A resumed
    run may add the strategy: the trainings it shares with the run's are not done again."""
    from two_tasks import write_tasks

    from ghost.model.io import read_memory_text

    tasks = write_tasks(tmp_path, facts=True)
    out = tmp_path / "cl"
    first = run_continual(
        **tiny_settings(tasks, strategies=["naive"], steps_per_task=10), out=str(out)
    )
    assert first["timing"]["trainings"] == 2
    results = run_continual(
        **tiny_settings(tasks, strategies=["naive", "memory"], steps_per_task=10),
        out=str(out),
        resume=True,
    )
    assert results["timing"]["trainings"] == 2 + 2  # naive's two were reused
    memory_nodes = results["runs"]["memory"]["0"]["nodes"]
    assert memory_nodes[0] != results["runs"]["naive"]["0"]["nodes"][0]
    facts = sorted(f"The capital of {c} is {city}." for c, city in CAPITALS.items())
    for node in memory_nodes:
        run = out / "runs" / node
        assert sorted(read_memory_text(run / "memory.jsonl")[1]) == facts
        trained_with = json.loads((run / "config.json").read_text())["train"]["memory_trained_with"]
        assert trained_with is not None  # A trains the memory; B practises reading
    assert "memory" in (out / "report.md").read_text()
    assert json.loads((out / "plan.json").read_text())["config"]["strategies"] == [
        "naive",
        "memory",
    ]


def test_memory_ewc_shares_the_memory_strategys_first_task_and_adds_the_penalty(tmp_path):
    """`memory-ewc`: the first task is `memory`'s training (one node), the second keeps the
    bank and reading practice of `memory` and adds the EWC penalty on the first node's
    Fisher."""
    from two_tasks import write_tasks

    from ghost.model.io import read_memory_text

    tasks = write_tasks(tmp_path, facts=True)
    out = tmp_path / "cl"
    results = run_continual(
        **tiny_settings(tasks, strategies=["memory", "memory-ewc"], steps_per_task=10),
        ewc_lambda=1e4,
        out=str(out),
    )
    assert results["timing"]["trainings"] == 3  # the first task once, the second twice
    memory, both = results["runs"]["memory"]["0"], results["runs"]["memory-ewc"]["0"]
    assert memory["nodes"][0] == both["nodes"][0] and memory["nodes"][1] != both["nodes"][1]
    first, second = (out / "runs" / node for node in both["nodes"])
    assert (first / "fisher-kfac.safetensors").is_file()
    node = json.loads((second / "node.json").read_text())
    assert set(node["code"]) == {"commit", "dirty"}  # the code that trained it
    spec = node["spec"]
    assert spec["memory"] and spec["rehearse_reading"]
    assert spec["penalty"]["recipe"] == "ewc" and spec["penalty"]["lambda"] == 1e4
    facts = sorted(f"The capital of {c} is {city}." for c, city in CAPITALS.items())
    assert sorted(read_memory_text(second / "memory.jsonl")[1]) == facts
    assert "memory-ewc" in (out / "report.md").read_text()
