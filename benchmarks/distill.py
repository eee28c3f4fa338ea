"""The self-distillation results of issue 13, one command per setting.

    python benchmarks/distill.py seed10   --out /work/bench-runs/distill-seed10
    python benchmarks/distill.py facts200 --out /work/bench-runs/distill-facts200
    python benchmarks/distill.py facts200 --out ... --resume          # after a stop

Each setting is one `ghost distill` command (printed, and recorded in the report), run in its
own process under the `ghost` launcher (tcmalloc). Its results.json and report.md are copied
to benchmarks/results/distill_<setting>.{json,md}, and a seeded random sample of the last
round's pairs (seed 0) to distill_<setting>_sample.md, for the hand check the report states,
with how near the grown pairs come to the held-out questions (numbers only).
`--copy-only` copies and recomputes those from an existing --out without running.

    seed10    the original's setting: the 10 seed pairs of facts200:seed10, 3 rounds, the
              operators using only what the seeds contain; pairs, correctness, the seed
              questions, and the facts200 paraphrases of the 10 seed questions.
    facts200  all of facts200's training set as seeds: held-out paraphrase and novel, with
              train, test_10q and test_hard kept; round 0 is the plainly trained model.

Both use the small preset (1.30M parameters) and 3 seeds, so that the committed runs fit the
issue's 150 minutes on this 2-core machine; SETTINGS says the rest.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

SETTINGS = {
    "seed10": ["--data", "facts200:seed10", "--rounds", "3", "--seeds", "3",
               "--preset", "small", "--steps", "250", "--budget", "160"],
    "facts200": ["--data", "facts200", "--rounds", "2", "--seeds", "3", "--preset", "small",
                 "--steps", "600", "--budget", "4000"],
}  # fmt: skip
SAMPLE = 40  # pairs shown for the hand check


def command(setting: str, out: str, threads: int, resume: bool) -> list[str]:
    argv = ["ghost", "distill", *SETTINGS[setting], "--threads", str(threads), "--out", out]
    return argv + (["--resume"] if resume else [])


def _sample(out: Path, setting: str) -> str:
    """A seeded random sample of the last round's admitted pairs (seed 0) as a Markdown table."""
    rounds = sorted(out.glob("seed-0/round-*"), key=lambda p: int(p.name.split("-")[1]))
    pairs = [
        json.loads(line)
        for line in (rounds[-1] / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    grown = [p for p in pairs if p["provenance"]["operator"] != "seed"]
    chosen = random.Random(13).sample(grown, min(SAMPLE, len(grown)))
    lines = [
        f"# A random sample of {len(chosen)} distilled pairs ({setting}, seed 0, "
        f"{rounds[-1].name}, of {len(grown)} grown pairs)",
        "",
        "| operator | question | answer | checked by |",
        "| --- | --- | --- | --- |",
    ]
    for p in chosen:
        prov = p["provenance"]
        cells = [prov["operator"], p["question"], p["answer"], prov.get("checked_by") or "-"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _nearest(out: Path, setting: str) -> str:
    """How near the grown pairs come to the held-out questions: for each held-out record, the
    highest word ROUGE-L of a grown pair (last round, every seed) with the same answer, and
    the same for the seed records. Numbers only: no held-out text is written."""
    import statistics

    from ghost.data.builtin import load_builtin
    from ghost.distill.similarity import normalize, rouge_l

    lines = [
        "",
        "## Nearest trained question to each held-out question (same answer, word ROUGE-L)",
        "",
        "| seed | held-out split | records | pairs | median | 90th percentile | max | >= 0.7 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    splits = ("paraphrase", "novel")
    for seed_dir in sorted(out.glob("seed-*")):
        rounds = sorted(seed_dir.glob("round-*"), key=lambda p: int(p.name.split("-")[1]))
        path = rounds[-1] / "pairs.jsonl"
        if not path.is_file():
            continue
        pairs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for label, group in (
            ("seeds", [p for p in pairs if p["provenance"]["operator"] == "seed"]),
            ("grown", [p for p in pairs if p["provenance"]["operator"] != "seed"]),
        ):
            by_answer: dict[str, list[str]] = {}
            for p in group:
                by_answer.setdefault(normalize(p["answer"]), []).append(p["question"])
            for split in splits:
                best = sorted(
                    max(
                        (
                            rouge_l(r["question"], q)
                            for q in by_answer.get(normalize(r["answer"]), [])
                        ),
                        default=0.0,
                    )
                    for r in load_builtin(f"facts200:{split}")
                )
                lines.append(
                    f"| {seed_dir.name} | {split} | {len(best)} | {label} ({len(group)}) | "
                    f"{statistics.median(best):.3f} | {best[int(0.9 * len(best))]:.3f} | "
                    f"{best[-1]:.3f} | {sum(b >= 0.7 for b in best)} |"
                )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", choices=list(SETTINGS))
    parser.add_argument("--out", required=True, help="the run directory (kept outside the repo)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--copy-only", action="store_true", help="do not run; copy the results of --out again"
    )
    args = parser.parse_args()
    code = 0
    if not args.copy_only:
        argv = command(args.setting, args.out, args.threads, args.resume)
        print("$ " + shlex.join(argv), flush=True)
        started = time.monotonic()
        ghost = shutil.which("ghost") or str(Path(sys.executable).with_name("ghost"))
        code = subprocess.call([ghost, *argv[1:]])
        print(f"exit {code} after {(time.monotonic() - started) / 60:.1f} min", flush=True)
    out = Path(args.out)
    if not (out / "results.json").is_file():
        return code or 1
    RESULTS.mkdir(exist_ok=True)
    shutil.copyfile(out / "results.json", RESULTS / f"distill_{args.setting}.json")
    shutil.copyfile(out / "report.md", RESULTS / f"distill_{args.setting}.md")
    (RESULTS / f"distill_{args.setting}_sample.md").write_text(
        _sample(out, args.setting) + _nearest(out, args.setting), encoding="utf-8"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
