"""What the GPT peer's attention costs it: its training step with PyTorch's SDPA (the peer as
train_throughput.py runs it) against the same GPT with plain masked-matmul attention while
training (what Ghost's attention takes up to two windows), paired, in one process.

    python benchmarks/gpt_attention.py [--rounds 5] [--precisions bf16,fp32] [--threads 2]

Both models start from the same seed and train on the same batch 32 x 64; each round runs
3 steps of each, alternating. Reports the median step and the per-round ratio matmul / SDPA.
Writes benchmarks/results/gpt_attention.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ghost.launcher import ensure_fast_allocator

ensure_fast_allocator()

from paired_timing import Case, paired_ratio, probe_bf16, run_interleaved, summary  # noqa: E402
from train_throughput import Trainer, build_model, byte_batch  # noqa: E402

from ghost.bench.machine import machine_record  # noqa: E402
from ghost.runtime import configure  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precisions", default="bf16,fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "gpt_attention"))
    args = parser.parse_args(argv)
    configure(args.threads, seed=0)
    precisions = args.precisions.split(",")
    if "bf16" in precisions and not probe_bf16()["native"]:
        precisions.remove("bf16")  # emulated bf16 would say nothing about a bf16 host
    ids = byte_batch(32, 64)
    sdpa, matmul = Trainer(build_model("gpt", 0)), Trainer(build_model("gpt", 0))
    for block in matmul.model.blocks:
        block.attn.matmul_training = True
    cases = {}
    for precision in precisions:
        for name, trainer in (("sdpa", sdpa), ("matmul", matmul)):
            run = lambda t=trainer, p=precision: t.step(p, ids)  # noqa: E731
            cases[(precision, name)] = Case(f"gpt {name} {precision}", run, steps=3, warmup=2)
    run_interleaved(list(cases.values()), args.rounds)
    rows = [
        {
            "precision": p,
            "sdpa_ms": summary(cases[(p, "sdpa")].times)["median"],
            "matmul_ms": summary(cases[(p, "matmul")].times)["median"],
            "ratio_matmul_over_sdpa": paired_ratio(cases[(p, "matmul")], cases[(p, "sdpa")]),
        }
        for p in precisions
    ]
    command = "python benchmarks/gpt_attention.py " + " ".join(argv or sys.argv[1:])
    results = {"command": command, "machine": machine_record(args.threads), "rows": rows}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    m = results["machine"]
    lines = [
        f"# GPT peer: SDPA vs plain masked-matmul attention while training (`{command}`)",
        "",
        f"Machine: {m['cpu']} ({', '.join(m['cpu_flags'])}), {m['threads']} threads, "
        f"{m['allocator']}, torch {m['torch']}, commit {m['commit'][:10]}. Batch 32 x 64, "
        f"{args.rounds} rounds of 3 steps each.",
        "",
        "| precision | SDPA ms/step | matmul ms/step | matmul / SDPA, rounds: median [min, max] |",
        "| --- | ---: | ---: | --- |",
    ]
    for r in rows:
        q = r["ratio_matmul_over_sdpa"]
        lines.append(
            f"| {r['precision']} | {r['sdpa_ms']:.1f} | {r['matmul_ms']:.1f} | "
            f"{q['median']} [{q['min']}, {q['max']}] |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
