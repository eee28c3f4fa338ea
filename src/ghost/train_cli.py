"""`ghost train`: its flags and handler. They live here, out of ghost/cli.py (which only wires
them in, as it does `ghost memory`'s), so that neither file grows past what one reads at once;
nothing here imports torch until a training starts."""

from __future__ import annotations

import argparse
import shlex
import sys

from ghost.errors import GhostInputError


def add_train_command(sub) -> None:
    """Add `ghost train` to the `ghost` command's subparsers."""
    from ghost.cli import THREADS_HELP, _float, _nonnegative_int, _positive_int
    from ghost.config import PRESETS

    p = sub.add_parser("train", help="train a model on a built-in dataset or a .jsonl/.txt file")
    p.add_argument(
        "--data",
        help="built-in NAME[:SPLIT] (see `ghost data list`) or a file path; several, "
        "comma-separated, are mixed (NAME@WEIGHT sets each one's share of the rows)",
    )
    p.add_argument("--preset", choices=list(PRESETS), help="model preset (default v5-fast)")
    p.add_argument(
        "--steps",
        help="optimiser steps, or 'auto' (default): until training exact "
        "match is 100%%, the loss stops improving, or the budget ends",
    )
    p.add_argument("--batch-size", type=_positive_int, help="rows per step (default 32)")
    p.add_argument("--seq-len", type=_positive_int, help="longest sample in bytes (default 256)")
    p.add_argument("--lr", type=_float, help="peak learning rate (default 0.003)")
    from ghost.train.recipes import REGISTRY

    p.add_argument(
        "--recipe",
        help="training recipes, comma-separated, each NAME or NAME:option=value[:...] "
        "(docs/recipes/NAME.md): " + "; ".join(f"{n}: {h}" for n, (_, _, h) in REGISTRY.items()),
    )
    p.add_argument(
        "--init-from",
        metavar="RUN_DIR",
        help="start from this run's weights and model config, with a fresh optimiser",
    )
    p.add_argument(
        "--val-data",
        help="validation data (NAME[:SPLIT] or a path): checks report its loss and exact match",
    )
    p.add_argument(
        "--val-fraction",
        type=_float,
        help="hold out this fraction of the training records as validation data",
    )
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        help="auto (default): bf16 autocast where the CPU has native bf16 matmul (AVX-512 BF16 "
        "or AMX), else fp32",
    )
    p.add_argument(
        "--grad-checkpoint",
        action="store_true",
        help="recompute each layer's activations in the backward pass (less memory, slower)",
    )
    p.add_argument(
        "--memory-training",
        choices=["auto", "on", "off"],
        help="teach the model to read its fact memory: auto (default: when the Q&A records "
        "carry facts), on, or off (docs/memory.md)",
    )
    p.add_argument(
        "--memory-steps",
        type=_nonnegative_int,
        help="steps of the memory stage that follows the weights' training, where only the "
        "memory's parameters train (default 500); 0 trains the memory jointly with every "
        "weight from the first step",
    )
    p.add_argument(
        "--memory-stage-trains",
        choices=["memory", "all"],
        help="what the memory stage trains: memory (default: the memory's parameters only, "
        "the other weights keep what they learnt) or all (every weight)",
    )
    p.add_argument(
        "--memory-stage-own-rows",
        type=_float,
        metavar="SHARE",
        help="share (0 to 1) of the data rows reading their own facts that a memory-only "
        "stage keeps (default 0: ~1.1x a plain step; 1: ~1.7x, the default before "
        "2026-12-05)",
    )
    p.add_argument(
        "--augment",
        choices=["none", "surface"],
        help="surface (default): half the training questions typed casually (lower case, no "
        "final '?'), so casual questions are answered too; none: as written",
    )
    p.add_argument(
        "--reasoning",
        choices=["none", "chain"],
        help="chain: multi-hop questions whose hops the data also asks are answered through "
        "their hops (each hop asked and answered first); none (default): answers as written",
    )
    p.add_argument(
        "--group-by-length",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="batch Q&A records of similar length together (less padding, faster epochs); "
        "off by default",
    )
    p.add_argument(
        "--context-copy",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a pointer over the row's last 128 bytes mixed into the output, so the model can "
        "copy a span it has read, e.g. a question's entity into a hop (off by default; "
        "docs/distill.md)",
    )
    p.add_argument(
        "--max-minutes",
        type=_float,
        help="time budget of the whole run, memory stage included (default 40)",
    )
    p.add_argument("--eval-every", type=_nonnegative_int, help="steps between progress checks")
    p.add_argument(
        "--save-every",
        type=_nonnegative_int,
        help="steps between checkpoints (default 0: at each progress check)",
    )
    p.add_argument(
        "--keep-checkpoints",
        type=_positive_int,
        help="how many checkpoints to keep under RUN_DIR/checkpoints (default 1; each holds the "
        "weights and the optimiser state, ~71 MB for v5-fast)",
    )
    p.add_argument(
        "--seed", type=_nonnegative_int, help="seed of weights and data order (default 0)"
    )
    p.add_argument("--threads", type=_nonnegative_int, help=THREADS_HELP)
    p.add_argument("--out", help="run directory (default runs/ghost)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--config", help="a TOML (or YAML) file of settings; flags override it")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from ghost.cli import _one_line
    from ghost.config import GhostConfig, TrainConfig, load_config_file
    from ghost.train.distributed import is_main_process
    from ghost.train.loop import TrainingDiverged, train

    file_settings = load_config_file(args.config) if args.config else {"model": {}, "train": {}}
    settings = dict(file_settings["train"])
    flags = {
        "data": args.data,
        "preset": args.preset,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "seed": args.seed,
        "threads": args.threads,
        "out": args.out,
        "lr": args.lr,
        "precision": args.precision,
        "grad_checkpoint": True if args.grad_checkpoint else None,
        "memory_training": args.memory_training,
        "memory_steps": args.memory_steps,
        "memory_stage_trains": args.memory_stage_trains,
        "memory_stage_own_rows": args.memory_stage_own_rows,
        "augment": args.augment,
        "reasoning": args.reasoning,
        "group_by_length": args.group_by_length,
        "max_minutes": args.max_minutes,
        "eval_every": args.eval_every,
        "save_every": args.save_every,
        "keep_checkpoints": args.keep_checkpoints,
        "init_from": args.init_from,
        "val_data": args.val_data,
        "val_fraction": args.val_fraction,
    }
    settings.update({k: v for k, v in flags.items() if v is not None})
    if args.recipe is not None:  # the flag names the recipes; the file's options for them stay
        from ghost.config import parse_recipes

        from_file = parse_recipes(settings.get("recipes"))
        settings["recipes"] = {
            name: {**from_file.get(name, {}), **options}
            for name, options in parse_recipes(args.recipe).items()
        }
    settings["resume"] = args.resume or settings.get("resume", False)
    settings["quiet"] = args.quiet
    if "data" not in settings:
        raise GhostInputError("ghost train: --data is required (a built-in name or a file path)")
    try:
        cfg = TrainConfig(**settings)
    except (TypeError, ValueError) as e:  # a config file's value of the wrong type
        if isinstance(e, GhostInputError):
            raise
        where = args.config or "ghost train"
        raise GhostInputError(f"{where}: bad training setting ({e})") from None
    model_settings = dict(file_settings["model"])
    if args.context_copy is not None:
        if cfg.resume or cfg.init_from:
            raise GhostInputError(
                "ghost train: --context-copy shapes a new model; --resume and --init-from "
                "keep their run's"
            )
        model_settings["context_copy"] = args.context_copy
    model_config = None
    if not cfg.resume and not cfg.init_from:
        try:
            model_config = GhostConfig.from_preset(cfg.preset, **model_settings)
        except (TypeError, ValueError) as e:
            if isinstance(e, GhostInputError):
                raise
            raise GhostInputError(f"model config: {e}") from None
    try:
        result = train(cfg, model_config=model_config)
    except TrainingDiverged as e:  # not bad input, but not a bug either: one line, exit 1
        print(f"ghost: error: {_one_line(str(e))}", file=sys.stderr)
        return 1
    if not is_main_process():  # under torchrun, rank 0 speaks for the run
        return 130 if result.interrupted else 0
    if result.interrupted:
        command = ["ghost", *args.argv] + ([] if "--resume" in args.argv else ["--resume"])
        print(
            f"ghost: interrupted at step {result.steps}; resume with: {shlex.join(command)}",
            file=sys.stderr,
        )
        return 130
    print(f"stopped after {result.steps} steps ({result.seconds:.1f} s): {result.stop_reason}")
    if result.nonfinite_steps:
        print(f"skipped {result.nonfinite_steps} steps whose loss or gradients were NaN/inf")
    if "train_exact_match" in result.metrics:
        print(
            "training exact match (teacher-forced check): "
            f"{result.metrics['train_exact_match']:.1%}"
        )
    print(f"run saved to {result.run_dir}")
    return 0
