"""`ghost continual`: the subcommand's flags and handler (parse -> ContinualConfig ->
`run_continual`), kept beside the feature so that ghost/cli.py only wires it in.

Every setting flag defaults to None here, meaning "not given": a fresh run takes the
ContinualConfig default, and `--resume` takes the saved plan's value, refusing a given value
that differs from it.
"""

from __future__ import annotations

import shlex
import sys

from ghost.continual.config import (
    EWC_UPDATES,
    FISHER_FORMS,
    FISHER_TARGETS,
    STRATEGIES,
    ContinualConfig,
)
from ghost.errors import GhostInputError

# flag dest -> ContinualConfig field
SETTINGS = {
    "tasks": "tasks",
    "strategy": "strategies",
    "heldout": "heldout",
    "seeds": "seeds",
    "steps_per_task": "steps_per_task",
    "ewc_lambda": "ewc_lambda",
    "lambda_grid": "lambda_grid",
    "sweep_tasks": "sweep_tasks",
    "online_gamma": "online_gamma",
    "replay_size": "replay_size",
    "fisher_samples": "fisher_samples",
    "fisher_targets": "fisher_targets",
    "fisher_temperature": "fisher_temperature",
    "fisher_draws": "fisher_draws",
    "fisher_form": "fisher_form",
    "ewc_update": "ewc_update",
    "eval_size": "eval_size",
    "preset": "preset",
    "batch_size": "batch_size",
    "seq_len": "seq_len",
    "lr": "lr",
    "precision": "precision",
}


def add_continual_command(sub) -> None:
    """Add `ghost continual` to the `ghost` command's subparsers."""
    from ghost.cli import (
        _float,
        _positive_int,
        add_experiment_options,
        config_defaults,
    )
    from ghost.config import PRESETS

    d = config_defaults(ContinualConfig)
    p = sub.add_parser(
        "continual",
        help="learn tasks in sequence (EWC, online EWC, replay, naive, joint): accuracy matrix, "
        "forgetting, backward transfer",
    )
    p.add_argument(
        "--tasks",
        help="the tasks in training order, comma-separated: built-in NAME[:SPLIT] or .jsonl "
        "files of Q&A records (required, except with --resume)",
    )
    p.add_argument(
        "--strategy",
        help="strategies run side by side, comma-separated (default ewc): "
        + "; ".join(f"{name}: {text}" for name, text in STRATEGIES.items()),
    )
    p.add_argument(
        "--heldout",
        help="each task's held-out data, comma-separated in task order, '-' for none (default: "
        "a built-in's held-out split, e.g. facts200:paraphrase, math1k:test; none for files)",
    )
    p.add_argument("--seeds", type=_positive_int, help=f"seeds 0..N-1 (default {d['seeds']})")
    p.add_argument(
        "--steps-per-task",
        type=_positive_int,
        help=f"optimiser steps on each task; joint trains this times the number of tasks "
        f"(default {d['steps_per_task']})",
    )
    p.add_argument(
        "--ewc-lambda",
        help="lambda of the EWC penalty (lambda/2) sum F (theta - theta*)^2, or 'sweep': "
        "chosen on the first seed against validation records (default sweep)",
    )
    p.add_argument(
        "--lambda-grid",
        help="values the sweep tries, comma-separated (default "
        + ",".join(f"{v:g}" for v in d["lambda_grid"])
        + ")",
    )
    p.add_argument(
        "--sweep-tasks",
        type=_positive_int,
        help=f"the sweep trains the first N tasks (default {d['sweep_tasks']})",
    )
    p.add_argument(
        "--online-gamma",
        type=_float,
        help=f"online EWC: decay of the running Fisher per task (default {d['online_gamma']:g})",
    )
    p.add_argument(
        "--replay-size",
        type=_positive_int,
        help=f"replay: earlier records in the buffer (default {d['replay_size']})",
    )
    p.add_argument(
        "--fisher-samples",
        type=_positive_int,
        help=f"records of a finished task its Fisher is estimated from (default "
        f"{d['fisher_samples']})",
    )
    p.add_argument(
        "--fisher-targets",
        choices=list(FISHER_TARGETS),
        help="model: answers sampled from the model (the true Fisher); empirical: the data's "
        f"answers (default {d['fisher_targets']})",
    )
    p.add_argument(
        "--ewc-update",
        choices=list(EWC_UPDATES),
        help="gradient: the penalty is added to the loss; proximal: an exact proximal step "
        f"after each optimiser step (default {d['ewc_update']})",
    )
    p.add_argument(
        "--fisher-temperature",
        type=_float,
        help="the Fisher of the model's distribution softened by this temperature, answers "
        f"sampled from it (default {d['fisher_temperature']:g})",
    )
    p.add_argument(
        "--fisher-draws",
        type=_positive_int,
        help="answers sampled per record for the Fisher (model targets; default "
        f"{d['fisher_draws']}): more draws, less variance, one backward pass each",
    )
    p.add_argument(
        "--fisher-form",
        choices=list(FISHER_FORMS),
        help="diagonal: one Fisher value a weight; kfac: each linear layer's Fisher as a "
        f"Kronecker product (K-FAC), the rest diagonal (default {d['fisher_form']})",
    )
    p.add_argument(
        "--eval-size",
        type=_positive_int,
        help=f"records per task in each scored sample: retention (training records), the "
        f"sweep's validation (other training records) and held-out (default {d['eval_size']})",
    )
    p.add_argument("--preset", choices=list(PRESETS), help=f"model preset (default {d['preset']})")
    add_experiment_options(p, d, "output directory (runs, results, report)")
    p.set_defaults(func=cmd_continual)


def cmd_continual(args) -> int:
    from ghost.continual.config import saved_plan
    from ghost.continual.runner import run_continual

    given = {
        field: getattr(args, dest)
        for dest, field in SETTINGS.items()
        if getattr(args, dest) is not None
    }
    if args.resume:
        known = set(ContinualConfig.fields())
        plan = {k: v for k, v in (saved_plan(args.out) or {}).items() if k in known}
        settings = {**plan, **given}
    elif not args.tasks:
        raise GhostInputError("ghost continual: --tasks is required (e.g. facts200,bash100)")
    else:
        settings = given
    if not settings.get("tasks"):
        raise GhostInputError(f"{args.out}: nothing to resume (no plan.json); give --tasks")
    settings["out"] = args.out
    config = ContinualConfig(**settings)
    results = run_continual(
        config,
        resume=args.resume,
        stop_after=args.stop_after,
        threads=args.threads,
        quiet=args.quiet,
        command=shlex.join(["ghost", *args.argv]),
    )
    for strategy, kinds in results["summary"].items():
        kept = kinds.get("retention")
        if kept is None:
            continue
        forgetting = kept["average_forgetting"]
        print(
            f"{strategy:<11} average accuracy {kept['average_accuracy']['median']:.1%}"
            + ("" if forgetting is None else f"  forgetting {forgetting['median']:.1%}")
            + f"  last task {kept['last_task_accuracy']['median']:.1%}"
        )
    print(f"report: {args.out}/report.md")
    if results["stopped"]:
        print(
            f"ghost: {results['stopped']}; continue with: ghost continual --out "
            f"{shlex.quote(args.out)} --resume",
            file=sys.stderr,
        )
        return 130 if results["stopped"].startswith("interrupted") else 0
    return 0
