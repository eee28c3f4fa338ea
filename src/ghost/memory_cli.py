"""`ghost memory`: write, list and remove the facts of a run's memory bank (no training).
Its flags and handler live here, out of ghost/cli.py (which only wires them in) and out of
the ghost.model package (whose import loads torch, which `ghost --help` must not)."""

from __future__ import annotations

import sys
from pathlib import Path

from ghost.errors import GhostInputError


def add_memory_command(sub) -> None:
    """Add `ghost memory add|list|remove|clear` to the `ghost` command's subparsers."""
    from ghost.cli import THREADS_HELP, _nonnegative_int, _Parser, _positive_int

    p = sub.add_parser(
        "memory", help="write, list and remove the facts in a run's memory bank (no training)"
    )
    memory_sub = p.add_subparsers(dest="memory_command", metavar="ACTION", parser_class=_Parser)
    q = memory_sub.add_parser(
        "add", help="write facts: TEXT, a .txt file (one per line), .jsonl or NAME:SPLIT"
    )
    q.add_argument("run_dir", help="a run directory (from ghost train --out)")
    q.add_argument("items", nargs="+", metavar="FACT_OR_FILE", help="fact texts or files")
    q.add_argument(
        "--replace",
        action="store_true",
        help="drop older entries about the same thing (the text up to the last linking word "
        "before the value); default: keep both and say so",
    )
    q.add_argument("--threads", type=_nonnegative_int, default=0, help=THREADS_HELP)
    q.set_defaults(func=cmd_memory)
    q = memory_sub.add_parser("list", help="print every entry: id and text")
    q.add_argument("run_dir", help="a run directory")
    q.set_defaults(func=cmd_memory)
    q = memory_sub.add_parser("remove", help="remove entries by id (see list)")
    q.add_argument("run_dir", help="a run directory")
    q.add_argument("ids", nargs="+", type=_positive_int, metavar="ID", help="entry ids")
    q.add_argument("--threads", type=_nonnegative_int, default=0, help=THREADS_HELP)
    q.set_defaults(func=cmd_memory)
    q = memory_sub.add_parser("clear", help="remove every entry (and the bank's files)")
    q.add_argument("run_dir", help="a run directory")
    q.set_defaults(func=cmd_memory)


def cmd_memory(args) -> int:
    from ghost.model import io

    if args.memory_command == "clear":  # reads no bank file: it works on a corrupt bank too
        io.read_run_config(args.run_dir)
        path = Path(args.run_dir) / io.MEMORY_NAME
        try:
            count = len(io.read_memory_text(path)[0]) if path.is_file() else 0
        except GhostInputError:
            count = None
        for name in (io.MEMORY_NAME, io.MEMORY_VECTORS_NAME):
            (Path(args.run_dir) / name).unlink(missing_ok=True)
        print(f"cleared {'the' if count is None else count} {'entry' if count == 1 else 'entries'}")
        return 0
    if args.memory_command == "list":
        io.read_run_config(args.run_dir)
        path = Path(args.run_dir) / io.MEMORY_NAME
        ids, texts = io.read_memory_text(path) if path.is_file() else ([], [])
        for entry_id, text in zip(ids, texts, strict=True):
            print(f"{entry_id:>6}  {text}")
        print(f"{len(ids)} {'entry' if len(ids) == 1 else 'entries'}", file=sys.stderr)
        return 0

    from ghost.data.records import read_facts
    from ghost.model.ghost import GhostModel
    from ghost.model.memory_text import fact_key
    from ghost.runtime import configure

    configure(args.threads, seed=0)
    model = GhostModel.from_pretrained(args.run_dir)
    memory = model.memory
    if args.memory_command == "remove":
        ids = sorted(set(args.ids))
        memory.remove(ids)
        io.save_memory(model, Path(args.run_dir))
        print(f"removed {len(ids)}; the bank holds {len(memory)}")
        return 0
    texts = list(dict.fromkeys(fact for item in args.items for fact in read_facts(item)))
    before = set(memory.ids)
    replaced, pending = [], []
    by_key: dict[str, list] = {}  # what existing entries are about (fact_key), computed once
    for entry in memory.entries():
        by_key.setdefault(fact_key(entry.text), []).append(entry)
    for text in texts:
        key = fact_key(text)
        old_entries = [e for e in by_key.get(key, []) if e.text != text] if key else []
        earlier = [t for t in pending if t != text and fact_key(t) == key] if key else []
        if args.replace:
            memory.remove([e.id for e in old_entries])
            replaced += old_entries
            by_key[key] = [e for e in by_key.get(key, []) if e not in old_entries]
            pending = [t for t in pending if t not in earlier]  # the last of the new ones wins
        else:
            for clash in [*(repr(e.text) + f" (entry {e.id})" for e in old_entries),
                          *map(repr, earlier)]:  # fmt: skip
                print(
                    f"note: {clash} and {text!r} say different things about the same subject; "
                    "both are kept and the model may read either (--replace keeps the new one)",
                    file=sys.stderr,
                )
        pending.append(text)
    memory.write(pending)  # one encoding pass for all of them
    added = [e for e in memory.entries() if e.id not in before]
    io.save_memory(model, Path(args.run_dir))
    for old in replaced:
        print(f"replaced entry {old.id}: {old.text!r}")
    span = (
        f" (ids {added[0].id}-{added[-1].id})"
        if len(added) > 1
        else (f" (id {added[0].id})" if added else "")
    )
    print(
        f"added {len(added)} {'entry' if len(added) == 1 else 'entries'}{span}; "
        f"the bank holds {len(memory)}"
    )
    return 0
