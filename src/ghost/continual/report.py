"""What a continual run writes: results.json (`results_document`), report.md and two plots
(`write_report`): the median retention matrix of each strategy as a heatmap, and each task's
accuracy after every task of the sequence, one line per strategy with its min-max band.

Plots need matplotlib (the "plots" extra); without it the report says so and keeps its
tables. The Markdown is rendered by the bench report's renderer (one renderer of tables).
"""

from __future__ import annotations

import json
from pathlib import Path

from ghost.bench.report import NO_PLOTS, Figure, render_markdown

METHOD = [
    "Each sequential strategy trains the tasks in order, a fixed number of steps each "
    "(warm-up + cosine schedule, a fresh optimiser per task, the previous task's weights as "
    "the start); joint trains once on all tasks, each an equal share of the rows, for the "
    "same total steps. All strategies of a seed share its initial weights and, on the same "
    "data, its data order.",
    "After each task every task is scored by greedy exact match (ghost.eval.metrics) on its "
    "retention sample (a fixed sample of its training records: what forgetting is computed "
    "on) and on its held-out set (generalisation). R[i][j]: the score on task j after "
    "training task i.",
    "Average accuracy: the mean of the last row. Forgetting of task j: its best score "
    "before the last task minus its final score. Backward transfer: the mean of "
    "R[T-1][j] - R[j][j] over the earlier tasks. Over seeds: median [min, max].",
    "EWC adds (lambda/2) sum_i F_i (theta_i - theta*_i)^2 per earlier task; F is the mean of "
    "squared per-record gradients of the log-likelihood (one backward pass per record). "
    "Online EWC folds the Fisher files into one, F~ = gamma F~ + F_new, anchored at the last "
    "task's weights. Replay mixes a buffer of earlier records into each new task's data.",
    "Lambda, when swept, is chosen on the first seed by EWC over the first tasks, scored on "
    "validation records: training records outside the retention sample (never a reported "
    "number); the value with the best final average validation accuracy is used everywhere.",
]


