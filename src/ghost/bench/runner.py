"""Running a benchmark: paired runs of every arm over seeds, each in its own process, resumable.

    tests = [BenchTest(...), ...]              what to compare, on which data, to which target
    results = run_bench(tests, out_dir)        out_dir/runs/<key>.json per finished run

Order: for each seed, every test's arms run in turn (A B C A B C ...), so slow drift of a
shared machine hits every arm alike. A run is keyed by everything that decides its outcome
(training settings, recipes, seed, held-out splits), so an identical run needed by two tests
(a baseline shared by two tables) runs once, and a stopped bench skips the runs it finished.
Each run is `python -m ghost.bench.worker` in a fresh process: its own peak RSS, the kernel
and allocator as in normal use.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghost.bench.arms import Arm
from ghost.errors import GhostInputError


@dataclass
class Target:
    """The fixed quality a run must reach: `metric` (a curve key) at or past `value`.
    value None: the baseline's median final value of the metric, found after the runs."""

    metric: str = "train_exact_match"
    value: float | None = 0.95
    higher_is_better: bool = True

    @classmethod
    def parse(cls, text: str) -> Target:
        """'train_exact_match>=0.95', 'val_loss<=1.2', or 'val_loss' (the baseline's final)."""
        for op, higher in ((">=", True), ("<=", False)):
            if op in text:
                metric, _, value = text.partition(op)
                try:
                    return cls(metric.strip(), float(value), higher)
                except ValueError:
                    raise GhostInputError(f"--target {text!r}: {value!r} is not a number") from None
        metric = text.strip()
        if metric not in ("val_loss", "check_loss", "val_exact_match", "train_exact_match"):
            raise GhostInputError(
                f"--target {text!r}: expected METRIC>=VALUE, METRIC<=VALUE or a metric name"
            )
        return cls(metric, None, "exact_match" in metric)

    def describe(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        value = f"{self.value:g}" if self.value is not None else "the baseline's final value"
        return f"{self.metric} {op} {value}"


@dataclass
class BenchTest:
    """One comparison: arms (baseline first) on one dataset, to one target, over seeds."""

    key: str
    name: str
    question: str
    data: str
    arms: list[Arm]
    target: Target
    steps: int
    seeds: list[int]
    settings: dict[str, Any] = field(default_factory=dict)  # shared TrainConfig fields
    heldout: list[str] = field(default_factory=list)


def run_spec(test: BenchTest, arm: Arm, seed: int) -> dict:
    """What the worker runs: the test's settings, then the arm's, then the fixed ones."""
    train = {
        "eval_every": 5,
        "save_every": test.steps,  # one checkpoint at the end: a bench run is not resumed
        "quiet": True,
        # Recipes are compared on what they do to the weights. The default run trains the
        # memory in a stage after the weights (`--memory-steps`), which leaves the weights'
        # training as it is without it; that stage (measured by benchmarks/memory_facts.py)
        # is off here unless a test asks for it.
        "memory_training": "off",
        **test.settings,
        **arm.settings,
        "data": test.data,
        "steps": test.steps,
        "seed": seed,
        "recipes": arm.recipes,
    }
    return {"train": train, "heldout": list(test.heldout)}


def run_key(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def planned_runs(tests: list[BenchTest]) -> list[tuple[BenchTest, Arm, int, str, dict]]:
    """(test, arm, seed, key, spec) in running order; a key shared by tests appears once."""
    order, seen = [], set()
    seeds = sorted({s for t in tests for s in t.seeds})
    for seed in seeds:
        for test in tests:
            if seed not in test.seeds:
                continue
            for arm in test.arms:
                spec = run_spec(test, arm, seed)
                key = run_key(spec)
                if key not in seen:
                    seen.add(key)
                    order.append((test, arm, seed, key, spec))
    return order


def _run_worker(spec: dict, key: str, out_dir: Path) -> None:
    runs = out_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "train": {**spec["train"], "out": str(out_dir / "train" / key)}}
    spec_path = runs / f"{key}.spec.json"
    spec_path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    run_dir = out_dir / "train" / key
    if run_dir.exists():  # a run killed mid-way: start it again from nothing
        import shutil

        shutil.rmtree(run_dir)
    done = subprocess.run(
        [sys.executable, "-m", "ghost.bench.worker", str(spec_path), str(runs / f"{key}.json")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": _src_path()},
    )
    if done.returncode == 2:
        raise GhostInputError(done.stderr.strip().removeprefix("ghost bench: error: "))
    if done.returncode != 0:
        raise RuntimeError(f"bench run {key} failed: {done.stderr.strip()[-800:]}")


def _src_path() -> str:
    src = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)


def run_bench(
    tests: list[BenchTest], out_dir: Path, progress=print, workers: int = 1
) -> dict[str, dict]:
    """Run every planned run not already finished; returns {key: result} for all of them.
    `workers` > 1 runs that many at a time: only for smoke runs whose times mean nothing
    (`--plan phase6 --quick`), never for a comparison (runs sharing the CPU time each other)."""
    out_dir = Path(out_dir)
    plan = planned_runs(tests)
    finished = {key for *_, key, _ in plan if (out_dir / "runs" / f"{key}.json").exists()}
    todo = [p for p in plan if p[3] not in finished]
    if finished:
        progress(f"resuming: {len(finished)} of {len(plan)} runs already finished")
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        progress(f"running {len(todo)} runs, {workers} at a time (a smoke run: times mean nothing)")
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda p: _run_worker(p[4], p[3], out_dir), todo))
        todo = []
    durations: list[float] = []
    for i, (test, arm, seed, key, spec) in enumerate(todo, start=1):
        started = time.perf_counter()
        progress(f"[{i}/{len(todo)}] {test.key} {arm.name} seed {seed} ({test.steps} steps)...")
        _run_worker(spec, key, out_dir)
        durations.append(time.perf_counter() - started)
        left = sum(durations) / len(durations) * (len(todo) - i)
        progress(f"    done in {durations[-1]:.0f} s; about {left / 60:.1f} min left")
    return {
        key: json.loads((out_dir / "runs" / f"{key}.json").read_text(encoding="utf-8"))
        for *_, key, _ in plan
    }


def collect(test: BenchTest, results: dict[str, dict]) -> list[dict]:
    """The test's runs in the report schema: {"arm", "seed", "curve", "final"}."""
    runs = []
    for arm in test.arms:
        for seed in test.seeds:
            result = results[run_key(run_spec(test, arm, seed))]
            runs.append({"arm": arm.name, "seed": seed, **result})
    return runs
