"""One benchmark run, in a process of its own: train, read the curve, score held-out splits.

    python -m ghost.bench.worker SPEC.json RESULT.json

SPEC: {"train": {TrainConfig fields}, "heldout": [NAME:SPLIT, ...], "keep_model": bool}.
RESULT (written atomically, so a killed run leaves no result and is run again):
    {"curve": [{"step", "train_seconds", "check_loss", "val_loss"?, "val_exact_match"?,
                "train_exact_match"?}, ...],          one entry per check
     "final": {"steps", "train_seconds", "stop_reason", "peak_rss_mib", "val_loss"?, ...,
               "heldout": {split: {"exact_match" | "bits_per_byte": float, "n": int}}}}
`train_seconds` is training time only: the sum of the steps' own times (each recipe's extra
work included, checks and checkpoint writes excluded). A process per run keeps peak RSS
clean (it only rises within a process) and the kernel and allocator as in normal use.
"""

from __future__ import annotations

import csv
import json
import resource
import shutil
import sys
from pathlib import Path

CURVE_KEYS = ("check_loss", "val_loss", "val_exact_match", "train_exact_match")


def read_curve(run_dir: Path) -> tuple[list[dict], float]:
    """The checks of metrics.csv with cumulative training seconds, and the total."""
    curve, seconds = [], 0.0
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["step_seconds"]:
                seconds += float(row["step_seconds"])
            if row["check_loss"]:
                check = {"step": int(row["step"]), "train_seconds": round(seconds, 4)}
                check.update({k: float(row[k]) for k in CURVE_KEYS if row.get(k)})
                curve.append(check)
    return curve, seconds


def run(spec: dict) -> dict:
    from ghost.config import TrainConfig
    from ghost.eval.metrics import evaluate
    from ghost.train.loop import train

    result = train(TrainConfig(**spec["train"]))
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before scoring
    run_dir = Path(result.run_dir)
    curve, seconds = read_curve(run_dir)
    final = {
        "steps": result.steps,
        "train_seconds": round(seconds, 4),
        "stop_reason": result.stop_reason,
        "peak_rss_mib": round(peak_rss_mib, 1),
        **{k: v for k, v in (curve[-1] if curve else {}).items() if k in CURVE_KEYS},
        "heldout": {},
    }
    for split in spec.get("heldout", []):
        summary, _ = evaluate(result.model, split)
        score = {k: summary[k] for k in ("exact_match", "bits_per_byte", "n") if k in summary}
        final["heldout"][split] = score
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    if not spec.get("keep_model"):
        (run_dir / "model.safetensors").unlink(missing_ok=True)
    return {"curve": curve, "final": final}


def main(argv: list[str] | None = None) -> int:
    from ghost.errors import GhostInputError
    from ghost.model.io import atomic_write_text

    spec_path, result_path = argv if argv is not None else sys.argv[1:]
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    try:
        outcome = run(spec)
    except GhostInputError as e:
        print(f"ghost bench: error: {e}", file=sys.stderr)
        return 2
    atomic_write_text(Path(result_path), json.dumps(outcome, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from ghost.launcher import ensure_fast_allocator

    ensure_fast_allocator()
    sys.exit(main())
