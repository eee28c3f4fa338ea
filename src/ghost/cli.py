"""The `ghost` command: parse -> config -> one library call per subcommand.

Exit codes: 0 success; 2 bad usage or bad input (one line on stderr, no traceback);
1 an internal failure (one line; set GHOST_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from ghost.errors import GhostInputError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message):
        where = f"{self.prog}: " if self.prog != "ghost" else ""  # "ghost: error:" is ours
        raise GhostInputError(f"{where}{message} (see --help)")


THREADS_HELP = "CPU threads (default 0: all cores)"  # every subcommand's --threads


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


# Subcommands -----------------------------------------------------------------------------


def config_defaults(config_class) -> dict:
    """{field: default} of a settings dataclass, for help texts that show each default."""
    import dataclasses

    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(config_class)
    }


def add_experiment_options(p, defaults: dict, out_help: str) -> None:
    """The flags of a multi-run experiment command (`ghost continual`, `ghost distill`): the
    shape of each training, threads, the output directory, resume and stop, quiet."""
    p.add_argument(
        "--batch-size", type=_positive_int, help=f"rows per step (default {defaults['batch_size']})"
    )
    p.add_argument(
        "--seq-len",
        type=_positive_int,
        help=f"longest sample in bytes (default {defaults['seq_len']})",
    )
    p.add_argument("--lr", type=_float, help=f"peak learning rate (default {defaults['lr']:g})")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        help="auto (default): bf16 autocast where the CPU has native bf16 matmul, else fp32",
    )
    p.add_argument("--threads", type=_nonnegative_int, default=0, help=THREADS_HELP)
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out with its saved settings"
    )
    p.add_argument(
        "--stop-after",
        type=_positive_int,
        help="stop after N trainings (continue later with --resume; default: run to the end)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")


def cmd_info(args) -> int:
    from ghost.launcher import allocator_in_use
    from ghost.model.ghost import GhostModel
    from ghost.model.mamba import selective_scan
    from ghost.model.report import describe_model
    from ghost.runtime import resolve_precision

    model = GhostModel.from_preset(args.preset, context_copy=args.context_copy)
    print(describe_model(model, args.seq_len))
    status = getattr(sys.modules[selective_scan.__module__], "kernel_status", None)
    print(f"scan: {status() if status else 'PyTorch reference'}")
    why = {
        "bf16": "this CPU multiplies bf16 natively: AVX-512 BF16 or AMX",
        "fp32": "no native bf16 matmul on this CPU",
    }
    auto = resolve_precision("auto")  # what `ghost train` runs in by default
    print(f"precision auto: {auto} ({why[auto]})")
    print(f"allocator: {allocator_in_use()}")
    return 0


def cmd_eval(args) -> int:
    from ghost.data.records import load_data
    from ghost.eval.metrics import evaluate
    from ghost.runtime import configure

    configure(args.threads, seed=0)
    model = _load_with_memory(args)
    dataset = load_data(args.data)
    summary, predictions = evaluate(model, dataset)
    if "exact_match" in summary:
        print(
            f"{summary['data']}: exact match {summary['exact_match']:.1%} "
            f"({round(summary['exact_match'] * summary['n'])}/{summary['n']})"
        )
        for kind, row in summary["by_kind"].items():
            print(f"  {kind:<12} {row['exact_match']:7.1%}  n={row['n']}")
    else:
        print(
            f"{summary['data']}: {summary['bits_per_byte']:.4f} bits per byte "
            f"over {summary['bytes']} bytes"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.predictions:
        lines = "".join(
            json.dumps(
                {k: p[k] for k in ("question", "reference", "prediction", "correct")},
                ensure_ascii=False,
            )
            + "\n"
            for p in predictions
        )
        Path(args.predictions).write_text(lines, encoding="utf-8")
    return 0


def _load_with_memory(args):
    """The run's model, plus the entries of --memory FILE for this call only (not saved)."""
    from ghost.data.records import read_facts
    from ghost.model.ghost import GhostModel

    model = GhostModel.from_pretrained(args.run_dir)
    if getattr(args, "memory", None):
        model.memory.write(read_facts(args.memory, must_be_data=True))
    return model


def cmd_generate(args) -> int:
    from ghost.runtime import configure

    configure(args.threads, seed=args.seed)
    model = _load_with_memory(args)
    out = model.generate(
        args.prompt.encode("utf-8"),
        max_bytes=args.max_bytes,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop=args.stop or None,
        fim_suffix=args.fim_suffix.encode("utf-8") if args.fim_suffix is not None else None,
    )
    sys.stdout.write(out.decode("utf-8", errors="replace") + "\n")
    return 0