def _wall(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def target_check(summary: dict) -> dict | None:
    """The issue's targets on medians over seeds: EWC's average forgetting at most 1/3 of
    naive fine-tuning's, and its last task's accuracy within 10 points of naive's."""
    naive = (summary.get("naive") or {}).get("retention")
    ewc = (summary.get("ewc") or {}).get("retention")
    if not naive or not ewc:
        return None
    naive_forgetting = naive["average_forgetting"]["median"]
    ewc_forgetting = ewc["average_forgetting"]["median"]
    ratio = ewc_forgetting / naive_forgetting if naive_forgetting > 0 else None
    gap = naive["last_task_accuracy"]["median"] - ewc["last_task_accuracy"]["median"]
    return {
        "naive_average_forgetting": naive_forgetting,
        "ewc_average_forgetting": ewc_forgetting,
        "forgetting_ratio": ratio,
        "forgetting_target_met": ratio is not None and ratio <= 1 / 3,
        "last_task_gap_points": 100 * gap,
        "last_task_target_met": gap <= 0.10,
    }


def _timing(out: Path, wall: tuple[float, float]) -> dict:
    """Seconds spent, summed over the node directories on disk, and wall time."""
    from safetensors import SafetensorError, safe_open

    from ghost.continual.runner import FISHER, FISHER_KFAC, NODE_DONE, SCORES

    train = evaluation = fisher = 0.0
    nodes = 0
    for run_dir in sorted((out / "runs").glob("*")) if (out / "runs").is_dir() else []:
        if (run_dir / NODE_DONE).is_file():
            nodes += 1
            train += json.loads((run_dir / NODE_DONE).read_text(encoding="utf-8"))["wall_seconds"]
        if (run_dir / SCORES).is_file():
            evaluation += json.loads((run_dir / SCORES).read_text(encoding="utf-8"))["_seconds"]
        for path in (run_dir / FISHER, run_dir / FISHER_KFAC):
            if not path.is_file():
                continue
            try:
                with safe_open(str(path), framework="pt") as f:
                    fisher += float((f.metadata() or {}).get("seconds", "0"))
            except (SafetensorError, OSError, ValueError):
                pass  # a damaged file is reported where it is used (the ewc recipe)
    this, before = wall
    return {
        "trainings": nodes,
        "train_seconds": train,
        "eval_seconds": evaluation,
        "fisher_seconds": fisher,
        "wall_seconds_this_invocation": this,
        "wall_seconds_all_invocations": before + this,
    }


def results_document(runner, cfg, tasks, command, threads, stopped, wall) -> dict:
    """results.json: config, machine, tasks, lambda, every run's matrices, the summary."""
    from ghost.bench.machine import machine_record
    from ghost.runtime import resolve_precision
    from ghost.train.recipes.ewc import ESTIMATOR

    collected = runner.collect()
    lam = runner.ewc_lambda
    return {
        "title": "Continual learning: " + " -> ".join(cfg.tasks),
        "command": command,
        "complete": stopped is None,
        "stopped": stopped,
        "config": cfg.to_dict(),
        "machine": {
            **machine_record(threads),
            **runner.code,  # the code this invocation started with, not the checkout's now
            "precision_used": resolve_precision(cfg.precision),
        },
        "tasks": [
            {
                "name": t.name,
                "label": t.slug,
                "train_records": len(t.train),
                "retention_records": len(t.retention),
                "validation_records": len(t.validation),
                "heldout": t.heldout.name if t.heldout else None,
                "heldout_records": len(t.heldout) if t.heldout else 0,
            }
            for t in tasks
        ],
        "lambda": {
            "value": lam,
            "chosen_by": "sweep" if cfg.sweeping else ("given" if lam is not None else "unused"),
            "sweep": runner.sweep,
        },
        "fisher": {
            "samples": cfg.fisher_samples,
            "targets": cfg.fisher_targets,
            "draws": cfg.fisher_draws,
            "form": cfg.fisher_form,
            "estimator": ESTIMATOR,
        },
        "runs": collected["runs"],
        "summary": collected["summary"],
        "targets": target_check(collected["summary"]),
        "timing": _timing(Path(cfg.out), wall),
        "method": METHOD,
    }


# --- report.md ----------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def spread_cell(spread: dict | None) -> str:
    """A `metrics.spread` as a table cell in percent: "median [min, max]"."""
    if spread is None:
        return "n/a"
    if spread["min"] == spread["max"]:
        return _percent(spread["median"])
    return f"{_percent(spread['median'])} [{_percent(spread['min'])}, {_percent(spread['max'])}]"


def _comparison(results: dict) -> list[list[str]]:
    rows = []
    for strategy, kinds in results["summary"].items():
        kept, held = kinds.get("retention"), kinds.get("heldout")
        if kept is None:
            rows.append([strategy] + ["(not complete)"] * 6)
            continue
        rows.append(
            [
                strategy,
                spread_cell(kept["average_accuracy"]),
                spread_cell(kept["average_forgetting"]),
                spread_cell(kept["backward_transfer"]),
                spread_cell(kept["last_task_accuracy"]),
                spread_cell(held["average_accuracy"]) if held else "n/a",
                spread_cell(held["average_forgetting"]) if held else "n/a",
            ]
        )
    return rows


def _matrix_table(results: dict, matrix: list[list[float]], joint: bool):
    names = [t["name"] for t in results["tasks"]]
    columns = ["after training"] + names
    labels = ["all tasks (joint)"] if joint else [f"{i + 1}. {n}" for i, n in enumerate(names)]
    return columns, [
        [label] + [_percent(v) for v in row] for label, row in zip(labels, matrix, strict=True)
    ]


def _machine_text(results: dict) -> str:
    m, timing = results["machine"], results["timing"]
    threads = f"{m['threads']} thread{'s' if m['threads'] > 1 else ''}"
    commit = m["commit"][:10] + (" (dirty)" if m["dirty"] else "")
    return (
        f"Machine: {m['cpu']} ({' '.join(m['cpu_flags'])}), {threads}, {m['precision_used']}, "
        f"{m['allocator']}, torch {m['torch']}, commit {commit}. Wall time "
        f"{_wall(timing['wall_seconds_all_invocations'])} ({timing['trainings']} trainings: "
        f"{_wall(timing['train_seconds'])} training, {_wall(timing['eval_seconds'])} scoring, "
        f"{_wall(timing['fisher_seconds'])} Fisher)."
    )


def _settings_text(results: dict) -> str:
    cfg, lam = results["config"], results["lambda"]
    if lam["value"] is None:
        lam_text = "being swept" if lam["chosen_by"] == "sweep" else "unused"
    else:
        how = "chosen by the sweep below" if lam["chosen_by"] == "sweep" else "given"
        lam_text = f"{lam['value']:g} ({how})"
    samples = ", ".join(
        f"{t['name']} retention {t['retention_records']}/{t['train_records']}, "
        f"held-out {t['heldout'] or 'none'} ({t['heldout_records']})"
        for t in results["tasks"]
    )
    draws = cfg.get("fisher_draws", 1)  # (results written before the option: 1)
    draws_text = f", {draws} draws a record" if draws > 1 else ""
    if cfg.get("fisher_form", "diagonal") == "kfac":
        draws_text += "; linear layers Kronecker-factored (K-FAC), the rest diagonal"
    return (
        f"Preset {cfg['preset']}, {cfg['steps_per_task']} steps per task, batch "
        f"{cfg['batch_size']}, lr {cfg['lr']:g}, seeds 0-{cfg['seeds'] - 1}. Lambda {lam_text}; "
        f"online EWC gamma {cfg['online_gamma']:g}; replay buffer {cfg['replay_size']} records; "
        f"Fisher from up to {cfg['fisher_samples']} records per task ({cfg['fisher_targets']} "
        f"targets{draws_text}). Samples per task: {samples}."
    )


def _targets_text(targets: dict) -> str:
    ratio = targets["forgetting_ratio"]
    ratio_text = "n/a" if ratio is None else f"{ratio:.2f}"

    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    return (
        f"Targets (medians): EWC's average forgetting "
        f"{_percent(targets['ewc_average_forgetting'])} vs naive's "
        f"{_percent(targets['naive_average_forgetting'])} (ratio {ratio_text}, target <= 0.33: "
        f"{met(targets['forgetting_target_met'])}); last task "
        f"{targets['last_task_gap_points']:.1f} points below naive (target <= 10: "
        f"{met(targets['last_task_target_met'])})."
    )


def _sweep_blocks(sweep: dict) -> list[tuple]:
    rows = [
        [
            f"{r['lambda']:g}" + (" (chosen)" if r["lambda"] == sweep["chosen"] else ""),
            _percent(r["average_accuracy"]),
            _percent(r["average_forgetting"]),
            f"{r['average_loss']:.3f}",
        ]
        for r in sweep["runs"].values()
    ]
    columns = ["lambda", "final average validation accuracy", "forgetting",
               "final mean validation loss (nats/byte)"]  # fmt: skip
    intro = (
        f"EWC on seed {sweep['seed']} over the first {sweep['tasks']} tasks, scored on each "
        "task's validation records (training records outside the retention sample)."
    )
    return [("h", 2, "Lambda sweep"), ("p", intro), ("table", columns, rows)]


COMPARISON_COLUMNS = [
    "strategy",
    "average accuracy",
    "average forgetting",
    "backward transfer",
    "last task",
    "held-out average accuracy",
    "held-out forgetting",
]


def _blocks(results: dict, plots: dict[str, Path]) -> list[tuple]:
    blocks: list[tuple] = [("h", 1, results["title"])]
    if results["command"]:
        blocks.append(("pre", results["command"]))
    if not results["complete"]:
        blocks.append(("p", f"**Not complete**: {results['stopped']}. Continue with --resume."))
    blocks += [
        ("p", _machine_text(results)),
        ("p", _settings_text(results)),
        ("h", 2, "Comparison (%, median [min, max] over seeds)"),
        ("table", COMPARISON_COLUMNS, _comparison(results)),
    ]
    if results["targets"]:
        blocks.append(("p", _targets_text(results["targets"])))
    blocks.append(("h", 2, "Accuracy matrices (%, median over seeds)"))
    for strategy, kinds in results["summary"].items():
        for kind, label in (("retention", "retention sample"), ("heldout", "held-out")):
            if kinds.get(kind):
                joint = strategy == "joint"
                columns, rows = _matrix_table(results, kinds[kind]["matrix_median"], joint)
                blocks += [("p", f"**{strategy}**, {label}:"), ("table", columns, rows)]
    sweep = results["lambda"]["sweep"]
    if sweep and sweep["runs"]:
        blocks += _sweep_blocks(sweep)
    blocks.append(("h", 2, "Plots"))
    if Figure is None:
        blocks.append(("p", NO_PLOTS))
    for path in plots.values():
        blocks.append(("img", path, path.stem))
    blocks += [("h", 2, "Method"), ("list", results["method"])]
    return blocks


# --- plots --------------------------------------------------------------------------------


def _matrices_plot(results: dict, path: Path) -> Path | None:
    done = [
        (s, k["retention"]["matrix_median"])
        for s, k in results["summary"].items()
        if k.get("retention")
    ]
    if not done:
        return None
    names = [t["label"] for t in results["tasks"]]
    figure = Figure(figsize=(3.2 * len(done), 3.4), dpi=100)
    for i, (strategy, matrix) in enumerate(done):
        ax = figure.add_subplot(1, len(done), i + 1)
        ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for r, row in enumerate(matrix):
            for c, value in enumerate(row):
                ax.text(
                    c,
                    r,
                    f"{100 * value:.0f}",
                    ha="center",
                    va="center",
                    color="white" if value < 0.6 else "black",
                    fontsize=8,
                )
        ax.set_title(strategy, fontsize=10)
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=7)
        rows = ["joint"] if strategy == "joint" else names
        ax.set_yticks(range(len(rows)), [f"after {n}" for n in rows], fontsize=7)
    figure.suptitle("Retention exact match (%), median over seeds", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _over_time_plot(results: dict, path: Path) -> Path | None:
    names = [t["label"] for t in results["tasks"]]
    figure = Figure(figsize=(3.4 * len(names), 3.2), dpi=100)
    drawn = False
    for j, name in enumerate(names):
        ax = figure.add_subplot(1, len(names), j + 1)
        for strategy, by_seed in results["runs"].items():
            complete = [
                m["retention"]
                for m in by_seed.values()
                if all(v is not None for row in m["retention"] for v in row)
            ]
            if not complete:
                continue
            drawn = True
            values = [[row[j] for row in m] for m in complete]  # (seeds, rows)
            x = [len(names)] if strategy == "joint" else list(range(1, len(names) + 1))
            median = [sorted(col)[len(col) // 2] for col in zip(*values, strict=True)]
            low = [min(col) for col in zip(*values, strict=True)]
            high = [max(col) for col in zip(*values, strict=True)]
            style = (
                {"marker": "*", "markersize": 10, "linestyle": ""}
                if strategy == "joint"
                else {"marker": "o"}
            )
            ax.plot(x, median, label=strategy, **style)
            if strategy != "joint" and len(values) > 1:
                ax.fill_between(x, low, high, alpha=0.15)
        ax.set(
            title=name, xlabel="tasks trained", ylabel="retention exact match", ylim=(-0.02, 1.02)
        )
        ax.set_xticks(range(1, len(names) + 1))
        ax.grid(alpha=0.3)
    if not drawn:
        return None
    figure.axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def write_report(results: dict, out: Path) -> dict[str, Path]:
    """report.md and the plots (none without matplotlib) in `out`."""
    plots: dict[str, Path] = {}
    if Figure is not None:
        for kind, draw in (("matrices", _matrices_plot), ("accuracy-over-time", _over_time_plot)):
            drawn = draw(results, out / f"{kind}.png")
            if drawn is not None:
                plots[kind] = drawn
    path = out / "report.md"
    from ghost.model.io import atomic_write_text

    atomic_write_text(path, render_markdown(_blocks(results, plots)))
    return {"markdown": path, **plots}
