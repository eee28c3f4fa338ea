"""Publish a finished `ghost bench --plan phase6` run: its report into benchmarks/results/,
its two tables into README.md, and each recipe's row into its method card.

    python benchmarks/publish_phase6.py BENCH_DIR [--name phase6]

Writes BENCH_DIR's results.json into benchmarks/results/NAME/ with its report (report.md,
report.html, PNG plots) and tables rendered by this checkout's code; replaces the text
between the `<!-- phase6:begin -->` and `<!-- phase6:end -->` markers of README.md with the
technique and success tables (and the command and machine behind them); and replaces the
body of the "## Measured effect" section of each card in docs/recipes/ with what the run
measured for that recipe. Nothing here is typed by hand: re-running the plan and this script
updates every number.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ghost.bench import phase6  # noqa: E402
from ghost.bench.report import render_markdown, write_report  # noqa: E402

BEGIN, END = "<!-- phase6:begin -->", "<!-- phase6:end -->"
CARD_SECTION = "## Measured effect"
# The tests whose arms a card reports, in order: every arm that runs the card's recipe alone.
TESTS = ["techniques", "test1", "test3"]


def _precision(machine: dict) -> str:
    """Older records lack the field: precision 'auto' is fp32 without native bf16."""
    native = {"avx512_bf16", "amx_bf16"} & set(machine.get("cpu_flags", []))
    return "bf16 (auto)" if native else "fp32 (auto: no native bf16)"


def machine_line(document: dict) -> str:
    m = document["machine"]
    flags = [f for f in m.get("cpu_flags", []) if re.match(r"avx|amx|fma", f)]
    cpu = f"{m.get('cpu', '?')} {m.get('cpu_family_model', '')}".strip()
    return (
        f"{cpu} ({' '.join(flags) or 'no AVX flags'}), {m.get('threads')} threads, "
        f"{m.get('precision') or _precision(m)}, {m.get('allocator', '?')}, "
        f"torch {m.get('torch', '?')}, commit {str(m.get('commit', '?'))[:10]}"
    )


def readme_block(document: dict, name: str) -> str:
    sizes = next((s for s in document["method"] if s.startswith("Sizes:")), "")
    blocks = [
        (
            "p",
            f"From `{document['command']}` (`benchmarks/results/{name}/report.md`, plots in "
            f"`report.html`, every run's curve in `results.json`). Machine: "
            f"{machine_line(document)}. {sizes}",
        ),
    ]
    for table in document.get("tables", []):
        blocks += [("p", f"**{table['title']}**"), ("table", table["columns"], table["rows"])]
        blocks += [("p", table["note"])] if table.get("note") else []
    return render_markdown(blocks).strip()


def _interval(low, high, fmt: str) -> str:
    return "" if low is None else f" (95% interval {fmt.format(low)}-{fmt.format(high)})"


def card_lines(document: dict, recipe: str, name: str) -> list[str]:
    tests = {t["key"]: t for t in document["tests"]}
    lines = []
    seen_runs = set()
    for key in TESTS:
        test = tests.get(key)
        arm = _alone(test, recipe) if test else None
        if arm is None:
            continue
        runs = tuple(sorted((r["seed"], r["final"]["train_seconds"]) for r in test["runs"]
                            if r["arm"] == arm))  # fmt: skip
        if runs in seen_runs:  # test3 repeats the technique table's byte-lr runs
            continue
        seen_runs.add(runs)
        entry = test["summary"][arm]
        s, loss = entry["speedup"], entry["final_loss"]
        target = test["target"]
        value = entry["target_value"]
        target_text = f"{target['metric']} {'>=' if target['higher_is_better'] else '<='} " + (
            f"{value:.4g}" if value is not None else "?"
        )
        text = f"- {test['name']}, arm `{arm}` ({test['data']}, {test['steps']} steps, seeds "
        text += f"{', '.join(map(str, test['seeds']))}; target {target_text}): "
        if s:
            text += f"speed-up {s['geomean']:.2f}x" + _interval(s["low"], s["high"], "{:.2f}")
            if s.get("censored_pairs"):
                text += f", {s['censored_pairs']} censored pair(s)"
        if loss:
            text += (
                f"; final {entry['loss_metric']} {loss['arm_mean']:.4f} against the baseline's "
                f"{loss['baseline_mean']:.4f} ({loss['relative_change']:+.1%})"
            )
        text += f"; verdict **{entry['verdict']}**."
        lines.append(text)
    if recipe == "grad-checkpoint":
        success = tests.get("success")
        if success:
            ckpt = success["arms"][-1]
            without = success["arms"][-2]  # the same arm without checkpointing
            runs = {(r["arm"], r["seed"]): r["final"] for r in success["runs"]}
            for seed in success["seeds"]:
                b, c = runs[(without, seed)], runs[(ckpt, seed)]
                lines.append(
                    f"- Success runs ({success['data']}, {success['steps']} steps, seed {seed}): "
                    f"`{ckpt}` peak RSS {c['peak_rss_mib']:.0f} MiB against "
                    f"{b['peak_rss_mib']:.0f} MiB for `{without}` "
                    f"({c['peak_rss_mib'] / b['peak_rss_mib']:.0%}), training time "
                    f"{c['train_seconds']:.0f} s against {b['train_seconds']:.0f} s "
                    f"({c['train_seconds'] / b['train_seconds']:.2f}x)."
                )
    if not lines:
        return [
            "Not measured by the Phase 6 plan (no arm of it uses this recipe alone). Measure it "
            "on your data with `ghost bench --data DATA --arms baseline," + recipe + "`."
        ]
    sizes = next((s for s in document["method"] if s.startswith("Sizes:")), "")
    return [
        f"From `{document['command']}` on {machine_line(document)}; the report is "
        f"`benchmarks/results/{name}/report.md`. {sizes}",
        "",
        *lines,
    ]


def _alone(test: dict, recipe: str) -> str | None:
    """The test's arm that runs `recipe` and nothing else (options allowed), if any."""
    for arm, config in test.get("arm_configs", {}).items():
        if list(config.get("recipes", {})) == [recipe]:
            return arm
    return None


