"""What the fact memory does for a trained run: facts written at inference, no gradient step.

    python benchmarks/memory_facts.py RUN_DIR [--results benchmarks/results/memory_facts]

Measures on the run's model loaded without its saved bank (which is neither read nor changed):
- unseen facts: 120 facts about entities of the benchmark pool of `ghost.data.fictional`
  (training never generates them), half in wordings training never uses (one relation,
  "national animal", never trained at all), written among 240 other such entries; exact
  match of the answers, and the same questions with those 120 facts absent;
- counterfactual edits: facts200 questions after writing an edited fact ("The capital of
  France is Tokyo."), answered from memory or from the weights;
- locality: the trained facts200 questions before and after writing 500 unrelated facts;
- the held-out facts200 splits (paraphrase, novel) with the 200-fact bank (facts200:facts)
  and with an empty bank; two-hop questions whose both hops exist only in memory;
- cost: seconds to write 1,000 facts, and the time per question (`ghost ask`'s path: load
  is excluded) with 10,000 entries against an empty bank.
Writes RESULTS.json with the machine beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ghost.bench.machine import machine_record
from ghost.data.builtin import load_builtin
from ghost.data.fictional import counterfactual_edits, fictional_facts
from ghost.data.records import Dataset
from ghost.data.template import QATemplate
from ghost.eval.metrics import evaluate_qa
from ghost.model.generate import generate
from ghost.model.ghost import GhostModel
from ghost.runtime import configure


def exact_match(model, pairs: list[tuple[str, str]]) -> float:
    records = [{"question": q, "answer": a} for q, a in pairs]
    summary, _ = evaluate_qa(model, Dataset("bench", "qa", records))
    return summary["exact_match"]


def two_hop(seed: int, n: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Facts "The capital of A is B." + "B stands on the C." and "On which river is the
    capital of A?" (answer C): both hops only in memory."""
    pool = fictional_facts(80 * n, seed, pool="bench")  # ~1 in 8 of each relation
    prefix = "What is the capital of "  # the wording whose question names the country
    capitals = [f for f in pool if f.relation == "capital" and f.question.startswith(prefix)][:n]
    rivers = [f for f in pool if f.relation == "river"][:n]
    if len(capitals) < n or len(rivers) < n:
        raise RuntimeError("two_hop: too few capital/river facts drawn")
    facts, questions = [], []
    for capital, river in zip(capitals, rivers, strict=True):
        country = capital.question.removeprefix(prefix).rstrip("?")
        river_name = river.answer
        facts += [capital.fact, f"{capital.answer} stands on the {river_name}."]
        questions.append((f"On which river is the capital of {country}?", river_name))
    return facts, questions


