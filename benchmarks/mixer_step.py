"""The Mamba mixer's fused kernels against their previous form, in a v5-fast training step.

    python benchmarks/mixer_step.py [--shape 32x64] [--rounds 4] [--steps 10] [--threads 2]

Two v5-fast models built from the same seed train the step Ghost's loop takes (forward with
labels, backward, gradient clipping, fused AdamW, fp32) on the same random bytes:

- before: the causal convolution + SiLU in PyTorch ops (`causal_conv_silu_ref`: K shifted
  multiply-adds, then silu), and the fused scan given a contiguous copy of z whose backward
  recomputes <h_t, C_t> for the gate's gradient;
- after: the fused convolution + SiLU kernel (`causal_conv_silu`), and the scan reading z in
  place from in_proj's output and keeping <h_t, C_t> from its forward.

The two alternate in one process, `--steps` steps each per round, so load from other
processes hits both alike. Reported: each side's median step time, and the median over
rounds of the per-round ratio after / before.

Writes benchmarks/results/mixer_step.{json,md} with the machine beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ghost.launcher import ensure_fast_allocator

ensure_fast_allocator()

import torch  # noqa: E402
from paired_timing import Case, paired_ratio, run_interleaved, summary  # noqa: E402
from train_throughput import Trainer, build_model, byte_batch  # noqa: E402

from ghost.bench.machine import machine_record  # noqa: E402
from ghost.model import mamba, scan_fused  # noqa: E402
from ghost.model.scan import causal_conv_silu_ref  # noqa: E402
from ghost.model.scan_fused import _gate, causal_conv_silu, kernel_status  # noqa: E402
from ghost.runtime import configure  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _copied_gate(z):
    return None if z is None else z.float().contiguous()


# What each side sets before its step: module globals read at call time.
VARIANTS = {
    "before": [
        (mamba, "causal_conv_silu", causal_conv_silu_ref),
        (scan_fused, "_gate", _copied_gate),
        (scan_fused, "_KEEP_Y0", False),
    ],
    "after": [
        (mamba, "causal_conv_silu", causal_conv_silu),
        (scan_fused, "_gate", _gate),
        (scan_fused, "_KEEP_Y0", True),
    ],
}


def training_step(variant: str, ids: torch.Tensor, seed: int = 0):
    """A closure running one training step of a fresh model with `variant`'s kernels."""
    trainer = Trainer(build_model("ghost", seed))

    def step() -> None:
        for module, name, value in VARIANTS[variant]:
            setattr(module, name, value)
        trainer.step("fp32", ids)

    return step


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# Mixer kernels before / after in a v5-fast training step (`{results['command']}`)",
        "",
        f"Machine: {m['cpu']} (family/model {m.get('cpu_family_model', '?')}; "
        f"flags of note: {', '.join(m.get('cpu_flags', [])) or 'none'}), {m['threads']} threads, "
        f"{m['allocator']}, torch {m['torch']}, fp32, commit {m['commit']}"
        f"{' (dirty)' if m.get('dirty') else ''}. Scan: {results['scan']}.",
        "",
        f"batch {results['batch']} x {results['length']} bytes; {results['rounds']} rounds of "
        f"{results['steps']} steps per side, interleaved.",
        "",
        "| mixer kernels | median ms / step | q1 | q3 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, s in results["step_ms"].items():
        lines.append(f"| {name} | {s['median']:.1f} | {s['q1']:.1f} | {s['q3']:.1f} |")
    r = results["ratio_after_to_before"]
    lines += [
        "",
        f"after / before: median per-round ratio {r['median']:.3f} "
        f"(min {r['min']:.3f}, max {r['max']:.3f}, {r['rounds']} rounds); "
        f"ratio of medians {r['ratio_of_medians']:.3f}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="32x64", help="batch x length")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="steps per side per round")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--out", type=Path, default=RESULTS / "mixer_step.json")
    args = parser.parse_args(argv)
    threads = configure(args.threads)
    batch, length = (int(v) for v in args.shape.lower().split("x"))
    ids = byte_batch(batch, length)
    cases = [Case(name, training_step(name, ids), steps=args.steps, warmup=3) for name in VARIANTS]
    run_interleaved(cases, args.rounds)
    before, after = cases
    command = "python benchmarks/mixer_step.py " + " ".join(argv or sys.argv[1:])
    results = {
        "command": command.strip(),
        "machine": machine_record(threads),
        "scan": kernel_status(),
        "batch": batch,
        "length": length,
        "rounds": args.rounds,
        "steps": args.steps,
        "step_ms": {case.name: summary(case.times) for case in cases},
        "ratio_after_to_before": paired_ratio(after, before),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