def replace_card_section(text: str, body: list[str]) -> str:
    start = text.index(CARD_SECTION) + len(CARD_SECTION)
    following = text.find("\n## ", start)
    rest = "" if following < 0 else text[following:]
    return text[:start] + "\n\n" + "\n".join(body).rstrip() + "\n" + rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--name", default="phase6")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to update")
    args = parser.parse_args(argv)
    results = args.bench_dir / "results.json"
    if not results.is_file():
        print(f"{results}: not found (is {args.bench_dir} a finished bench?)", file=sys.stderr)
        return 2
    document = json.loads(results.read_text(encoding="utf-8"))
    if not document.get("tables"):
        print(f"{results}: no tables: the plan did not finish", file=sys.stderr)
        return 2
    # Tables and report rendered by this checkout's code from the recorded runs.
    document["tables"] = phase6.tables(document)
    root = args.root
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"README.md: the markers {BEGIN} and {END} are missing", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new_readme = f"{head}{BEGIN}\n{readme_block(document, args.name)}\n{END}{tail}"
    cards = {}
    for card in sorted((root / "docs" / "recipes").glob("*.md")):
        card_text = card.read_text(encoding="utf-8")
        if CARD_SECTION in card_text:
            cards[card] = replace_card_section(
                card_text, card_lines(document, card.stem, args.name)
            )
    # Everything was built: now write.
    dest = root / "benchmarks" / "results" / args.name
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "results.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    write_report(document, dest)
    readme.write_text(new_readme, encoding="utf-8")
    for card, card_text in cards.items():
        card.write_text(card_text, encoding="utf-8")
    print(f"published {args.bench_dir} to {dest}, README.md and docs/recipes/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
