"""`run_distill`: grow a seed Q&A set round by round, a teacher answering what the operators
propose and the filters admitting only what can be trusted, and train a student on the set.

    from ghost.distill import run_distill
    results = run_distill(data="facts200:seed10", rounds=3, out="runs/distill")

Layout of OUT (every model an ordinary run directory: `ghost eval`, `ghost ask` and
`--init-from` take it):

    plan.json                  the DistillConfig
    seed-<s>/round-0/model     round 1's teacher: trained on the seeds (or --init-from)
    seed-<s>/round-<r>/        candidates.jsonl (every candidate, its teacher answer and fate),
                               pairs.jsonl (the whole set after round r, with provenance),
                               filters.json (what each filter removed and why), model/ (the
                               student, round r+1's teacher), scores.json, round.json (the
                               report row; written last, it marks the round done)
    model/                     the last round's student of seed 0
    results.json, report.md    rewritten after every round

A round is a function of (seed, round, teacher): the candidates come from a generator seeded
by both, the teacher answers greedily, and the filters are deterministic. With `resume`, a run
continues from the last finished round (a training stopped midway restarts that training).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from ghost.distill.config import DistillConfig, check_plan
from ghost.errors import GhostInputError
from ghost.model.io import atomic_write_text

RESULTS = "results.json"
ROUND_DONE = "round.json"
TRAIN_DONE = "trained.json"
VALIDATION_SIZE = 300  # validation questions scored per model (a fixed seeded sample)
CASUAL = 3  # surface_variant choice: lower case and no final '?'
SAVE_EVERY = 200  # steps between a training's checkpoints (each is rewritten, not kept)
HELD_BACK = 0.3  # share of composable chains kept back as validation of new combinations


class _Stop(Exception):
    pass


def _seed_records(spec: str) -> list[dict]:
    from ghost.data.records import load_data

    dataset = load_data(spec, kind="qa")
    if not dataset.records:
        raise GhostInputError(f"{spec}: no Q&A records to distil from")
    pool = []
    for i, r in enumerate(dataset.records):
        pool.append(
            {
                "id": f"seed-{i:04d}",
                "question": r["question"],
                "answer": r["answer"],
                "kind": r.get("kind", "qa"),
                "facts": list(r.get("facts", [])),
                "chain": list(r.get("chain", [])),
                "provenance": {"operator": "seed", "round": 0, "parent": None},
            }
        )
    return pool


def _builtin_name(spec: str) -> str | None:
    from ghost.data.builtin import is_builtin

    return spec.split(":")[0] if is_builtin(spec) else None


def held_back_compositions(graph, leak, pool: list[dict], seed: int) -> list[dict]:
    """Validation for new combinations: a seeded HELD_BACK share of the multi-hop chains the
    graph can compose (not a seed record's chain, not a held-out record's), one question each
    in the training form. No wording of them is trained on (the runner's "validation"
    filter), so they ask what `facts200:novel` asks, on questions that are ours to choose
    defaults on."""
    from ghost.distill.operators import compose

    trained = {frozenset(r["facts"]) for r in pool if len(r.get("facts") or ()) >= 2}
    groups: dict[frozenset, object] = {}
    for x in compose(graph, which="training"):
        key = frozenset(x.facts)
        if key in trained or leak.shares_facts(x):
            continue
        if key not in groups or x.template < groups[key].template:
            groups[key] = x
    keys = sorted(groups.values(), key=lambda x: sorted(x.facts))
    rng = random.Random(hash_seed(seed, 7))
    chosen = rng.sample(keys, round(HELD_BACK * len(keys))) if keys else []
    return [
        {
            "question": x.question,
            "answer": x.expected,
            "kind": x.kind,
            "facts": list(x.facts),
            "chain": list(x.chain),
        }
        for x in sorted(chosen, key=lambda x: x.question)
    ]


def hash_seed(*parts: int) -> int:
    return random.Random(" ".join(map(str, parts))).getrandbits(32)


def evaluation_sets(
    cfg: DistillConfig, seeds: list[dict], validation: list[dict], held_back: list[dict]
) -> dict:
    """{name: records} every model of the run is scored on.

    seeds and their casual form (lower case, no '?'); the validation questions (what choices
    are made on); and, for a built-in seed set, its dataset's held-out splits (restricted to
    records about the seed facts when the seeds are a subset, as facts200:seed10 is) and its
    trained multi-hop test splits. The held-out sets are only scored, never trained on or
    used to choose anything.
    """
    from ghost.data.batches import surface_variant
    from ghost.data.builtin import list_datasets, load_builtin

    sets = {
        "seeds": [_qa(r) for r in seeds],
        "seeds, casual": [
            {**_qa(r), "question": surface_variant(r["question"], CASUAL)} for r in seeds
        ],
        "validation": validation,
        "validation, new combinations": [_qa(r) for r in held_back],
    }
    name = _builtin_name(cfg.data)
    if name is None:
        return sets
    info = next(d for d in list_datasets() if d.name == name)
    seed_facts = {f for r in seeds for f in r["facts"]}
    subset = cfg.data not in (name, f"{name}:{info.default_split}")
    for split in info.held_out:
        if info.record_type(split) != "qa":
            continue
        records = load_builtin(f"{name}:{split}")
        label = split
        if subset:
            if not seed_facts:
                continue
            records = [r for r in records if r.get("facts") and set(r["facts"]) <= seed_facts]
            label = f"{split} (of the seed facts)"
        if records:
            sets[label] = [_qa(r) for r in records]
    if name == "facts200" and not subset:
        for split in ("test_10q", "test_hard"):
            sets[split] = [_qa(r) for r in load_builtin(f"{name}:{split}")]
    return sets


def training_rows(pool: list[dict], seed_share: float) -> list[dict]:
    """The student's training records: every pair once, and the seed records repeated so that
    they are about `seed_share` of the rows (at least once each). In a set grown 30-fold the
    seeds would otherwise be a few percent of what the student sees, and it must still answer
    every one of them."""
    rows = [_qa(p) for p in pool]
    seeds = [_qa(p) for p in pool if p["provenance"].get("operator") == "seed"]
    if seeds and 0 < seed_share < 1:
        extra = round(seed_share * len(rows) / (1 - seed_share) / len(seeds)) - 1
        rows += seeds * max(0, extra)
    return rows


def _qa(r: dict) -> dict:
    """A pair as a training record; its chain lets `--reasoning chain` train it through hops."""
    return {
        "question": r["question"],
        "answer": r["answer"],
        "kind": r.get("kind", "qa"),
        "chain": list(r.get("chain", [])),
    }


def _dataset(name: str, records: list[dict]):
    from ghost.data.records import Dataset

    return Dataset(name, "qa", records)


class _Runner:
    def __init__(self, cfg: DistillConfig, threads: int, quiet: bool, stop_after: int | None):
        self.cfg, self.threads, self.quiet = cfg, threads, quiet
        self.out = Path(cfg.out)
        self.stop_after = stop_after
        self.trained_now = 0
        self.rows: list[dict] = []  # report rows, all seeds and rounds

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[distill] {message}", file=sys.stderr, flush=True)

    # --- training and scoring -------------------------------------------------------

    def train(self, run_dir: Path, records: list[dict], seed: int, init_from: Path | None):
        """Train one model on `records` into `run_dir` (skipped when already done)."""
        from ghost.config import GhostConfig, TrainConfig
        from ghost.train.checkpoint import CHECKPOINTS
        from ghost.train.loop import train

        if (run_dir / TRAIN_DONE).is_file():
            return json.loads((run_dir / TRAIN_DONE).read_text(encoding="utf-8"))
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a training stopped midway starts again
        c = self.cfg
        self.say(
            f"seed {seed}: training {run_dir.relative_to(self.out)} on {len(records)} pairs"
            + (f" from {init_from.relative_to(self.out)}" if init_from else " from scratch")
        )
        started = time.monotonic()
        result = train(
            TrainConfig(
                data=c.data,
                out=str(run_dir),
                preset=c.preset,
                steps=c.steps,
                max_minutes=c.max_minutes,
                batch_size=c.batch_size,
                seq_len=c.seq_len,
                lr=c.lr,
                precision=c.precision,
                seed=seed,
                threads=self.threads,
                # Fixed steps: one check, at the end. 'auto' checks about once an epoch (its
                # stopping rule reads them). Checkpoints every SAVE_EVERY steps, for resume.
                eval_every=c.steps
                if isinstance(c.steps, int)
                else max(20, -(-len(records) // c.batch_size)),
                save_every=SAVE_EVERY,
                augment=c.augment,
                recipes=c.recipes,
                reasoning=c.reasoning,
                group_by_length=c.group_by_length,
                memory_training="off",  # teachers and students answer from their weights
                init_from=str(init_from) if init_from else None,
                quiet=self.quiet,
            ),
            model_config=None
            if init_from
            else GhostConfig.from_preset(c.preset, context_copy=c.context_copy),
            dataset=_dataset(f"{c.data} (distilled, {len(records)} pairs)", records),
        )
        if result.interrupted:
            raise _Stop(f"interrupted while training {run_dir}")
        record = {
            "steps": result.steps,
            "train_seconds": result.seconds,
            "wall_seconds": time.monotonic() - started,
            "pairs": len(records),
            "init_from": str(init_from) if init_from else None,
        }
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)  # the weights stay
        atomic_write_text(run_dir / TRAIN_DONE, json.dumps(record, indent=1) + "\n")
        self.trained_now += 1
        return record

    def score(self, run_dir: Path, sets: dict) -> dict:
        """{set name: {"exact_match", "n"}}, saved beside the model as scores.json."""
        from ghost.eval.metrics import evaluate_qa
        from ghost.model.ghost import GhostModel

        path = run_dir / "scores.json"
        saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        wanted = [name for name, records in sets.items() if records and name not in saved]
        if wanted:
            model = GhostModel.from_pretrained(run_dir)
            for name in wanted:
                summary, _ = evaluate_qa(model, _dataset(name, sets[name]))
                saved[name] = {
                    "exact_match": summary["exact_match"],
                    "n": summary["n"],
                    "by_kind": summary["by_kind"],
                }
            atomic_write_text(path, json.dumps(saved, indent=1) + "\n")
        return saved

    def answer(self, run_dir: Path, candidates: list) -> None:
        """Set each candidate's `answer` and `confidence`: the teacher's greedy answer and the
        mean probability it gave that answer's bytes."""
        from ghost.data.template import QATemplate
        from ghost.model.generate import generate
        from ghost.model.ghost import GhostModel

        if not candidates:
            return
        model = GhostModel.from_pretrained(run_dir)
        template = QATemplate.from_config(model.config)
        known = [len(c.expected.encode("utf-8")) for c in candidates if c.expected]
        max_bytes = (max(known) if known else 48) + 16
        if template.steps:  # a teacher that answers through hops writes them first
            from ghost.eval.metrics import STEPS_ALLOWANCE

            max_bytes += STEPS_ALLOWANCE
        prompts = [template.prompt(c.question) for c in candidates]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            outputs, confidence = generate(
                model,
                [prompts[i] for i in chunk],
                max_bytes=max_bytes,
                stop_bytes=bytes([template.marker]),
                return_confidence=True,
            )
            for i, text, p in zip(chunk, outputs, confidence, strict=True):
                answer = template.clean_answer(text).strip()
                candidates[i].answer = candidates[i].teacher_answer = answer
                candidates[i].confidence = float(p)

    def _maybe_stop(self) -> None:
        if self.stop_after is not None and self.trained_now >= self.stop_after:
            raise _Stop(f"stopped after {self.trained_now} trainings (stop_after)")

    # --- one seed -------------------------------------------------------------------

    def run_seed(self, seed: int, write) -> None:
        from ghost.distill import filters as F
        from ghost.distill.operators import propose, validation_candidates
        from ghost.distill.shapes import FactGraph

        c = self.cfg
        base = self.out / f"seed-{seed}"
        pool = _seed_records(c.data)
        seeds = [dict(r) for r in pool]
        graph = FactGraph.from_records(pool)
        leak = F.LeakFilter.for_dataset(c.data, extra=c.heldout, threshold=c.dedup_threshold)
        validation = self._validation(graph, leak, validation_candidates)
        held_back = held_back_compositions(graph, leak, pool, seed)
        # The held-back compositions are never trained on, in any wording: the same filter
        # that guards the held-out splits guards them (their fact sets and near wordings).
        guard = F.LeakFilter(held_back, threshold=c.dedup_threshold, source="validation")
        guard.name = "validation"
        sets = evaluation_sets(c, seeds, validation, held_back)

        teacher = base / "round-0" / "model"
        started = time.monotonic()
        if c.init_from:
            teacher_info = {"init_from": c.init_from, "train_seconds": 0.0, "steps": 0}
            if not teacher.exists():
                teacher.parent.mkdir(parents=True, exist_ok=True)
                _copy_run(Path(c.init_from), teacher)
        else:
            teacher_info = self.train(teacher, [_qa(r) for r in pool], seed, None)
        self._maybe_stop()
        scores = self.score(teacher, sets)
        self.rows.append(
            self._row(
                seed,
                0,
                pool,
                scores,
                {"train": teacher_info, "seconds": time.monotonic() - started},
            )
        )
        write()

        for r in range(1, c.rounds + 1):
            folder = base / f"round-{r}"
            done = folder / ROUND_DONE
            if done.is_file():
                row = json.loads(done.read_text(encoding="utf-8"))
                pool = _read_jsonl(folder / "pairs.jsonl")
                self.rows.append(row)
                teacher = folder / "model"
                continue
            folder.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            rng = random.Random(seed * 1_000_003 + r)
            candidates = propose(pool, graph, rng, r, set(c.operators), c.budget or None)
            self.say(f"seed {seed} round {r}: {len(candidates)} candidates; the teacher answers")
            self.answer(teacher, candidates)
            chain = [
                leak,
                guard,
                F.AgreementFilter(mode=c.agreement),
                F.ConfidenceFilter(c.confidence),
                F.VerifierFilter.for_dataset(c.data, graph),
                F.NearDuplicateFilter(c.dedup_threshold, pool=pool),
            ]
            kept, log = F.run_filters(candidates, chain, pool)
            added = [self._pair(k, r) for k in kept]
            pool = pool + added
            fates = [_candidate_row(x, "admitted") for x in kept] + [
                _candidate_row(x, f"{name}: {reason}", withhold=redact)
                for x, name, reason, redact in log.dropped
            ]
            _write_jsonl(folder / "candidates.jsonl", fates)
            _write_jsonl(folder / "pairs.jsonl", pool)
            atomic_write_text(folder / "filters.json", json.dumps(log.to_dict(), indent=1) + "\n")
            grow_seconds = time.monotonic() - started
            self.say(
                f"seed {seed} round {r}: {len(added)} admitted, {len(pool)} pairs "
                f"({grow_seconds:.0f} s); removed: {log.summary_line()}"
            )
            student = folder / "model"
            init = teacher if c.student_init == "teacher" else None
            info = self.train(student, training_rows(pool, c.seed_share), seed, init)
            scores = self.score(student, sets)
            row = self._row(
                seed,
                r,
                pool,
                scores,
                {
                    "train": info,
                    "grow_seconds": grow_seconds,
                    "seconds": time.monotonic() - started,
                    "candidates": len(candidates),
                    "added": len(added),
                    "removed": log.removed_counts(),
                },
            )
            atomic_write_text(done, json.dumps(row, indent=1) + "\n")
            self.rows.append(row)
            teacher = student
            write()
            self._maybe_stop()
        if seed == 0:
            final = self.out / "model"
            if final.exists():
                shutil.rmtree(final)
            _copy_run(teacher, final)

    def _validation(self, graph, leak, validation_candidates) -> list[dict]:
        """A fixed sample of the validation questions that no held-out question is near."""
        candidates = validation_candidates(graph)
        for x in candidates:  # the leak filter reads only questions, answers and facts
            x.answer, x.confidence = x.expected, 1.0
        kept, _ = leak(candidates)
        rng = random.Random(20261202)
        if len(kept) > VALIDATION_SIZE:
            kept = rng.sample(kept, VALIDATION_SIZE)
        return [{"question": x.question, "answer": x.expected, "kind": x.kind} for x in kept]

    def _pair(self, candidate, round_index: int) -> dict:
        from ghost.distill.pairs import pair_id

        answer = candidate.answer
        return {
            "id": pair_id(candidate.question, answer),
            "question": candidate.question,
            "answer": answer,
            "kind": candidate.kind,
            "facts": list(candidate.facts),
            "chain": list(candidate.chain),
            "provenance": {
                "operator": candidate.operator,
                "template": candidate.template,
                "round": round_index,
                "parent": candidate.parent,
                "parents": list(candidate.parents),
                "teacher_answer": getattr(candidate, "teacher_answer", answer),
                "confidence": round(candidate.confidence, 4),
                "checked_by": _checked_by(candidate),
            },
        }

    def _row(self, seed: int, round_index: int, pool: list[dict], scores: dict, extra: dict):
        from ghost.distill.filters import diversity

        checked = sum(
            1
            for p in pool
            if p["provenance"].get("operator") == "seed" or p["provenance"].get("checked_by")
        )
        return {
            "seed": seed,
            "round": round_index,
            "pairs": len(pool),
            "checked_pairs": checked,
            "diversity": diversity([p["question"] for p in pool], seed=seed),
            "scores": scores,
            **extra,
        }


