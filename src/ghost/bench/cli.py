"""`ghost bench`: its flags and handler, kept beside the harness so that ghost/cli.py only
wires it in."""

from __future__ import annotations

from ghost.errors import GhostInputError


def add_bench_command(sub) -> None:
    """Add `ghost bench` to the `ghost` command's subparsers."""
    from ghost.cli import THREADS_HELP, _float, _nonnegative_int, _positive_int
    from ghost.config import PRESETS

    p = sub.add_parser(
        "bench",
        help="which recipe helps, by how much, how sure: paired runs over seeds, and a report",
    )
    p.add_argument("--data", help="what to train on (as for ghost train)")
    p.add_argument(
        "--arms",
        help="arms to compare, comma-separated: baseline, a recipe, or recipes joined by + "
        "with options (curriculum+skip:threshold=0.8); default baseline",
    )
    p.add_argument("--arms-file", help="a TOML file of [arms.NAME] tables (default: none)")
    p.add_argument("--plan", choices=["phase6"], help="run the original author's Phase 6 test plan")
    p.add_argument(
        "--quick", action="store_true", help="with --plan: the tiny preset, a few minutes"
    )
    p.add_argument(
        "--seeds",
        type=_positive_int,
        help="seeds per arm (default 5; with --plan, the plan's own: 3 full, 2 quick)",
    )
    p.add_argument(
        "--target",
        help="METRIC>=VALUE or METRIC<=VALUE (train_exact_match, val_exact_match, val_loss, "
        "check_loss), or a metric alone for the baseline's final value (default: "
        "train_exact_match>=0.95 for Q&A, val_loss for text)",
    )
    p.add_argument(
        "--steps", type=_positive_int, default=200, help="fixed steps per run (default 200)"
    )
    p.add_argument("--preset", choices=list(PRESETS), help="model preset (default v5-fast)")
    p.add_argument("--batch-size", type=_positive_int, help="rows per step (default 32)")
    p.add_argument("--seq-len", type=_positive_int, help="longest sample (default 256)")
    p.add_argument("--lr", type=_float, help="peak learning rate (default 0.003)")
    p.add_argument("--val-data", help="validation data for the target and final loss")
    p.add_argument(
        "--val-fraction", type=_float, help="hold out this fraction of --data as validation"
    )
    p.add_argument(
        "--heldout", help="splits scored after each run, comma-separated (default: none)"
    )
    p.add_argument("--threads", type=_nonnegative_int, help=THREADS_HELP)
    p.add_argument("--out", required=True, help="output directory (results, report, runs)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from ghost import bench

    if args.plan:
        if args.data or args.arms:
            raise GhostInputError(
                "ghost bench: --plan runs its own data and arms; drop --data/--arms"
            )
        bench.run_plan(args.plan, out=args.out, quick=args.quick, seeds=args.seeds)
        return 0
    if not args.data:
        raise GhostInputError("ghost bench: give --data (and --arms), or --plan phase6")
    settings = {
        k: v
        for k, v in {
            "preset": args.preset,
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "lr": args.lr,
            "val_data": args.val_data,
            "val_fraction": args.val_fraction,
            "threads": args.threads,
        }.items()
        if v is not None
    }
    bench.bench(
        data=args.data,
        arms=args.arms or "baseline",
        arms_file=args.arms_file,
        out=args.out,
        seeds=args.seeds or 5,
        target=args.target,
        steps=args.steps,
        heldout=args.heldout.split(",") if args.heldout else None,
        **settings,
    )
    return 0
