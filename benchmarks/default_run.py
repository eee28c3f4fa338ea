"""The default run, measured as a user runs it: `ghost train --data facts200` (every default),
then `ghost eval` on each facts200 split, and a few questions asked in everyday form.

    python benchmarks/default_run.py [--out runs/default-bench] [--data facts200]
                                     [--results benchmarks/results/default_run]
                                     [-- TRAIN_FLAGS...]

Flags after `--` go to `ghost train` (e.g. `-- --augment none`, to measure a default against
its alternative); the results record them.

Records, beside the machine (CPU and flags, threads, allocator, torch, commit): the steps,
training seconds and stop reason of the run, exact match on every split (the trained ones and
the held-out `paraphrase` and `novel`, reported separately), and the trained questions asked
in lower case without their question mark. Writes RESULTS.json and RESULTS.md. Each ghost
command runs in its own process, as a user's would; nothing is tuned here.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from ghost.bench.machine import machine_record
from ghost.data.records import load_data

SPLITS = ["train", "test_10q", "test_hard", "paraphrase", "novel"]
WHAT = {
    "train": "the 200 facts + 73 trained multi-hop questions",
    "test_10q": "the original's basic benchmark",
    "test_hard": "trained 2- and 3-hop questions: the original's hard benchmark",
    "paraphrase": "trained facts asked in new words, never trained on (held out)",
    "novel": "untrained combinations of trained hops (held out)",
    "casual": "the train questions in lower case without '?' (`--augment surface`, the "
    "default since 1252e9d, trains such forms; `--augment none` never shows them)",
}


def ghost(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "ghost", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"ghost {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def casual_form(path: Path, data: str) -> Path:
    """The training questions as people type them: lower case, no question mark."""
    records = load_data(data).records
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            question = r["question"].rstrip().rstrip("?").lower()
            f.write(json.dumps({**r, "question": question}, ensure_ascii=False) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/default-bench", help="run directory (must be new)")
    parser.add_argument("--data", default="facts200")
    parser.add_argument("--results", default="benchmarks/results/default_run")
    parser.add_argument("train_flags", nargs="*", help="after --: more `ghost train` flags")
    args = parser.parse_args(argv)
    machine = machine_record(torch.get_num_threads(), ghost_subprocesses=True)
    run = Path(args.out)
    started = time.perf_counter()
    done = ghost("train", "--data", args.data, "--out", str(run), *args.train_flags)
    wall = time.perf_counter() - started
    stop = re.search(r"stopped after (\d+) steps \(([\d.]+) s\): (.+)", done.stdout)
    log = [line for line in done.stderr.splitlines() if line.startswith("step ")]
    scores = {}
    for split in [*SPLITS, "casual"]:
        data = f"{args.data}:{split}" if split != "casual" else None
        if data is None:
            data = str(casual_form(run / "casual.jsonl", args.data))
        out = run / f"eval_{split}.json"
        ghost("eval", str(run), "--data", data, "--json", str(out))
        scores[split] = json.loads(out.read_text())
    results = {
        "command": f"python benchmarks/default_run.py --data {args.data}"
        + (f" -- {' '.join(args.train_flags)}" if args.train_flags else ""),
        "machine": machine,
        "train": {
            "steps": int(stop[1]),
            "train_seconds": float(stop[2]),
            "stop_reason": stop[3],
            "wall_seconds_with_startup": round(wall, 1),
            "checks": log,
        },
        "exact_match": {
            split: {
                "exact_match": s["exact_match"],
                "correct": round(s["exact_match"] * s["n"]),
                "n": s["n"],
                "by_kind": s["by_kind"],
            }
            for split, s in scores.items()
        },
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def markdown(results: dict) -> str:
    m, t = results["machine"], results["train"]
    lines = [
        f"# Default run: `{results['command']}`",
        "",
        f"Machine: {m['cpu']} ({', '.join(m['cpu_flags'])}), {m['cores']} cores, "
        f"{m['threads']} threads, {m['allocator']}, torch {m['torch']}, commit {m['commit'][:7]}"
        + (" (dirty)" if m["dirty"] else ""),
        "",
        f"Training: {t['steps']} steps, {t['train_seconds']:.0f} s ({t['stop_reason']}).",
        "",
        "| split | exact match | what it is |",
        "| --- | --- | --- |",
    ]
    for split, s in results["exact_match"].items():
        lines.append(
            f"| `{split}` | {s['exact_match']:.1%} ({s['correct']}/{s['n']}) | {WHAT[split]} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
