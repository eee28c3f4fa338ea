"""`ghost distill`: the subcommand's flags and handler (parse -> DistillConfig ->
`run_distill`), kept beside the feature so that ghost/cli.py only wires it in.

Setting flags default to None ("not given"): a fresh run takes the DistillConfig default,
`--resume` the saved plan's value.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ghost.distill.config import AGREEMENT, OPERATORS, STUDENT_INIT, DistillConfig
from ghost.errors import GhostInputError

# flag dest -> DistillConfig field
SETTINGS = {
    "data": "data",
    "rounds": "rounds",
    "seeds": "seeds",
    "preset": "preset",
    "steps": "steps",
    "max_minutes": "max_minutes",
    "student_init": "student_init",
    "agreement": "agreement",
    "confidence": "confidence",
    "dedup_threshold": "dedup_threshold",
    "operators": "operators",
    "budget": "budget",
    "seed_share": "seed_share",
    "augment": "augment",
    "reasoning": "reasoning",
    "group_by_length": "group_by_length",
    "context_copy": "context_copy",
    "recipe": "recipes",
    "heldout": "heldout",
    "init_from": "init_from",
    "batch_size": "batch_size",
    "seq_len": "seq_len",
    "lr": "lr",
    "precision": "precision",
}


def add_distill_command(sub) -> None:
    """Add `ghost distill` to the `ghost` command's subparsers."""
    from ghost.cli import (
        _float,
        _nonnegative_int,
        _positive_int,
        add_experiment_options,
        config_defaults,
    )
    from ghost.config import PRESETS

    d = config_defaults(DistillConfig)
    p = sub.add_parser(
        "distill",
        help="self-distillation: grow seed Q&A pairs into checked variants, round after round",
    )
    p.add_argument(
        "--data",
        help=f"the seed Q&A set: built-in NAME[:SPLIT] or a .jsonl file (default {d['data']})",
    )
    p.add_argument("--rounds", type=_positive_int, help=f"rounds (default {d['rounds']})")
    p.add_argument(
        "--seeds", type=_positive_int, help=f"repetitions with seeds 0..N-1 (default {d['seeds']})"
    )
    p.add_argument("--preset", choices=list(PRESETS), help=f"model preset (default {d['preset']})")
    p.add_argument(
        "--steps",
        help="optimiser steps of each training, or 'auto': until every training question is "
        f"answered or the loss stops improving (default {d['steps']})",
    )
    p.add_argument(
        "--max-minutes",
        type=_float,
        help=f"time budget of each training with --steps auto (default {d['max_minutes']:g})",
    )
    p.add_argument(
        "--student-init",
        choices=list(STUDENT_INIT),
        help=f"students start from their teacher's weights or from scratch (default "
        f"{d['student_init']})",
    )
    p.add_argument(
        "--agreement",
        choices=list(AGREEMENT),
        help="a variant of a seed whose teacher answer differs from the seed fact's: require "
        f"(drop it) or correct (keep it with the fact's answer) (default {d['agreement']})",
    )
    p.add_argument(
        "--confidence",
        type=_float,
        help="least mean byte probability of the teacher's answer for candidates no fact or "
        f"verifier can check (default {d['confidence']:g})",
    )
    p.add_argument(
        "--dedup-threshold",
        type=_float,
        help="word ROUGE-L at which two questions with one answer are one pair, and a "
        f"candidate near a held-out question is a leak (default {d['dedup_threshold']:g})",
    )
    p.add_argument(
        "--operators",
        help=f"comma-separated, from {', '.join(OPERATORS)} (default "
        f"{','.join(d['operators'])}; teacher proposes questions no fact can check)",
    )
    p.add_argument(
        "--budget",
        type=_nonnegative_int,
        help="most candidates offered a round, a seeded sample (default 0: all)",
    )
    p.add_argument(
        "--seed-share",
        type=_float,
        help="the seed records are repeated to be about this share of a student's training "
        f"rows (default {d['seed_share']:g}; 0: every pair once)",
    )
    p.add_argument(
        "--augment",
        choices=["none", "surface"],
        help=f"train on casual forms of the questions too (default {d['augment']})",
    )
    p.add_argument(
        "--reasoning",
        choices=["none", "chain"],
        help="chain: teachers and students answer multi-hop questions through their hops "
        f"(ghost train --reasoning) (default {d['reasoning']})",
    )
    p.add_argument(
        "--group-by-length",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="every training batches records of similar length together (ghost train "
        f"--group-by-length) (default {'on' if d['group_by_length'] else 'off'})",
    )
    p.add_argument(
        "--recipe",
        help="training recipes of every training, as ghost train --recipe takes them "
        "(default: none)",
    )
    p.add_argument(
        "--context-copy",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="every model gets a pointer over its row's last bytes, to copy a span of the "
        f"question (ghost train --context-copy) (default {'on' if d['context_copy'] else 'off'})",
    )
    p.add_argument(
        "--heldout",
        action="append",
        help="a .jsonl of held-out Q&A the leak filter guards (repeatable; a built-in's own "
        "held-out splits are always guarded)",
    )
    p.add_argument("--init-from", help="a trained run directory to be round 1's teacher")
    add_experiment_options(p, d, "output directory (models, pairs, report)")
    p.set_defaults(func=cmd_distill)


def cmd_distill(args) -> int:
    from ghost.distill.config import saved_plan
    from ghost.distill.runner import run_distill

    given = {
        field: getattr(args, dest)
        for dest, field in SETTINGS.items()
        if getattr(args, dest) is not None
    }
    if args.resume:
        known = set(DistillConfig.fields())
        plan = saved_plan(args.out)
        if plan is None:
            raise GhostInputError(f"{args.out}: nothing to resume (no plan.json)")
        settings = {**{k: v for k, v in plan.items() if k in known}, **given}
    else:
        settings = given
    settings["out"] = args.out
    config = DistillConfig(**settings)
    results = run_distill(
        config,
        resume=args.resume,
        stop_after=args.stop_after,
        threads=args.threads,
        quiet=args.quiet,
        command=shlex.join(["ghost", *args.argv]),
    )
    for s in results["summary"]:
        scores = "  ".join(
            f"{name} {v['median']:.1%}" for name, v in s["scores"].items() if v is not None
        )
        print(f"round {s['round']}: {s['pairs']['median']:.0f} pairs  {scores}")
    print(f"report: {args.out}/report.md; model: {args.out}/model")
    if results["stopped"]:
        print(
            f"ghost: {results['stopped']}; continue with: ghost distill --out "
            f"{shlex.quote(args.out)} --resume",
            file=sys.stderr,
        )
        return 130 if results["stopped"].startswith("interrupted") else 0
    return 0
