"""Where a training step's time goes: a per-op profile of v5-fast's step on this CPU.

    python benchmarks/step_profile.py [--shapes 32x64,8x512] [--steps 5] [--precision fp32]
        [--threads 2]

For each batch shape, one v5-fast model trains the step Ghost's loop takes (forward with
labels, backward, gradient clipping, fused AdamW: train_throughput's `Trainer`, whose
phases are labelled for the profiler) on random bytes: 3 warm-up steps, then
`--steps` steps under torch.profiler. Reported per shape: wall milliseconds a step in each
phase (forward, backward, optimizer: the clip and AdamW), and the operators by self CPU time
a step (the fused scan kernel's forward and backward appear as `ghost::scan*` / the autograd
function's name), with their share of the step. Precision `auto` picks bf16 only where the CPU
has native bf16 matmul (as `ghost train` does); asking for bf16 on a CPU without it profiles
PyTorch's emulation, which says nothing about a bf16 host, so the script refuses.

Writes benchmarks/results/step_profile.{json,md} with the machine beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from ghost.launcher import ensure_fast_allocator

ensure_fast_allocator()

import torch  # noqa: E402
from train_throughput import Trainer, build_model, byte_batch  # noqa: E402

from ghost.bench.machine import machine_record  # noqa: E402
from ghost.runtime import configure, native_bf16, resolve_precision  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = ("forward", "backward", "optimizer")
WARMUP = 3
TOP = 25


def profile_shape(batch: int, length: int, steps: int, precision: str, seed: int = 0) -> dict:
    trainer, ids = Trainer(build_model("ghost", seed)), byte_batch(batch, length, seed)
    for _ in range(WARMUP):
        trainer.step(precision, ids)
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            with torch.profiler.record_function("step"):
                trainer.step(precision, ids)
    events = prof.key_averages()
    # Wall time of the labelled regions (CPU total of a record_function is its wall span).
    span = {e.key: e.cpu_time_total / 1e3 / steps for e in events if e.key in ("step", *PHASES)}
    # Self time per operator; the labels themselves are not operators.
    self_ms: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for e in events:
        if e.key in ("step", *PHASES):
            continue
        self_ms[e.key] += e.self_cpu_time_total / 1e3 / steps
        calls[e.key] += e.count // steps
    step_ms = span.get("step", sum(span.get(p, 0.0) for p in PHASES))
    ranked = sorted(self_ms.items(), key=lambda kv: -kv[1])
    ops = [
        {
            "op": name,
            "ms_per_step": round(ms, 2),
            "share": round(ms / step_ms, 4),
            "calls_per_step": calls[name],
        }
        for name, ms in ranked[:TOP]
    ]
    return {
        "batch": batch,
        "length": length,
        "step_ms": round(step_ms, 1),
        "phases_ms": {p: round(span.get(p, 0.0), 1) for p in PHASES},
        "ops": ops,
        "other_ops_ms": round(sum(ms for _, ms in ranked[TOP:]), 2),
    }


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# Per-op profile of a v5-fast training step (`{results['command']}`)",
        "",
        f"Machine: {m['cpu']} (family/model {m.get('cpu_family_model', '?')}; "
        f"flags of note: {', '.join(m.get('cpu_flags', [])) or 'none'}), {m['threads']} threads, "
        f"{m['allocator']}, torch {m['torch']}, precision {results['precision']}, "
        f"commit {m['commit']}{' (dirty)' if m.get('dirty') else ''}.",
        "",
        "Self CPU time per operator, averaged over the profiled steps (the profiler adds a",
        "little overhead of its own: compare shares, not absolute milliseconds, with untimed",
        "runs). Phases are wall time of the labelled regions.",
    ]
    for shape in results["shapes"]:
        ph = shape["phases_ms"]
        lines += [
            "",
            f"## batch {shape['batch']} x {shape['length']} bytes: {shape['step_ms']} ms a step",
            "",
            f"forward {ph['forward']} ms, backward {ph['backward']} ms, "
            f"optimizer (clip + AdamW) {ph['optimizer']} ms",
            "",
            "| operator | ms / step | share | calls / step |",
            "| --- | ---: | ---: | ---: |",
        ]
        for op in shape["ops"]:
            lines.append(
                f"| `{op['op']}` | {op['ms_per_step']:.2f} | {100 * op['share']:.1f}% "
                f"| {op['calls_per_step']} |"
            )
        lines.append(f"| (all other operators) | {shape['other_ops_ms']:.2f} | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="32x64,8x512", help="batch x length, comma-separated")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps per shape")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--out", type=Path, default=RESULTS / "step_profile.json")
    args = parser.parse_args(argv)
    precision = resolve_precision(args.precision)
    if precision == "bf16" and not native_bf16():
        print("step_profile: this CPU has no native bf16 matmul; profiling PyTorch's emulation")
        print("would not describe a bf16 host. Use --precision fp32 (or auto) here.")
        return 2
    threads = configure(args.threads)
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes.split(",")]
    command = "python benchmarks/step_profile.py " + " ".join(argv or sys.argv[1:])
    results = {
        "command": command.strip(),
        "precision": precision,
        "machine": machine_record(threads),
        "warmup_steps": WARMUP,
        "profiled_steps": args.steps,
        "shapes": [],
    }
    for batch, length in shapes:
        print(f"profiling {batch} x {length} ({precision}) ...", flush=True)
        results["shapes"].append(profile_shape(batch, length, args.steps, precision))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