def _checked_by(candidate) -> str | None:
    """What confirms a pair's answer: the seed fact it was built from, or a verifier."""
    if candidate.expected is not None and candidate.answer == candidate.expected:
        return "seed facts"
    return getattr(candidate, "checked_by", None)


def _candidate_row(c, fate: str, withhold: bool = False) -> dict:
    """One line of candidates.jsonl. A candidate the leak filter removed is near a held-out
    question: its text and answers are withheld (the file must not carry held-out text)."""
    return {
        "question": None if withhold else c.question,
        "expected": None if withhold else c.expected,
        "teacher_answer": None if withhold else getattr(c, "teacher_answer", None),
        "confidence": round(getattr(c, "confidence", 0.0), 4),
        "operator": c.operator,
        "template": c.template,
        "parent": c.parent,
        "fate": fate,
    }


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _copy_run(src: Path, dst: Path) -> None:
    """A run directory's model (weights, config, memory), not its checkpoints or logs."""
    from ghost.train.checkpoint import CHECKPOINTS

    if not (src / "config.json").is_file():
        raise GhostInputError(f"{src}: not a run directory (no config.json)")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(CHECKPOINTS, "tensorboard"))


def run_distill(
    config: DistillConfig | None = None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    threads: int = 0,
    quiet: bool = False,
    command: str | None = None,
    **overrides,
) -> dict:
    """Run (or with `resume`, continue) a distillation; returns the results dict also written
    to OUT/results.json. Keyword overrides set DistillConfig fields."""
    from ghost.bench.machine import machine_record
    from ghost.distill.report import results_document, write_report
    from ghost.runtime import configure

    cfg = replace(config, **overrides) if config is not None else DistillConfig(**overrides)
    out = Path(cfg.out)
    check_plan(out, cfg, resume)
    _seed_records(cfg.data)  # bad input: one line, nothing written
    if cfg.init_from and not (Path(cfg.init_from) / "config.json").is_file():
        raise GhostInputError(f"--init-from {cfg.init_from}: not a run directory")
    threads = configure(threads, seed=0)
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "plan.json", json.dumps(cfg.to_dict(), indent=1) + "\n")
    runner = _Runner(cfg, threads, quiet, stop_after)
    stopped = None
    machine = machine_record(threads)  # at the start: the commit and state the run ran

    def write(report: bool = False) -> dict:
        results = results_document(
            cfg, runner.rows, command, machine, stopped, time.monotonic() - started
        )
        atomic_write_text(out / RESULTS, json.dumps(results, indent=1) + "\n")
        if report:
            write_report(results, out)
        return results

    try:
        for seed in range(cfg.seeds):
            runner.run_seed(seed, write)
    except _Stop as stop:
        stopped = str(stop)
    return write(report=True)
