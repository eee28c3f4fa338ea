"""This checkout's training step against another commit's, paired, on one machine.

    git worktree add /tmp/old <commit>
    python benchmarks/train_vs_commit.py --baseline-src /tmp/old/src [--rounds 3] [--steps 20]
        [-- any ghost train flags; default: --data code50 --batch-size 32 --seq-len 64]

Each round trains the same short run once from each checkout (alternating which goes
first), each `ghost train` in its own process as a user runs it; the per-step times in
metrics.csv (training only, checks excluded) after the first 3 steps are pooled per side.
Reports the medians and their ratio, and each whole command's wall time (start-up, data,
training, the final check, saving: what a user waits for). Writes
benchmarks/results/train_vs_commit.{json,md} (`--out` elsewhere).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ghost.bench.machine import machine_record

SRC = str(Path(__file__).resolve().parents[1] / "src")
WARMUP_STEPS = 3


def step_times(src: str, flags: list[str], steps: int) -> tuple[list[float], float]:
    """Per-step seconds after the warm-up, and the command's wall seconds."""
    out = Path(tempfile.mkdtemp()) / "run"
    command = [sys.executable, "-m", "ghost", "train", *flags, "--steps", str(steps)]
    command += ["--eval-every", str(steps), "--quiet", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": src}
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{src}: ghost train failed: {done.stderr.strip()[-500:]}")
    with open(out / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["step_seconds"]]
    return [float(r["step_seconds"]) for r in rows[WARMUP_STEPS:]], wall


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/train_vs_commit")
    args, flags = parser.parse_known_args(argv)
    flags = [f for f in flags if f != "--"] or [
        "--data", "code50", "--batch-size", "32", "--seq-len", "64",
    ]  # fmt: skip
    machine = machine_record(torch.get_num_threads(), ghost_subprocesses=True)
    sides = {"this checkout": SRC, "baseline": args.baseline_src}
    times: dict[str, list[float]] = {name: [] for name in sides}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            steps, wall = step_times(sides[name], flags, args.steps)
            times[name] += steps
            walls[name].append(round(wall, 2))
    medians = {name: statistics.median(t) for name, t in times.items()}
    results = {
        "command": "python benchmarks/train_vs_commit.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine,
        "flags": flags,
        "steps_per_run": args.steps,
        "rounds": args.rounds,
        "median_step_seconds": {k: round(v, 4) for k, v in medians.items()},
        "ratio_this_over_baseline": round(medians["this checkout"] / medians["baseline"], 3),
        "command_wall_seconds": walls,
        "step_seconds": times,
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    text = (
        f"# Training step: this checkout vs {args.baseline_src}\n\n"
        f"`{results['command']}`\n\nMachine: {machine['cpu']} ({', '.join(machine['cpu_flags'])}), "
        f"{machine['threads']} threads, {machine['allocator']}, commit {machine['commit'][:7]}\n\n"
        f"Median step: this checkout {medians['this checkout'] * 1e3:.0f} ms, baseline "
        f"{medians['baseline'] * 1e3:.0f} ms; ratio {results['ratio_this_over_baseline']} "
        f"({len(times['this checkout'])} steps a side, {args.rounds} rounds, first "
        f"{WARMUP_STEPS} steps of each run left out).\n\n"
        f"Whole `ghost train` command ({args.steps} steps), wall seconds per run: this checkout "
        f"{walls['this checkout']}, baseline {walls['baseline']}.\n"
    )
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