def cmd_ask(args) -> int:
    from ghost.data.template import QATemplate
    from ghost.model.generate import generate
    from ghost.runtime import configure

    configure(args.threads, seed=0)
    model = _load_with_memory(args)
    template = QATemplate.from_config(model.config)
    entries = model.memory.entries()

    def answer(question: str) -> str:
        if template.end_of_answer in question:
            raise GhostInputError("ghost ask: the question contains the end-of-answer marker byte")
        tracing = model.trace_memory() if args.show_memory else contextlib.nullcontext({})
        with tracing as reads:
            (out,), (confidence,) = generate(
                model,
                [template.prompt(question)],
                max_bytes=args.max_bytes,
                stop_bytes=bytes([template.marker]),
                return_confidence=True,
            )
        text = template.clean_answer(out)
        text = f"{text}\t{confidence:.3f}" if args.confidence else text
        if args.show_hops:
            hops = template.split_steps(template.written(out))[0]
            lines = "".join(f"\n  hop: {' '.join(h.split())}" for h in hops)
            text += lines or "\n  (answered directly, no hops)"
        if args.show_memory:
            top = sorted(reads.items(), key=lambda item: -item[1])[:3]
            text += (
                "".join(
                    f"\n  read {share:5.1%}  [{entries[i].id}] {entries[i].text}"
                    for i, share in top
                )
                or f"\n  ({'the memory bank is empty' if not entries else 'nothing was read'})"
            )
        return text

    if args.question is not None:
        print(answer(args.question))
        return 0
    # No question: answer each line of standard input, with the model loaded once.
    for line in sys.stdin:
        question = line.rstrip("\r\n")
        if question.strip():
            print(answer(question), flush=True)
    return 0


def cmd_data_list(args) -> int:
    from ghost.data import builtin

    print(f"{'name':<10} {'records':>8}  splits")
    for info in builtin.list_datasets():
        d = builtin.describe(info.name)
        counts = ", ".join(f"{s}={n}" for s, n in d["splits"].items())
        print(f"{info.name:<10} {sum(d['splits'].values()):>8}  {counts}")
        print(f"{'':<10} {'':>8}  {info.purpose}")
    return 0


def cmd_data_show(args) -> int:
    from ghost.data.records import load_data

    spec = f"{args.name}:{args.split}" if args.split else args.name
    dataset = load_data(spec)
    for record in dataset.records[: args.n]:
        print(json.dumps(record, ensure_ascii=False))
    return 0


# Parser ----------------------------------------------------------------------------------


def _add_memory_flag(p: argparse.ArgumentParser) -> None:
    """--memory FILE, shared by eval, generate and ask."""
    p.add_argument(
        "--memory",
        metavar="FILE",
        help="add these facts to the run's memory bank for this call only (a .txt file of one "
        'fact per line, a .jsonl of {"text"} records, or NAME:SPLIT; default: none)',
    )


