"""How fast a trained model answers: per question once loaded, one-shot `ghost ask`, and
`ghost eval` of a whole split, against the same commands of an older checkout, paired.

    python benchmarks/answer_latency.py RUN_DIR [--baseline-src DIR] [--rounds 5]

- loaded: median seconds per question through the API (`generate` with the end marker), for
  the question "What is the chemical symbol of gold?" (36 bytes + template), model in memory.
- one-shot: wall time of `ghost ask RUN_DIR QUESTION` in a fresh process, and of
  `python -c "import torch"` in the same rounds (the floor any torch program pays).
- eval: wall time of `ghost eval RUN_DIR --data facts200:train` (273 questions).
With --baseline-src (the `src` folder of another checkout, e.g. a `git worktree` of an
older commit) the one-shot and eval commands also run from that code, interleaved with
this checkout's in every round, so their ratio is measured side by side.
Writes benchmarks/results/answer_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ghost.bench.machine import allocator_loaded, machine_record
from ghost.data.template import QATemplate
from ghost.model.generate import generate
from ghost.model.ghost import GhostModel
from ghost.runtime import configure

QUESTION = "What is the chemical symbol of gold?"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def wall(command: list[str], src: str | None = None) -> float:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - start


def loaded_latency(run: str, repeats: int = 20) -> dict:
    configure(0, seed=0)
    model = GhostModel.from_pretrained(run)
    template = QATemplate.from_config(model.config)
    prompt = template.prompt(QUESTION)
    stop = bytes([template.marker])
    generate(model, [prompt], max_bytes=64, stop_bytes=stop)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        (answer,) = generate(model, [prompt], max_bytes=64, stop_bytes=stop)
        times.append(time.perf_counter() - start)
    return {
        "question": QUESTION,
        "prompt_bytes": len(prompt),
        "answer": template.clean_answer(answer),
        "median_ms": round(1e3 * statistics.median(times), 1),
        "min_ms": round(1e3 * min(times), 1),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--baseline-src", help="src/ of an older checkout to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/answer_latency")
    args = parser.parse_args(argv)
    machine = machine_record(torch.get_num_threads(), ghost_subprocesses=True)
    # The loaded-model timing runs in this process, with whatever allocator started it.
    machine["allocator_of_loaded_timing"] = allocator_loaded()
    ghost = [sys.executable, "-m", "ghost"]
    commands = {
        "import torch": ([sys.executable, "-c", "import torch"], None),
        "ghost ask": ([*ghost, "ask", args.run_dir, QUESTION], SRC),
        "ghost eval facts200:train": ([*ghost, "eval", args.run_dir, "--data", "facts200"], SRC),
        "ghost --help": ([*ghost, "--help"], SRC),
    }
    if args.baseline_src:
        # Older checkouts read only config format 1; the files are otherwise the same.
        old_run = Path(tempfile.mkdtemp()) / "run"
        shutil.copytree(args.run_dir, old_run)
        config = json.loads((old_run / "config.json").read_text())
        (old_run / "config.json").write_text(json.dumps({**config, "format_version": 1}))
        for name in ("ghost ask", "ghost eval facts200:train", "ghost --help"):
            command = [str(old_run) if c == args.run_dir else c for c in commands[name][0]]
            commands[f"{name} (baseline)"] = (command, args.baseline_src)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for command, src in commands.values():  # warm-up: kernel build, page cache
        wall(command, src)
    for _ in range(args.rounds):
        for name, (command, src) in commands.items():
            times[name].append(wall(command, src))
    medians = {name: round(statistics.median(t), 3) for name, t in times.items()}
    results = {
        "command": "python benchmarks/answer_latency.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine,
        "loaded": loaded_latency(args.run_dir),
        "wall_seconds_median": medians,
        "wall_seconds_all": {name: [round(x, 3) for x in t] for name, t in times.items()},
    }
    if args.baseline_src:
        results["ratios_baseline_over_this"] = {
            name: round(
                statistics.median(
                    b / a for a, b in zip(times[name], times[f"{name} (baseline)"], strict=True)
                ),
                2,
            )
            for name in ("ghost ask", "ghost eval facts200:train", "ghost --help")
        }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# Answer latency (`{results['command']}`)",
        "",
        f"Machine: {machine['cpu']} ({', '.join(machine['cpu_flags'])}), "
        f"{machine['threads']} threads, {machine['allocator']}, torch {machine['torch']}, "
        f"commit {machine['commit'][:7]}",
        "",
        f"Loaded model, one question ({results['loaded']['prompt_bytes']}-byte prompt, answer "
        f"{results['loaded']['answer']!r}): {results['loaded']['median_ms']} ms median.",
        "",
        "| command | median wall seconds |",
        "| --- | --- |",
        *(f"| `{name}` | {value} |" for name, value in medians.items()),
    ]
    if args.baseline_src:
        lines += ["", "Paired ratios, baseline / this checkout (median over rounds):", ""]
        lines += [f"- `{k}`: {v}x" for k, v in results["ratios_baseline_over_this"].items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