def timed_question(model, question: str, template: QATemplate, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        generate(model, [template.prompt(question)], max_bytes=64,
                 stop_bytes=bytes([template.marker]))  # fmt: skip
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_cost(preset: str, steps: int, rounds: int, seed: int) -> dict:
    """Median step time of `ghost train` on facts200: memory training off; on jointly (every
    step a memory step: `--memory-steps 0`); and in the default's stage (`--steps N
    --memory-steps N`: the stage's steps only, where just the memory's parameters train).
    The three runs alternate (`rounds` rounds, each run in its own process under the
    launcher's allocator); the first 5 steps of each run (and of the stage) are left out."""
    import csv
    import subprocess
    import sys
    import tempfile

    modes = {"off": ["--memory-training", "off"],
             "on": ["--memory-training", "on", "--memory-steps", "0"],
             "stage": ["--memory-training", "on", "--memory-steps", str(steps)]}  # fmt: skip
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    rows: dict[str, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for mode, flags in modes.items():
                out = Path(tmp) / f"{mode}-{r}"
                command = [sys.executable, "-m", "ghost", "train", "--data", "facts200",
                           "--preset", preset, "--steps", str(steps), "--seed", str(seed),
                           *flags, "--eval-every", str(steps), "--quiet",
                           "--out", str(out)]  # fmt: skip
                subprocess.run(command, check=True, capture_output=True)
                with open(out / "metrics.csv", encoding="utf-8") as f:
                    done = list(csv.DictReader(f))
                done = done[steps + 5 :] if mode == "stage" else done[5:]
                times[mode] += [float(row["step_seconds"]) for row in done]
                rows[mode] += [float(row["batch_rows"]) for row in done]
    median = {mode: statistics.median(t) for mode, t in times.items()}
    per_row = {mode: median[mode] / statistics.mean(rows[mode]) for mode in modes}
    return {
        "preset": preset,
        "steps_per_run": steps,
        "rounds": rounds,
        "step_seconds_off": median["off"],
        "step_seconds_on": median["on"],
        "step_seconds_stage": median["stage"],
        "ratio": median["on"] / median["off"],
        "ratio_stage": median["stage"] / median["off"],
        "rows_per_step_off": statistics.mean(rows["off"]),
        "rows_per_step_on": statistics.mean(rows["on"]),
        "rows_per_step_stage": statistics.mean(rows["stage"]),
        "ratio_per_row": per_row["on"] / per_row["off"],
        "ratio_per_row_stage": per_row["stage"] / per_row["off"],
    }


def markdown(results: dict) -> str:
    """The results as the tables README and docs/memory.md quote."""
    m, u = results["machine"], results["unseen_facts"]
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    lines = [
        "# What the fact memory does (benchmarks/memory_facts.py)",
        "",
        f"Run: `{results['run_dir']}`; machine: {m.get('cpu', '?')} "
        f"({m.get('cpu_family_model', '?')}), {m.get('threads', '?')} threads, "
        f"{m.get('allocator', '?')}, torch {m.get('torch', '?')}, commit {m.get('commit', '?')}.",
        "",
        "| measure | result | target |",
        "| --- | --- | --- |",
        f"| unseen facts written among {u['other_entries']} other entries ({u['n']} questions) "
        f"| {pct(u['exact_match_with_facts'])} | >= 90% |",
        f"| ... training's templates / templates training never used | "
        f"{pct(u['by_template']['train'])} / {pct(u['by_template']['heldout'])} | |",
        f"| ... retrieval ranks the question's own fact first | {pct(u['retrieval_top1'])} | |"
        if "retrieval_top1" in u
        else "",
        f"| the same questions, facts absent | {pct(u['exact_match_without_facts'])} | <= 5% |",
        f"| counterfactual edits answered from memory ({results['counterfactual']['n']}) | "
        f"{pct(results['counterfactual']['answers_from_memory'])} | >= 80% |",
        f"| trained answers unchanged after 500 writes ({results['locality']['n']}) | "
        f"{pct(results['locality']['unchanged'])} | >= 99% |",
    ]
    for split, r in results["heldout"].items():
        lines.append(
            f"| facts200:{split}, 200-fact bank vs empty | {pct(r['fact_bank'])} vs "
            f"{pct(r['empty_bank'])} | report |"
        )
    two = results["two_hop_memory_only"]
    cost = results["cost"]
    lines += [
        f"| two-hop, both hops only in memory ({two['n']}) | {pct(two['exact_match'])} | report |",
        f"| writing 1,000 facts | {cost['write_1000_seconds']:.2f} s | < 1 s |",
        f"| added per question, 10,000 entries vs empty | {cost['added_ms_per_question']:.1f} ms "
        f"| < 50 ms |",
        f"| exact top-k at 100,000 entries | {cost['exact_top_k_ms_at_100000_entries']:.1f} ms "
        "| (an index only if it pays) |",
    ]
    if "training_cost" in results:
        c = results["training_cost"]
        runs = f"{c['preset']}, median of {c['rounds']} x {c['steps_per_run']}-step runs each"
        lines.append(
            f"| training step in the memory stage vs without memory training ({runs}) | "
            f"{c['ratio_stage']:.2f}x ({c['step_seconds_stage']:.2f} vs "
            f"{c['step_seconds_off']:.2f} s; {c['rows_per_step_stage']:.0f} vs "
            f"{c['rows_per_step_off']:.0f} rows) | <= 1.3x |"
        )
        lines.append(
            f"| training step, memory trained jointly (`--memory-steps 0`) vs off ({runs}) | "
            f"{c['ratio']:.2f}x ({c['step_seconds_on']:.2f} vs {c['step_seconds_off']:.2f} s; "
            f"{c['rows_per_step_on']:.0f} vs {c['rows_per_step_off']:.0f} rows; "
            f"{c['ratio_per_row']:.2f}x per row) | |"
        )
    return "\n".join(line for line in lines if line) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--results", default="benchmarks/results/memory_facts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cost-preset",
        default=None,
        help="also time memory training on vs off with this preset (e.g. small)",
    )
    parser.add_argument("--cost-steps", type=int, default=40)
    args = parser.parse_args(argv)
    if argv is None:
        from ghost.launcher import ensure_fast_allocator

        ensure_fast_allocator()  # as the `ghost` command runs (tcmalloc where it exists)
    threads = configure(0, seed=0)
    model = GhostModel.from_pretrained(args.run_dir, memory=False)
    template = QATemplate.from_config(model.config)
    memory = model.memory
    results: dict = {"run_dir": args.run_dir, "machine": machine_record(threads)}

    # Unseen facts among distractors, and without them.
    targets = fictional_facts(120, args.seed, pool="bench", templates="all")
    others = fictional_facts(360, args.seed + 1, pool="bench", templates="all")
    target_entities = {f.question for f in targets}
    others = [f for f in others if f.question not in target_entities][:240]
    pairs = [(f.question, f.answer) for f in targets]
    memory.clear()
    memory.write([f.fact for f in others])
    absent = exact_match(model, pairs)
    memory.write([f.fact for f in targets])
    present = exact_match(model, pairs)
    # How often retrieval ranks the question's own fact first (what the copy head reads).
    where = {text: i for i, text in enumerate(memory.texts)}
    top = memory.retrieve([template.prompt(f.question) for f in targets], k=1)[:, 0].tolist()
    first = sum(t == where[f.fact] for t, f in zip(top, targets, strict=True)) / len(targets)
    by_template = {
        kind: exact_match(model, [(f.question, f.answer) for f in targets if f.template == kind])
        for kind in ("train", "heldout")
    }
    results["unseen_facts"] = {
        "n": len(targets),
        "other_entries": len(others),
        "exact_match_with_facts": present,
        "exact_match_without_facts": absent,
        "by_template": by_template,
        "retrieval_top1": first,
    }

    # Counterfactual edits of facts200.
    edits = counterfactual_edits(load_builtin("facts200:train"), seed=args.seed, n=100)
    memory.clear()
    memory.write([e.fact for e in edits])
    results["counterfactual"] = {
        "n": len(edits),
        "answers_from_memory": exact_match(model, [(e.question, e.answer) for e in edits]),
    }

    # Locality: trained answers before and after 500 unrelated writes.
    trained = load_builtin("facts200:train")
    memory.clear()
    _, before = evaluate_qa(model, Dataset("facts200:train", "qa", trained))
    memory.write([f.fact for f in fictional_facts(500, args.seed + 2, pool="bench")])
    _, after = evaluate_qa(model, Dataset("facts200:train", "qa", trained))
    unchanged = sum(a["prediction"] == b["prediction"] for a, b in zip(after, before, strict=True))
    results["locality"] = {"n": len(trained), "unchanged": unchanged / len(trained)}

    # Held-out facts200 splits with the whole fact bank, and with none.
    bank = [r["text"] for r in load_builtin("facts200:facts")]
    held = {}
    for split in ("paraphrase", "novel"):
        records = load_builtin(f"facts200:{split}")
        memory.clear()
        empty, _ = evaluate_qa(model, Dataset(split, "qa", records))
        memory.write(bank)
        full, _ = evaluate_qa(model, Dataset(split, "qa", records))
        held[split] = {"empty_bank": empty["exact_match"], "fact_bank": full["exact_match"]}
    results["heldout"] = held

    facts, questions = two_hop(args.seed + 3, 50)
    memory.clear()
    memory.write(facts)
    results["two_hop_memory_only"] = {
        "n": len(questions),
        "exact_match": exact_match(model, questions),
    }

    # Cost.
    memory.clear()
    thousand = [f.fact for f in fictional_facts(1000, args.seed + 4, pool="bench")]
    started = time.perf_counter()
    memory.write(thousand)
    write_seconds = time.perf_counter() - started
    question = "What is the capital of France?"
    memory.clear()
    empty_time = timed_question(model, question, template)
    many = [f.fact for f in fictional_facts(10_000, args.seed + 5, pool="train")]
    memory.write(many)
    full_time = timed_question(model, question, template)
    # Exact top-k at 100,000 entries (random unit keys of the model's key width): what a
    # faster, approximate index would have to beat.
    keys = torch.nn.functional.normalize(torch.randn(100_000, model.config.memory_key_dim), dim=-1)
    query = torch.nn.functional.normalize(torch.randn(1, model.config.memory_key_dim), dim=-1)
    search = []
    for _ in range(20):
        started = time.perf_counter()
        (query @ keys.T).topk(model.config.memory_top_k, dim=-1)
        search.append(time.perf_counter() - started)
    results["cost"] = {
        "exact_top_k_ms_at_100000_entries": 1000 * statistics.median(search),
        "write_1000_seconds": write_seconds,
        "question_seconds_empty_bank": empty_time,
        "question_seconds_10000_entries": full_time,
        "added_ms_per_question": 1000 * (full_time - empty_time),
    }
    if args.cost_preset:
        torch.set_grad_enabled(True)
        results["training_cost"] = training_cost(args.cost_preset, args.cost_steps, 2, args.seed)
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