def build_parser() -> argparse.ArgumentParser:
    from ghost.config import PRESETS

    parser = _Parser(
        prog="ghost",
        description="Train, evaluate and use small byte-level "
        "hybrid Mamba language models on a CPU.",
    )
    from ghost import __version__

    parser.add_argument("--version", action="version", version=f"ghost {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", help="parameters, layer layout and FLOPs per byte of a preset")
    p.add_argument(
        "--preset", default="v5-fast", choices=list(PRESETS), help="model preset (default v5-fast)"
    )
    p.add_argument(
        "--seq-len",
        type=_positive_int,
        default=256,
        help="context for the FLOPs count (default 256)",
    )
    p.add_argument(
        "--context-copy", action="store_true", help="with the context copy head (ghost train's)"
    )
    p.set_defaults(func=cmd_info)

    from ghost.train_cli import add_train_command

    add_train_command(sub)

    p = sub.add_parser("eval", help="exact match (Q&A) or bits per byte (text) of a run")
    p.add_argument("run_dir", help="a run directory (from ghost train --out)")
    p.add_argument("--data", required=True, help="built-in NAME[:SPLIT] or a file path")
    p.add_argument("--json", help="write the summary as JSON to this file (default: none)")
    p.add_argument(
        "--predictions", help="write one JSON line per question to this file (default: none)"
    )
    _add_memory_flag(p)
    p.add_argument("--threads", type=_nonnegative_int, default=0, help=THREADS_HELP)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "generate",
        help="continue a prompt byte by byte, up to --max-bytes, --stop or the end marker",
    )
    p.add_argument("run_dir", help="a run directory (from ghost train --out)")
    p.add_argument("prompt", help="the text to continue")
    p.add_argument(
        "--max-bytes", type=_positive_int, default=128, help="most bytes to generate (default 128)"
    )
    p.add_argument(
        "--temperature", type=_float, default=0.0, help="sampling temperature (default 0: greedy)"
    )
    p.add_argument(
        "--top-k",
        type=_nonnegative_int,
        default=0,
        help="sample from the k likeliest bytes (default 0: all)",
    )
    p.add_argument(
        "--top-p", type=_float, default=1.0, help="nucleus sampling mass (default 1.0: all)"
    )
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="sampling seed (default 0)")
    p.add_argument("--stop", help="stop when this string is generated (default: none)")
    p.add_argument(
        "--fim-suffix",
        metavar="TEXT",
        help="fill the hole between the prompt (the prefix) and TEXT; needs a model trained "
        "with --recipe fim",
    )
    p.add_argument("--threads", type=_nonnegative_int, default=0, help=THREADS_HELP)
    _add_memory_flag(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "ask",
        help="answer a question with a trained Q&A model (no question: one per line of stdin)",
    )
    p.add_argument("run_dir", help="a run directory (from ghost train --out)")
    p.add_argument(
        "question",
        nargs="?",
        help="the question; without it, questions are read line by line from standard input "
        "and answered one per line, the model loaded once",
    )
    p.add_argument(
        "--max-bytes", type=_positive_int, default=256, help="longest answer (default 256)"
    )
    p.add_argument(
        "--confidence",
        action="store_true",
        help="print the answer's mean byte probability after a tab: near 1 for a recalled "
        "answer, low for a guess",
    )
    _add_memory_flag(p)
    p.add_argument(
        "--show-memory",
        action="store_true",
        help="after each answer, the 3 bank entries the memory layers attended to most",
    )
    p.add_argument(
        "--show-hops",
        action="store_true",
        help="after each answer, the hop questions and answers it wrote first (a model "
        "trained with --reasoning chain); off by default",
    )
    p.add_argument("--threads", type=_nonnegative_int, default=0, help=THREADS_HELP)
    p.set_defaults(func=cmd_ask)

    from ghost.bench.cli import add_bench_command
    from ghost.continual.cli import add_continual_command
    from ghost.distill.cli import add_distill_command
    from ghost.memory_cli import add_memory_command

    add_bench_command(sub)
    add_memory_command(sub)
    add_continual_command(sub)
    add_distill_command(sub)

    p = sub.add_parser("data", help="the built-in datasets")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    q = data_sub.add_parser("list", help="name, records, splits and purpose of each dataset")
    q.set_defaults(func=cmd_data_list)
    q = data_sub.add_parser("show", help="print records of a dataset")
    q.add_argument("name", help="a built-in dataset (see ghost data list)")
    q.add_argument("--split", help="which split (default train)")
    q.add_argument("-n", type=_positive_int, default=5, help="how many records")
    q.set_defaults(func=cmd_data_show)
    return parser


def _one_line(message: str) -> str:
    """The message with line breaks and control characters escaped: errors are one line,
    even when they quote a user's argument or file name."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def main(argv: list[str] | None = None) -> int:
    from ghost.launcher import ensure_fast_allocator

    if argv is None:
        ensure_fast_allocator()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, unknown = parser.parse_known_args(argv)
        if args.command == "ask" and args.question is None and len(unknown) == 1:
            if not unknown[0].startswith("-"):  # `ghost ask RUN --confidence "question"`
                args.question, unknown = unknown[0], []
        if unknown:  # argparse would name only "ghost"; say which subcommand refused them
            where = " ".join(
                x
                for x in (
                    "ghost",
                    args.command,
                    getattr(args, "data_command", None) or getattr(args, "memory_command", None),
                )
                if x
            )
            raise GhostInputError(
                f"{where}: unrecognized arguments: {' '.join(unknown)} (see --help)"
            )
        args.argv = argv  # the command as typed, for the resume hint after Ctrl-C
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return args.func(args)
    except GhostInputError as e:
        print(f"ghost: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ghost: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`ghost info | head`): stop quietly, as Unix tools do. Point
        # stdout at devnull so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe
    except Exception as e:  # noqa: BLE001 - the top level turns any failure into one line
        if os.environ.get("GHOST_DEBUG"):
            raise
        print(
            f"ghost: internal error: {type(e).__name__}: {_one_line(str(e))} "
            "(GHOST_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
