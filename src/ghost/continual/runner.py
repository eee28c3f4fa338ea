"""`run_continual`: train tasks in sequence under each strategy, score every task after each
one, and write the comparison.

    from ghost.continual import run_continual
    results = run_continual(tasks="facts200,bash100,math1k", strategies="naive,ewc",
                            seeds=3, steps_per_task=100, out="cl/run")

The unit of work is a node: one training of one task, an ordinary run directory
OUT/runs/<node>/ (`ghost eval` and `ghost ask` work on it), started from the previous
task's node through `init_from` (a fresh optimiser, as for any new task). A node is named by
a hash of what decides its weights: seed, task, parent node, replay records, and penalty
(lambda and the earlier nodes whose Fisher files it reads). Two strategies that would train
the same thing therefore share one node: every sequential strategy's first task is one
training per seed (but `memory`'s, which trains the fact memory); EWC and online EWC agree
at the second task (one Fisher, nothing to decay yet); the sweep's run at the chosen lambda
is the reported EWC run of its seed. Each strategy sees its nodes through links,
OUT/<strategy>/seed-<s>/<k>-<task> -> runs/<node>.

In each node directory, beside the run's own files:
    scores.json         per task and sample: exact match, n, and the mean loss of the target
                        bytes (nats), computed once and kept
    fisher.safetensors  when a later node's penalty needs it (ghost.train.recipes.ewc);
                        fisher-kfac.safetensors with --fisher-form kfac
    node.json           the node's spec, timings and the code that trained it (commit, dirty);
                        written last, it marks the node done

OUT/plan.json holds the ContinualConfig. With `resume=True` the run continues from what is
done: a node stopped mid-training resumes from its last checkpoint (exactly, as
`ghost train --resume` does), and a config that differs from the plan is refused (it may
add strategies: what they share with the run's is not trained again).
The `memory` strategy: a task whose records carry facts (facts200) trains with memory
training on, and its facts are then written to the node's bank; a later node starts from
it, bank included (`init_from`, the bank copied into its directory so a resume keeps it),
and trains with memory training on over its own data (no facts of its own: reading is
practised on generated facts), so the weights learn the new task and keep reading.
results.json and report.md are rewritten after every node, so a stopped run shows what it
has. Lambda, when swept, is chosen first (`_choose_lambda`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ghost.bench.machine import code_version
from ghost.config import GhostConfig, TrainConfig
from ghost.continual import metrics as cl_metrics
from ghost.continual.config import (
    MEMORY_STRATEGIES,
    PENALTY_STRATEGIES,
    SWEEP,
    ContinualConfig,
    check_plan,
    write_plan,
)
from ghost.continual.tasks import (
    Task,
    fisher_records,
    hash_seeds,
    joint_dataset,
    load_tasks,
    replay_buffer,
    with_replay,
)
from ghost.model.io import MEMORY_NAME, MEMORY_VECTORS_NAME, atomic_write_text

RESULTS = "results.json"
NODE_DONE, SCORES, FISHER = "node.json", "scores.json", "fisher.safetensors"
FISHER_KFAC = "fisher-kfac.safetensors"  # --fisher-form kfac: the diagonal and the factors
SAVE_EVERY = 50  # steps between a node's checkpoints: how much a killed run repeats


class _Stop(Exception):
    """Stop the run here (stop_after reached, or training interrupted); results so far stand."""


@dataclass
class Node:
    key: str
    spec: dict
    task: int  # the task it trains (joint: the last)
    parent: Node | None = None
    fisher_from: list[Node] = field(default_factory=list)  # nodes whose Fisher it reads


def _key(prefix: str, spec: dict) -> str:
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"{prefix}-{digest}"


class _Runner:
    def __init__(
        self,
        cfg: ContinualConfig,
        tasks: list[Task],
        threads: int,
        quiet: bool,
        stop_after: int | None,
    ):
        self.cfg, self.tasks, self.threads, self.quiet = cfg, tasks, threads, quiet
        self.out = Path(cfg.out)
        self.stop_after = stop_after
        self.trained_now = 0
        self.sweep: dict | None = None
        self.ewc_lambda: float | None = None
        self.code = code_version()  # what this invocation runs; a later commit is not it

    # --- nodes ------------------------------------------------------------------------

    def sequence(self, strategy: str, seed: int, ewc_lambda: float | None) -> list[Node]:
        """The nodes of one sequential strategy on one seed, task by task."""
        nodes: list[Node] = []
        for k in range(len(self.tasks)):
            parent = nodes[-1] if nodes else None
            spec = {
                "seed": seed,
                "task": self.tasks[k].name,
                "position": k,
                "parent": parent.key if parent else None,
                "replay": 0,
                "penalty": None,
            }
            fisher_from: list[Node] = []
            if strategy == "replay" and k > 0:
                spec["replay"] = self.cfg.replay_size
            if strategy in MEMORY_STRATEGIES:
                spec["memory"] = True
                if k > 0:  # reading is practised on generated facts while this task trains
                    spec["rehearse_reading"] = True
            if strategy in PENALTY_STRATEGIES and k > 0:
                fisher_from = list(nodes)
                # One Fisher file: online EWC's running Fisher is that file, anchored at the
                # same weights, so the two strategies train the same node.
                recipe = "online-ewc" if strategy == "online-ewc" and k > 1 else "ewc"
                spec["penalty"] = {
                    "recipe": recipe,
                    "lambda": ewc_lambda,
                    "fisher": [n.key for n in fisher_from],
                }
                if recipe == "online-ewc":
                    spec["penalty"]["gamma"] = self.cfg.online_gamma
                if self.cfg.ewc_update != "gradient":  # (the key of a gradient node is as before)
                    spec["penalty"]["update"] = self.cfg.ewc_update
                if self.cfg.fisher_form != "diagonal":  # (likewise)
                    spec["penalty"]["form"] = self.cfg.fisher_form
            prefix = f"{k + 1}-{self.tasks[k].slug}"
            nodes.append(Node(_key(prefix, spec), spec, k, parent, fisher_from))
        return nodes

    def joint(self, seed: int) -> Node:
        spec = {"seed": seed, "joint": [t.name for t in self.tasks]}
        return Node(_key("joint", spec), spec, len(self.tasks) - 1)

    def node_dir(self, node: Node) -> Path:
        return self.out / "runs" / node.key

    def link(self, view: Path, node: Node) -> None:
        """OUT/<view> -> runs/<node>, a relative link (skipped where links are not possible)."""
        view = self.out / view
        if view.is_symlink() or view.exists():
            return
        view.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(os.path.relpath(self.node_dir(node), view.parent), view)
        except OSError:
            pass

    # --- training, Fisher, scores -----------------------------------------------------

    def train(self, node: Node) -> None:
        from ghost.train.checkpoint import (
            CHECKPOINTS,
            STATE_NAME,
            latest_checkpoint,
            load_trainer_state,
        )
        from ghost.train.loop import train

        run_dir = self.node_dir(node)
        if (run_dir / NODE_DONE).is_file():
            return
        if node.parent is not None:
            self.train(node.parent)
        for earlier in node.fisher_from:  # estimated now, so not timed as this training
            self.fisher(earlier)
        joint = "joint" in node.spec
        steps = self.cfg.steps_per_task * (len(self.tasks) if joint else 1)
        checkpoint = latest_checkpoint(run_dir) if run_dir.is_dir() else None
        started = time.monotonic()
        if checkpoint is not None and int(checkpoint.name.split("-")[1]) >= steps:
            seconds = float(load_trainer_state(checkpoint / STATE_NAME)["elapsed"])
        else:
            if checkpoint is None and run_dir.exists():
                shutil.rmtree(run_dir)  # stopped before its first checkpoint: start again
            if checkpoint is None and node.spec.get("memory") and node.parent is not None:
                # The parent's bank, as init_from reads it: a resume reads the run's own.
                run_dir.mkdir(parents=True, exist_ok=True)
                for name in (MEMORY_NAME, MEMORY_VECTORS_NAME):
                    if (self.node_dir(node.parent) / name).is_file():
                        shutil.copy2(self.node_dir(node.parent) / name, run_dir / name)
            self._say(f"{node.key}: training {steps} steps" + (" (resumed)" if checkpoint else ""))
            dataset = self._dataset(node)
            result = train(
                self._train_config(node, steps, checkpoint is not None, dataset.name),
                model_config=None if node.parent else GhostConfig.from_preset(self.cfg.preset),
                dataset=dataset,
            )
            if result.interrupted:
                raise _Stop(f"interrupted while training {node.key} (step {result.steps})")
            seconds = result.seconds
        if self._writes_facts(node):
            self._write_facts(node)
        record = {
            "spec": node.spec,
            "steps": steps,
            "train_seconds": seconds,
            "wall_seconds": time.monotonic() - started,
            "code": self.code,
        }
        atomic_write_text(run_dir / NODE_DONE, json.dumps(record, indent=1) + "\n")
        # A finished node keeps its weights (what eval, ask and the next task read), not its
        # checkpoint (~71 MB for v5-fast, the optimiser state included): only a resume of its
        # own training would read it.
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
        self.trained_now += 1

    def _train_config(self, node: Node, steps: int, resume: bool, data: str) -> TrainConfig:
        c = self.cfg
        recipes = {}
        penalty = node.spec.get("penalty")
        if penalty:
            options = {
                "fisher": [str(self.fisher(n)) for n in node.fisher_from],
                "ewc_lambda": penalty["lambda"],
            }
            if "gamma" in penalty:
                options["gamma"] = penalty["gamma"]
            if "update" in penalty:
                options["update"] = penalty["update"]
            recipes[penalty["recipe"]] = options
        return TrainConfig(
            data=data,
            out=str(self.node_dir(node)),
            preset=c.preset,
            steps=steps,
            batch_size=c.batch_size,
            seq_len=c.seq_len,
            lr=c.lr,
            precision=c.precision,
            seed=node.spec["seed"],
            threads=self.threads,
            eval_every=steps,
            save_every=min(SAVE_EVERY, steps),
            recipes=recipes,
            memory_training="on"
            if self._writes_facts(node) or node.spec.get("rehearse_reading")
            else "off",
            memory_steps=0,  # reading is kept up beside each task's learning, not after it
            init_from=str(self.node_dir(node.parent)) if node.parent else None,
            resume=resume,
            quiet=self.quiet,
        )

    def _writes_facts(self, node: Node) -> bool:
        """A `memory` node whose task's records carry facts: it trains the memory and leaves
        the task's facts in its bank (later nodes start from it, bank included)."""
        from ghost.train.memory import records_carry_facts

        return bool(node.spec.get("memory")) and records_carry_facts(
            self.tasks[node.task].train.records
        )

    def _write_facts(self, node: Node) -> None:
        """Every fact the task's training records carry, into the node's saved bank."""
        from ghost.model.io import save_memory

        run_dir = self.node_dir(node)
        model = _load(run_dir)
        records = self.tasks[node.task].train.records
        model.memory.write([f for r in records for f in r.get("facts") or []])
        save_memory(model, run_dir)

    def _dataset(self, node: Node):
        if "joint" in node.spec:
            return joint_dataset(self.tasks)
        task = self.tasks[node.task]
        if not node.spec["replay"]:
            return task.train
        buffer = replay_buffer(self.tasks[: node.task], node.spec["replay"], node.spec["seed"])
        return with_replay(task, buffer)

    def fisher(self, node: Node) -> Path:
        """The node's Fisher file, estimated now if it is not there yet."""
        from ghost.model.ghost import GhostModel
        from ghost.train.recipes.ewc import estimate_fisher, estimate_kfac, save_fisher

        kfac = self.cfg.fisher_form == "kfac"
        path = self.node_dir(node) / (FISHER_KFAC if kfac else FISHER)
        if path.is_file():
            return path
        self.train(node)
        task, seed = self.tasks[node.task], node.spec["seed"]
        records = fisher_records(task, self.cfg.fisher_samples, seed)
        started = time.monotonic()
        model = GhostModel.from_pretrained(self.node_dir(node))
        estimate = estimate_kfac if kfac else estimate_fisher
        estimated = estimate(
            model,
            records,
            self.cfg.fisher_targets,
            seed=hash_seeds(seed, node.task),
            temperature=self.cfg.fisher_temperature,
            draws=self.cfg.fisher_draws,
        )
        fisher, factors = estimated if kfac else (estimated, None)
        seconds = time.monotonic() - started
        save_fisher(
            path,
            model,
            fisher,
            {
                "task": task.name,
                "samples": len(records),
                "of_records": len(task.train),
                "targets": self.cfg.fisher_targets,
                "temperature": self.cfg.fisher_temperature,
                "draws": self.cfg.fisher_draws,
                "seed": seed,
                "node": node.key,
                "seconds": seconds,
            },
            factors,
        )
        self._say(
            f"{node.key}: Fisher of {task.name} from {len(records)} records "
            f"({self.cfg.fisher_targets} targets, {seconds:.0f} s)"
        )
        return path

    def scores(self, node: Node, kinds: tuple[str, ...], tasks: int | None = None) -> dict:
        """{task name: {kind: {"exact_match", "n", "loss"}}} for the first `tasks` tasks (all
        by default), computing and saving what scores.json lacks."""
        path = self.node_dir(node) / SCORES
        saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        wanted = [
            (t, kind)
            for t in self.tasks[:tasks]
            for kind in kinds
            if t.subset(kind) is not None and kind not in saved.get(t.name, {})
        ]
        if wanted:
            self.train(node)
            started = time.monotonic()
            model = _load(self.node_dir(node))
            for task, kind in wanted:
                saved.setdefault(task.name, {})[kind] = score_sample(model, task.subset(kind))
            saved.setdefault("_seconds", 0.0)
            saved["_seconds"] += time.monotonic() - started
            atomic_write_text(path, json.dumps(saved, indent=1) + "\n")
        return saved

    def _maybe_stop(self, write) -> None:
        """Results so far on disk; then stop if this call has done its `stop_after` trainings."""
        write()
        if self.stop_after is not None and self.trained_now >= self.stop_after:
            raise _Stop(f"stopped after {self.trained_now} trainings (stop_after)")

    # --- the experiment ---------------------------------------------------------------

    def execute(self, write) -> None:
        self.ewc_lambda = self._choose_lambda(write)
        for seed in range(self.cfg.seeds):
            for strategy in self.cfg.strategies:
                if strategy == "joint":
                    views = [(Path("joint") / f"seed-{seed}" / "all-tasks", self.joint(seed))]
                else:
                    lam = self.ewc_lambda if strategy in PENALTY_STRATEGIES else None
                    nodes = self.sequence(strategy, seed, lam)
                    views = [
                        (Path(strategy) / f"seed-{seed}" / self._view_name(n), n) for n in nodes
                    ]
                for view, node in views:
                    self.link(view, node)
                    self.scores(node, ("retention", "heldout"))
                    self._maybe_stop(write)

    def _view_name(self, node: Node) -> str:
        return f"{node.task + 1}-{self.tasks[node.task].slug}"

    def _choose_lambda(self, write) -> float | None:
        """The given lambda, or the sweep's: on the first seed, EWC over the first
        `sweep_tasks` tasks at each grid value, scored on the validation samples after each
        task; the value with the best average validation accuracy at the end wins (ties:
        the lower mean validation loss)."""
        c = self.cfg
        if not c.sweeping:
            return c.ewc_lambda if c.ewc_lambda != SWEEP else None
        depth, runs = c.sweep_tasks, {}
        self.sweep = {"seed": 0, "tasks": depth, "runs": runs, "chosen": None}
        for lam in c.lambda_grid:
            rows = []
            for node in self.sequence("ewc", 0, lam)[:depth]:
                self.link(Path("sweep") / f"lambda-{lam:g}" / self._view_name(node), node)
                rows.append(self.scores(node, ("validation",), tasks=depth))
                self._maybe_stop(write)
            names = [t.name for t in self.tasks[:depth]]
            accuracy = [[row[n]["validation"]["exact_match"] for n in names] for row in rows]
            loss = [[row[n]["validation"]["loss"] for n in names] for row in rows]
            runs[f"{lam:g}"] = {
                "lambda": lam,
                "validation": accuracy,
                "validation_loss": loss,
                "average_accuracy": cl_metrics.average_accuracy(accuracy),
                "average_loss": sum(loss[-1]) / len(loss[-1]),
                "average_forgetting": cl_metrics.average_forgetting(accuracy),
            }
        best = max(runs.values(), key=lambda r: (r["average_accuracy"], -r["average_loss"]))
        self.sweep["chosen"] = best["lambda"]
        self._say(
            f"lambda sweep: chose {best['lambda']:g} (average validation accuracy "
            f"{best['average_accuracy']:.1%})"
        )
        return best["lambda"]

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(f"continual: {line}", file=sys.stderr, flush=True)

    # --- results ----------------------------------------------------------------------

    def collect(self) -> dict:
        """Matrices and metrics of every strategy and seed, from what is on disk."""
        runs, summary = {}, {}
        for strategy in self.cfg.strategies:
            by_seed = {}
            for seed in range(self.cfg.seeds):
                if strategy == "joint":
                    nodes = [self.joint(seed)]
                elif strategy in PENALTY_STRATEGIES and self.ewc_lambda is None:
                    continue  # the sweep has not chosen lambda yet
                else:
                    lam = self.ewc_lambda if strategy in PENALTY_STRATEGIES else None
                    nodes = self.sequence(strategy, seed, lam)
                by_seed[str(seed)] = self._matrices(nodes)
            runs[strategy] = by_seed
            summary[strategy] = {}
            for kind in ("retention", "heldout"):
                matrices = [m[kind] for m in by_seed.values() if _complete(m[kind])]
                complete = len(matrices) == self.cfg.seeds  # every seed, or no summary yet
                summary[strategy][kind] = cl_metrics.summarize(matrices) if complete else None
        return {"runs": runs, "summary": summary}

    def _matrices(self, nodes: list[Node]) -> dict:
        rows = {"retention": [], "retention_loss": [], "heldout": []}
        for node in nodes:
            path = self.node_dir(node) / SCORES
            saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            for kind, key in (
                ("retention", "exact_match"),
                ("retention_loss", "loss"),
                ("heldout", "exact_match"),
            ):
                score_kind = "heldout" if kind == "heldout" else "retention"
                rows[kind].append(
                    [saved.get(t.name, {}).get(score_kind, {}).get(key) for t in self.tasks]
                )
        rows["nodes"] = [n.key for n in nodes]
        return rows


