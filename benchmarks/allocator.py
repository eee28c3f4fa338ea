"""Which allocator should Ghost train with? glibc malloc vs tcmalloc, measured side by side.

    python benchmarks/allocator.py [--rounds 4] [--steps 5] [--threads 2]

The allocator is fixed when a process starts, so each measurement is a fresh worker process
(LD_PRELOAD set or cleared) that builds Ghost v5-fast, takes 2 warm-up training steps and
then `--steps` timed ones at batch 32 x 64 and 8 x 512 (the shapes of train_throughput.py).
Workers alternate allocators round by round, so drift on a shared machine hits both; the
ratio is taken per round and its median reported. Also records each worker's peak RSS.
Writes benchmarks/results/allocator.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHAPES = ((32, 64), (8, 512))


def worker(steps: int, threads: int) -> None:
    import torch

    from ghost.runtime import configure

    sys.path.insert(0, str(HERE))
    from memory_measure import proc_status_kib
    from train_throughput import Trainer, build_model, byte_batch

    configure(threads=threads, seed=0)
    trainer = Trainer(build_model("ghost", seed=0))
    out = {
        "allocator": "tcmalloc" if "tcmalloc" in Path("/proc/self/maps").read_text() else "system"
    }
    for batch, length in SHAPES:
        ids = byte_batch(batch, length)
        for _ in range(2):
            trainer.step("fp32", ids)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            trainer.step("fp32", ids)
            times.append(time.perf_counter() - start)
        out[f"{batch}x{length}"] = times
    out["peak_rss_mib"] = round(proc_status_kib("VmHWM") / 1024, 1)
    out["torch_threads"] = torch.get_num_threads()
    print(json.dumps(out))


def run_worker(allocator: str, tcmalloc: str, steps: int, threads: int) -> dict:
    env = dict(os.environ)
    preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p and "tcmalloc" not in p]
    if allocator == "tcmalloc":
        preload.insert(0, tcmalloc)
    env["LD_PRELOAD"] = ":".join(preload)
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--steps",
        str(steps),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["allocator"] == allocator, f"asked for {allocator}, got {result['allocator']}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.steps, args.threads)

    sys.path.insert(0, str(HERE))
    from ghost.bench.machine import machine_record
    from ghost.launcher import find_tcmalloc

    tcmalloc = find_tcmalloc()
    if tcmalloc is None:
        sys.exit(
            "allocator.py: tcmalloc is not installed here (apt-get install libtcmalloc-minimal4)"
        )
    allocators = ("system", "tcmalloc")
    runs: dict[str, list[dict]] = {a: [] for a in allocators}
    for r in range(args.rounds):
        order = allocators if r % 2 == 0 else allocators[::-1]  # alternate who goes first
        for allocator in order:
            runs[allocator].append(run_worker(allocator, tcmalloc, args.steps, args.threads))
            print(f"round {r + 1}/{args.rounds}: {allocator} done", file=sys.stderr)

    results = {
        "benchmark": "allocator",
        "command": "python benchmarks/allocator.py " + " ".join(sys.argv[1:]),
        "machine": machine_record(args.threads),
        "config": {
            "model": "ghost v5-fast",
            "precision": "fp32",
            "optimizer": "AdamW",
            "rounds": args.rounds,
            "timed_steps_per_round": args.steps,
            "warmup_steps": 2,
        },
        "tcmalloc_library": tcmalloc,
        "shapes": {},
        "peak_rss_mib": {
            a: statistics.median(w["peak_rss_mib"] for w in runs[a]) for a in allocators
        },
    }
    print(f"\n{'shape':>8} {'system ms':>10} {'tcmalloc ms':>12} {'system / tcmalloc':>18}")
    for batch, length in SHAPES:
        key = f"{batch}x{length}"
        per = {a: [statistics.median(w[key]) * 1e3 for w in runs[a]] for a in allocators}
        ratios = [s / t for s, t in zip(per["system"], per["tcmalloc"], strict=True)]
        results["shapes"][key] = {
            "ms_per_step_median": {a: round(statistics.median(per[a]), 1) for a in allocators},
            "ms_per_step_rounds": {a: [round(x, 1) for x in per[a]] for a in allocators},
            "system_over_tcmalloc": {
                "median": round(statistics.median(ratios), 3),
                "min": round(min(ratios), 3),
                "max": round(max(ratios), 3),
            },
        }
        row = results["shapes"][key]
        print(
            f"{key:>8} {row['ms_per_step_median']['system']:>10} "
            f"{row['ms_per_step_median']['tcmalloc']:>12} "
            f"{row['system_over_tcmalloc']['median']:>10}x "
            f"[{row['system_over_tcmalloc']['min']}-{row['system_over_tcmalloc']['max']}]"
        )
    print(f"peak RSS MiB: {results['peak_rss_mib']}")
    path = HERE / "results" / "allocator.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
