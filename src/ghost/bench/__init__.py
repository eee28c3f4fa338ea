"""`ghost bench`: which recipe helps, by how much, and how sure we are, with the evidence.

    from ghost.bench import bench, run_plan
    results = bench(data="facts200", arms="baseline,curriculum,skip", out="bench/facts")
    results = run_plan("phase6", out="bench/phase6", quick=True)

Each writes OUT/results.json (machine, settings, every run's curve), OUT/report.md,
OUT/report.html (plots embedded) and PNG plots, and resumes when OUT already holds runs.
The parts: `arms` (what is compared), `runner` (paired runs in worker processes),
`stats` (time to target, paired speed-ups with intervals, verdicts), `report`, `phase6`
(the original author's test plan).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ghost.bench.arms import BASELINE, Arm, parse_arms
from ghost.bench.runner import BenchTest, Target, collect, run_bench
from ghost.errors import GhostInputError

__all__ = ["Arm", "BenchTest", "Target", "bench", "run_plan", "run_tests"]

METHOD = [
    "Every arm trains a fixed number of steps with the same warm-up + cosine schedule (not "
    "--steps auto, whose learning-rate drops would differ between arms); the target is "
    "checked every `eval_every` steps of the test's settings (training exact match, teacher-"
    "forced, on a fixed sample of up to 1,024 training records, or the loss on a fixed "
    "validation set).",
    "Within each seed the arms run one after another (A B C A B C ...) in one invocation, "
    "each in its own process; every arm of a seed sees the same data order.",
    "Time to target is training time: the sum of the steps' own times, each recipe's extra "
    "work (scoring passes, carried states) included, evaluation and checkpoint writes "
    "excluded. A run that misses the target within its steps is censored at its last check "
    "and shown as such, never dropped.",
    "Speed-up: the geometric mean of the per-seed paired ratios (baseline time / arm time), "
    "with a 95% Student-t interval on the mean of the log-ratios. Final loss: the loss at "
    "the end of the fixed budget, paired by seed, with its 95% t interval.",
]


def _write(results: dict, out: Path) -> dict:
    from ghost.bench.report import write_report
    from ghost.model.io import atomic_write_text

    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    return write_report(results, out)


def _tests_section(tests: list[BenchTest], results: dict[str, dict]) -> list[dict]:
    from ghost.bench.stats import summarize_test

    sections = []
    for test in tests:
        section = {
            "key": test.key,
            "name": test.name,
            "question": test.question,
            "data": test.data,
            "steps": test.steps,
            "seeds": test.seeds,
            "settings": test.settings,
            "heldout": test.heldout,
            "target": {
                "metric": test.target.metric,
                "value": test.target.value,
                "higher_is_better": test.target.higher_is_better,
            },
            "arms": [arm.name for arm in test.arms],
            "arm_configs": {arm.name: arm.to_dict() for arm in test.arms},
            "runs": collect(test, results),
        }
        section["summary"] = summarize_test(section)
        sections.append(section)
    return sections


def run_tests(
    tests: list[BenchTest],
    out: str | Path,
    title: str,
    command: str,
    progress=print,
    method: list[str] | None = None,
    workers: int = 1,
) -> dict:
    """Run `tests` (resuming in `out`), then write results.json and the report."""
    from ghost.bench.machine import machine_record
    from ghost.runtime import configure

    out = Path(out)
    threads = configure(0)
    results = run_bench(tests, out, progress, workers)
    document = {
        "title": title,
        "command": command,
        "machine": machine_record(threads),
        "method": method or METHOD,
        "tests": _tests_section(tests, results),
    }
    paths = _write(document, out)
    progress(f"report: {paths['markdown']} and {paths['html']}")
    return document


def bench(
    data: str,
    arms: str | list[Arm] = "baseline",
    out: str | Path = "bench",
    seeds: int = 5,
    target: str | Target | None = None,
    steps: int = 200,
    heldout: list[str] | None = None,
    arms_file: str | Path | None = None,
    progress=print,
    **settings,
) -> dict:
    """Compare `arms` (baseline first) on `data` over `seeds` seeds; `settings` are training
    settings shared by every arm (preset, batch_size, seq_len, lr, val_data, val_fraction...).

    The target defaults to 95% training exact match for Q&A data and to the baseline's final
    validation loss for text (hold out validation data with val_fraction or val_data)."""
    from ghost.data.mixture import load_training_data

    arm_list = arms if isinstance(arms, list) else parse_arms(arms, arms_file)
    if arm_list[0].name != BASELINE and not any(a.name == BASELINE for a in arm_list):
        arm_list = [Arm(BASELINE), *arm_list]  # every comparison is against plain training
    arm_list.sort(key=lambda a: a.name != BASELINE)
    if isinstance(target, str):
        target = Target.parse(target)
    if target is None:
        kind = load_training_data(data).kind
        target = Target() if kind == "qa" else Target("val_loss", None, False)
        if kind == "text" and not (settings.get("val_data") or settings.get("val_fraction")):
            settings["val_fraction"] = 0.1
    test = BenchTest(
        key="bench",
        name=f"{', '.join(a.name for a in arm_list)} on {data}",
        question="Which arm reaches the target sooner, and at what final loss?",
        data=data,
        arms=arm_list,
        target=target,
        steps=steps,
        seeds=list(range(seeds)),
        settings=settings,
        heldout=list(heldout or []),
    )
    command = "ghost bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "bench()"
    return run_tests([test], out, f"ghost bench: {test.name}", command, progress)


def run_plan(
    name: str = "phase6",
    out: str | Path = "bench/phase6",
    quick: bool = False,
    seeds: int | None = None,
    progress=print,
) -> dict:
    """The original author's Phase 6 plan (`ghost.bench.phase6`), then its two tables.
    `seeds` replaces the scale's own seed count (seeds 0..seeds-1)."""
    from ghost.bench import phase6

    if name != "phase6":
        raise GhostInputError(f"--plan {name!r}: the only plan is phase6")
    scale = phase6.SCALES["quick" if quick else "full"]
    if seeds is not None:
        scale = scale.with_seeds(seeds)
    tests = phase6.phase6_tests(scale)
    command = (
        f"ghost bench --plan phase6{' --quick' if quick else ''}"
        f"{f' --seeds {seeds}' if seeds is not None else ''} --out {out}"
    )
    title = f"Phase 6 test plan ({'quick, tiny preset' if quick else scale.preset + ' preset'})"
    method = [f"Sizes: {scale.why}.", *METHOD]
    workers = scale.workers
    document = run_tests(tests, out, title, command, progress, method, workers)
    best = phase6.best_arm(document)
    tests = tests + phase6.success_tests(scale, best)
    document = run_tests(tests, out, title, command, progress, method, workers)
    document["tables"] = phase6.tables(document)
    _write(document, Path(out))
    return document
