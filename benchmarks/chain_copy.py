"""Why answers through hops (`--reasoning chain`) do not carry over to `facts200:novel`: a
probe of the step that fails, copying the question's entity into the first hop.

    python benchmarks/chain_copy.py ARM [ARM...] [--preset small] [--steps 1500] [--seed 0]
                                    [--results benchmarks/results/chain_copy-NAME]

Every arm trains `ghost train --data facts200 --reasoning chain --group-by-length --seq-len
320 --memory-training off` (plus what the arm adds) and scores `facts200:novel`,
`test_hard` and `paraphrase` (held out: only scored, nothing here is chosen on them), and
`train` and `test_10q`:

- `base`: as above;
- `copy`: the same with the context copy head (`GhostConfig.context_copy`, a pointer over
  the row's last 128 bytes mixed into the output), so the first hop can copy the question's
  entity byte for byte;
- `world`: facts200's training records plus a fictional world made in facts200's *training*
  question templates (`WORLD_COUNTRIES` countries, each with a capital, continent, currency,
  landmark, river and an author born in its capital; their one-hop questions and the 2- and
  3-hop questions facts200's training split asks, with their chains): ten times the chains,
  about entities no held-out question names;
- `practice`: the `chain-practice` recipe (`ghost.train.recipes.chain_practice`):
  `PRACTICE_SHARE` x batch rows added every step, each a 2- or 3-hop question about
  fictional entities drawn fresh for that step, written through its hops, with loss only on
  the hop questions, the separators and the end (the answers cannot be known): the entity
  must be copied, since no row repeats. (Until 2026-12-04 the end was not scored, and these
  rows taught "another hop follows" after every answer: results before then had that.)
- `copy-practice`: `practice` with the context copy head, as `ghost train --reasoning chain
  --context-copy --recipe chain-practice` trains.

The fictional names come from `ghost.data.fictional`'s training pool. Results (JSON and a
table, with the machine) go to `--results`.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from ghost.bench.machine import machine_record
from ghost.config import GhostConfig
from ghost.data.builtin import load_builtin
from ghost.data.fictional import FictionalNames
from ghost.data.fictional_chains import fictional_country, multi_hop, one_hop
from ghost.data.records import Dataset, load_data
from ghost.eval.metrics import evaluate_qa
from ghost.launcher import ensure_fast_allocator
from ghost.model.ghost import GhostModel
from ghost.train.loop import train
from ghost.train.recipes.chain_practice import ChainPractice

WORLD_COUNTRIES = 40
PRACTICE_SHARE = 0.25
SPLITS = ("novel", "test_hard", "paraphrase", "train", "test_10q")


def world_records(n: int, seed: int) -> list[dict]:
    """One-hop records and chained multi-hop records about `n` fictional countries."""
    rng = random.Random(f"chain-world-{n}-{seed}")
    names = FictionalNames(rng, "train")
    records = []
    for _ in range(n):
        c = fictional_country(names, rng)
        hops = one_hop(c)
        records += [{"question": q, "answer": a, "kind": "fact"} for q, a in hops.values()]
        for question, chain in multi_hop(c):
            records.append(
                {
                    "question": question,
                    "answer": hops[chain[-1]][1],
                    "kind": f"{len(chain)}hop",
                    "chain": [hops[r][0] for r in chain],
                }
            )
    return records


def run_arm(arm: str, args, out: Path) -> dict:
    kwargs = dict(
        preset=args.preset,
        reasoning="chain",
        group_by_length=True,
        seq_len=320,
        steps=args.steps,
        seed=args.seed,
        memory_training="off",
        out=str(out / arm),
        quiet=True,
    )
    recipes, dataset, model_config = [], None, None
    if arm.startswith("copy"):
        model_config = GhostConfig.from_preset(args.preset, context_copy=True)
    if arm == "copy-practice":
        recipes = [ChainPractice(share=PRACTICE_SHARE)]
    elif arm == "world":
        records = load_builtin("facts200:train") + world_records(WORLD_COUNTRIES, args.seed)
        dataset = Dataset("facts200+world", "qa", records)
    elif arm == "practice":
        recipes = [ChainPractice(share=PRACTICE_SHARE)]
    elif arm not in ("base", "copy"):
        raise SystemExit(f"unknown arm {arm!r}: base, copy, world, practice or copy-practice")
    start = time.perf_counter()
    train(data="facts200", dataset=dataset, recipes=recipes, model_config=model_config, **kwargs)
    seconds = time.perf_counter() - start
    model = GhostModel.from_pretrained(out / arm)
    result = {"arm": arm, "train_seconds": round(seconds, 1)}
    for split in SPLITS:
        summary, predictions = evaluate_qa(model, load_data(f"facts200:{split}"))
        result[split] = summary["exact_match"]
        if split == "novel":  # the hops each distinct question was answered through
            seen = {}
            for p in predictions:
                seen.setdefault(p["question"], [p["correct"], p.get("hops", []), p["prediction"]])
            result["novel_hops"] = seen
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arms = ["base", "copy", "world", "practice", "copy-practice"]
    parser.add_argument("arms", nargs="+", choices=arms)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", default="runs/chain_copy", help="where the trained runs go")
    parser.add_argument("--results", default="benchmarks/results/chain_copy")
    args = parser.parse_args()
    ensure_fast_allocator()
    torch.set_num_threads(args.threads)
    results = {
        "machine": machine_record(args.threads),
        "settings": {k: v for k, v in vars(args).items() if k != "arms"},
        "arms": [run_arm(arm, args, Path(args.runs)) for arm in args.arms],
    }
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    lines = [
        f"# Answers through hops: copying the entity (`{' '.join(args.arms)}`, {args.preset}, "
        f"{args.steps} steps, seed {args.seed})",
        "",
        f"Machine: {json.dumps(results['machine'])}",
        "",
        "| arm | novel % | test_hard % | paraphrase % | train % | test_10q % | training s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    pct = lambda r, split: f"{100 * r[split]:.1f}" if split in r else "-"  # noqa: E731
    for r in results["arms"]:
        scores = " | ".join(pct(r, split) for split in SPLITS)
        lines.append(f"| {r['arm']} | {scores} | {r['train_seconds']} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