def _complete(matrix: list[list]) -> bool:
    return bool(matrix) and all(v is not None for row in matrix for v in row)


def _load(run_dir: Path):
    from ghost.model.ghost import GhostModel

    return GhostModel.from_pretrained(run_dir)


def score_sample(model, dataset) -> dict:
    """Exact match (ghost.eval.metrics.evaluate_qa) and the mean loss of the target bytes."""
    from ghost.data.batches import QABatcher
    from ghost.data.template import QATemplate
    from ghost.eval.metrics import evaluate_qa, mean_loss

    summary, _ = evaluate_qa(model, dataset)
    batcher = QABatcher(dataset, QATemplate.from_config(model.config), 64, 10**6)
    loss = mean_loss(model, batcher, list(range(len(dataset))))
    return {"exact_match": summary["exact_match"], "n": summary["n"], "loss": loss}


def run_continual(
    config: ContinualConfig | None = None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    threads: int = 0,
    quiet: bool = False,
    command: str | None = None,
    **overrides,
) -> dict:
    """Run (or with `resume`, continue) a continual-learning experiment; returns the results
    dict also written to OUT/results.json. `stop_after` N: stop once N trainings were done
    in this call (the run continues later with `resume=True`). Keyword overrides set
    ContinualConfig fields."""
    from ghost.continual.report import results_document, write_report
    from ghost.runtime import configure

    cfg = replace(config, **overrides) if config is not None else ContinualConfig(**overrides)
    out = Path(cfg.out)
    check_plan(out, cfg, resume)
    tasks = load_tasks(cfg.tasks, cfg.heldout, cfg.eval_size)  # bad input: nothing written
    threads = configure(threads, seed=0)
    started = time.monotonic()
    previous = _previous_wall(out) if resume else 0.0
    out.mkdir(parents=True, exist_ok=True)
    write_plan(out, cfg)  # a resumed run's plan, with any strategies it adds
    runner = _Runner(cfg, tasks, threads, quiet, stop_after)
    stopped = None

    def write(report: bool = False) -> dict:
        """results.json after every node; report.md and the plots at the end."""
        results = results_document(
            runner,
            cfg,
            tasks,
            command,
            threads,
            stopped,
            wall=(time.monotonic() - started, previous),
        )
        atomic_write_text(out / RESULTS, json.dumps(results, indent=1) + "\n")
        if report:
            write_report(results, out)
        return results

    try:
        runner.execute(write)
    except _Stop as stop:
        stopped = str(stop)
    return write(report=True)


def _previous_wall(out: Path) -> float:
    """Wall seconds of the invocations before this one (from the last results.json)."""
    try:
        results = json.loads((out / RESULTS).read_text(encoding="utf-8"))
        return float(results["timing"]["wall_seconds_all_invocations"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
