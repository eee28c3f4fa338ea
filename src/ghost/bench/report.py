"""The report of `ghost bench`: report.md, a self-contained report.html and PNG plots.

    write_report(results, out_dir)  -> {"markdown": .../report.md, "html": .../report.html,
                                        "<test>-loss": .../<test>-loss.png, ...}

Both documents are rendered from one list of blocks (heading, paragraph, code, list, table,
image), so they say the same thing. The HTML embeds its PNGs as base64 and needs no other file.
Plots need matplotlib (the "plots" extra); without it both documents say so and keep the tables.
Per test: loss against training seconds per arm (median over seeds, min-max band), exact match
against steps (when the curves have it), peak memory per arm, and the paired speed-ups.

The results dict. Times are training seconds: evaluation and checkpoint writes excluded.

    {"title": str, "command": str,
     "machine": {"cpu": str, "cpu_flags": [str], "threads": int, "allocator": str,
                 "torch": str, "commit": str, ...},           every key is listed
     "method": [str, ...],                                    sentences of the Method section
     "tests": [{"name": str, "question": str, "data": str,   one section per test
                "target": {"metric": str, "value": float | None, "higher_is_better": bool},
                "arms": [str, ...],                           the baseline first
                "runs": [{"arm": str, "seed": int,
                          "curve": [{"step", "train_seconds", "val_loss"?, "check_loss"?,
                                     "val_exact_match"?, "train_exact_match"?}, ...],
                          "final": {"val_loss"?, "check_loss"?, "peak_rss_mib",
                                    "train_seconds", "steps",
                                    "heldout"?: {split: float | {"exact_match" | "bits_per_byte":
                                                                float, "n": int}}}}],
                "summary"?: {arm: {...}}}],   ghost.bench.stats.summarize_test; made here if absent
     "tables"?: [{"title": str, "columns": [str], "rows": [[str, ...]], "note"?: str}]}

A target value of None means the baseline's median final value (stats.resolve_target).
"""

from __future__ import annotations

import base64
import html
import re
import statistics
from pathlib import Path

import numpy as np

from ghost.bench.stats import MARGIN, summarize_test

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError:  # the "plots" extra; the report keeps its tables without it
    Figure = None

NO_PLOTS = "Plots: not drawn, matplotlib is not installed (`pip install 'ghost-lm[plots]'`)."
VERDICT_RULE = (
    "Verdict: USE when the whole 95% interval of the speed-up lies above 1 and the arm's mean "
    f"final loss is at most {MARGIN:.0%} above the baseline's; SKIP when the interval lies "
    f"below 1 or the final loss is more than {MARGIN:.0%} worse; NEUTRAL otherwise (also with "
    "a single seed). Bounds: at_most / at_least mark a pair where only the arm / only the "
    "baseline never reached the target within its steps; unknown, neither did."
)


def write_report(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.md, report.html and the PNG plots into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    blocks = _head_blocks(results)
    slugs: set[str] = set()
    tests = [(test, test.get("summary") or summarize_test(test)) for test in results["tests"]]
    blocks += _overview_blocks(tests)
    for i, (test, summary) in enumerate(tests, start=1):
        slug = re.sub(r"[^a-z0-9]+", "-", test["name"].lower()).strip("-") or "test"
        slug = f"{slug}-{i}" if slug in slugs else slug
        slugs.add(slug)
        plots = _draw_plots(test, summary, out_dir, slug)
        written.update({f"{slug}-{kind}": path for kind, path in plots.items()})
        blocks += _test_blocks(test, summary, plots)
    for table in results.get("tables", []):
        blocks += [("h", 2, table["title"]), ("table", table["columns"], table["rows"])]
        blocks += [("p", table["note"])] if table.get("note") else []
    written["markdown"] = out_dir / "report.md"
    written["markdown"].write_text(render_markdown(blocks), encoding="utf-8")
    written["html"] = out_dir / "report.html"
    written["html"].write_text(render_html(blocks, results["title"], out_dir), encoding="utf-8")
    return written


# --- Content -------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _spread(values: list[float], digits: int = 1) -> str:
    """median (min-max) of the seeds' values."""
    if not values:
        return "-"
    median = statistics.median(values)
    if min(values) == max(values):
        return _num(median, digits)
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _speedup_cell(speedup: dict | None, is_baseline: bool = False) -> str:
    if is_baseline:
        return "1 (baseline)"
    return "-" if speedup is None else f"{speedup['geomean']:.2f}x"


def _interval(speedup: dict | None) -> str:
    if speedup is None or speedup["low"] is None:
        return "-"
    return f"{speedup['low']:.2f}-{speedup['high']:.2f}"


def _head_blocks(results: dict) -> list[tuple]:
    machine = [
        [key, " ".join(map(str, value)) if isinstance(value, list) else str(value)]
        for key, value in results["machine"].items()
    ]
    blocks = [
        ("h", 1, results["title"]),
        ("pre", results["command"]),
        ("h", 2, "Machine"),
        ("table", ["", "value"], machine),
        ("h", 2, "Method"),
        ("list", [*results.get("method", []), VERDICT_RULE]),
    ]
    return blocks + ([("p", NO_PLOTS)] if Figure is None else [])


def _overview_blocks(tests: list[tuple[dict, dict]]) -> list[tuple]:
    rows = []
    for test, summary in tests:
        for arm in test["arms"][1:]:
            entry = summary[arm]
            loss = entry["final_loss"]
            rows.append(
                [
                    test["name"],
                    arm,
                    _speedup_cell(entry["speedup"]),
                    _interval(entry["speedup"]),
                    "-" if loss is None else f"{loss['relative_change']:+.1%}",
                    entry["verdict"] or "-",
                ]
            )
    columns = ["test", "arm", "speed-up", "95% interval", "final loss change", "verdict"]
    return [("h", 2, "Results"), ("table", columns, rows)]


def _target_text(test: dict, summary: dict) -> str:
    target = test["target"]
    value = summary[test["arms"][0]]["target_value"]
    given = "" if target["value"] is not None else " (the baseline's median final value)"
    return f"`{target['metric']}` {'>=' if target['higher_is_better'] else '<='} {value:g}{given}"


def _runs_of(test: dict, arm: str) -> list[dict]:
    return sorted((run for run in test["runs"] if run["arm"] == arm), key=lambda r: r["seed"])


def _test_blocks(test: dict, summary: dict, plots: dict[str, Path]) -> list[tuple]:
    baseline = test["arms"][0]
    loss_metric = summary[baseline]["loss_metric"]
    seeds = ", ".join(str(s) for s in sorted({run["seed"] for run in test["runs"]}))
    setting = f"Data: `{test['data']}`. Target: {_target_text(test, summary)}. Seeds: {seeds}."
    blocks = [
        ("h", 2, test["name"]),
        ("p", f"**Question.** {test['question']}"),
        ("p", f"{setting} Baseline: {baseline}."),
        ("h", 3, "Speed-up to target"),
    ]
    rows = []
    for arm in test["arms"]:
        entry, loss = summary[arm], summary[arm]["final_loss"]
        times = entry["time_to_target"]
        reached = [t["seconds"] for t in times if not t["censored"]]
        rows.append(
            [
                arm,
                f"{len(reached)}/{len(times)}",
                _spread(reached),
                _speedup_cell(entry["speedup"], arm == baseline),
                _interval(entry["speedup"]),
                "-" if entry["speedup"] is None else str(entry["speedup"]["censored_pairs"]),
                "-" if loss is None else f"{loss['relative_change']:+.1%}",
                entry["verdict"] or "-",
            ]
        )
    columns = [
        "arm",
        "reached target",
        "seconds to target, runs that reached it",
        "speed-up",
        "95% interval",
        "censored pairs",
        f"final {loss_metric or 'loss'} change",
        "verdict",
    ]
    blocks.append(("table", columns, rows))

    rows = []
    for arm in test["arms"]:
        entry = summary[arm]
        paired = dict(zip(entry["paired_seeds"], _pair_cells(entry["speedup"]), strict=True))
        for t in entry["time_to_target"]:
            ratio, bound = paired.get(t["seed"], ("-", "-"))
            at = f"{t['seconds']:.1f}" + (" (censored)" if t["censored"] else "")
            rows.append([arm, str(t["seed"]), at, str(t["steps"]), ratio, bound])
    blocks += [
        ("h", 3, "Per seed"),
        ("table", ["arm", "seed", "seconds to target", "steps", "speed-up", "bound"], rows),
        ("h", 3, "End of training"),
        ("table", *_final_table(test, loss_metric)),
        ("p", "Cells: median (min-max) over seeds."),
    ]
    if plots:
        blocks.append(("p", "Curves: median over seeds, band from min to max."))
    blocks += [("img", path, f"{test['name']}: {kind}") for kind, path in plots.items()]
    return blocks


def _pair_cells(speedup: dict | None) -> list[tuple[str, str]]:
    if speedup is None:
        return []
    return [(f"{r:.2f}", b) for r, b in zip(speedup["ratios"], speedup["bounds"], strict=True)]


def _heldout_score(score) -> float | None:
    """A held-out split's score: a bare exact match, or the worker's {"exact_match" | ...}."""
    if isinstance(score, dict):
        return score.get("exact_match", score.get("bits_per_byte"))
    return score


def _final_table(test: dict, loss_metric: str | None) -> tuple[list[str], list[list[str]]]:
    splits = sorted({s for run in test["runs"] for s in run["final"].get("heldout", {})})
    columns = [
        "arm",
        f"final {loss_metric or 'loss'} (median, min-max)",
        "peak RSS MiB",
        "train seconds",
        "steps",
        *(f"held-out {split}" for split in splits),
    ]
    rows = []
    for arm in test["arms"]:
        finals = [run["final"] for run in _runs_of(test, arm)]
        losses = [f[loss_metric] for f in finals] if loss_metric else []
        row = [
            arm,
            _spread(losses, 3),
            _spread([f["peak_rss_mib"] for f in finals], 0),
            _spread([f["train_seconds"] for f in finals], 1),
            _spread([f["steps"] for f in finals], 0),
        ]
        for split in splits:
            scores = [_heldout_score(f.get("heldout", {}).get(split)) for f in finals]
            row.append(_spread([s for s in scores if s is not None], 3))
        rows.append(row)
    return columns, rows


# --- Plots ---------------------------------------------------------------------------------


def _axes(title: str, xlabel: str, ylabel: str):
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return figure, ax


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _series(run: dict, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray] | None:
    points = [(c[x_key], c[y_key]) for c in run["curve"] if c.get(y_key) is not None]
    return (np.array([p[0] for p in points]), np.array([p[1] for p in points])) if points else None


def _band(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 100):
    """Each seed's curve interpolated on one grid (the span every seed covers, so nothing is
    extrapolated); returns the grid and the median, min and max over seeds."""
    start, stop = max(xs[0] for xs, _ in curves), min(xs[-1] for xs, _ in curves)
    grid = np.linspace(start, stop, points) if stop > start else np.array([stop])
    ys = np.stack([np.interp(grid, xs, values) for xs, values in curves])  # (seeds, points)
    return grid, np.median(ys, axis=0), ys.min(axis=0), ys.max(axis=0)


def _curve_plot(
    test: dict, x_key: str, y_key: str, xlabel: str, target_value: float, path: Path
) -> Path | None:
    """Median over seeds and min-max band of y_key against x_key, one line per arm."""
    figure, ax = _axes(f"{test['name']}: {y_key}", xlabel, y_key)
    drawn = False
    for arm in test["arms"]:
        curves = [s for run in _runs_of(test, arm) if (s := _series(run, x_key, y_key))]
        if not curves:
            continue
        grid, median, low, high = _band(curves)
        (line,) = ax.plot(grid, median, "o-" if len(grid) == 1 else "-", label=arm)
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
        drawn = True
    if not drawn:
        return None
    if test["target"]["metric"] == y_key:
        ax.axhline(target_value, color="grey", linestyle="--", label="target")
    ax.legend()
    return _save(figure, path)


def _accuracy_key(test: dict) -> str | None:
    """The exact-match curve to plot: the target's when it is one, else the first recorded."""
    for key in (test["target"]["metric"], "val_exact_match", "train_exact_match"):
        if "exact_match" in key and _has_metric(test, key):
            return key
    return None


def _has_metric(test: dict, key: str) -> bool:
    return any(check.get(key) is not None for run in test["runs"] for check in run["curve"])


def _memory_plot(test: dict, path: Path) -> Path:
    figure, ax = _axes(f"{test['name']}: peak memory", "arm", "peak RSS (MiB)")
    for x, arm in enumerate(test["arms"]):
        values = [run["final"]["peak_rss_mib"] for run in _runs_of(test, arm)]
        median = statistics.median(values)
        spread = [[median - min(values)], [max(values) - median]]
        ax.bar(x, median, yerr=spread, capsize=6, alpha=0.8)
    ax.set_xticks(range(len(test["arms"])), test["arms"])
    return _save(figure, path)


def _speedup_plot(test: dict, summary: dict, path: Path) -> Path | None:
    arms = [arm for arm in test["arms"][1:] if summary[arm]["speedup"] is not None]
    if not arms:
        return None
    figure, ax = _axes(f"{test['name']}: speed-up to target", "arm", "baseline / arm seconds")
    for x, arm in enumerate(arms):
        s = summary[arm]["speedup"]
        spread = None
        if s["low"] is not None:
            spread = [[s["geomean"] - s["low"]], [s["high"] - s["geomean"]]]
        ax.errorbar(x, s["geomean"], yerr=spread, fmt="o", capsize=6)
    ax.axhline(1.0, color="grey", linestyle="--")
    ax.set_xticks(range(len(arms)), arms)
    ax.set_xlim(-0.5, len(arms) - 0.5)
    return _save(figure, path)


def _draw_plots(test: dict, summary: dict, out_dir: Path, slug: str) -> dict[str, Path]:
    """{kind: <slug>-<kind>.png} for the plots this test has data for; {} without matplotlib."""
    if Figure is None:
        return {}

    def png(kind: str) -> Path:
        return out_dir / f"{slug}-{kind}.png"

    target = summary[test["arms"][0]]["target_value"]
    loss_key = "val_loss" if _has_metric(test, "val_loss") else "check_loss"
    seconds = "training seconds"
    plots = {"loss": _curve_plot(test, "train_seconds", loss_key, seconds, target, png("loss"))}
    if accuracy_key := _accuracy_key(test):
        plots["accuracy"] = _curve_plot(test, "step", accuracy_key, "step", target, png("accuracy"))
    plots["memory"] = _memory_plot(test, png("memory"))
    plots["speedup"] = _speedup_plot(test, summary, png("speedup"))
    return {kind: path for kind, path in plots.items() if path}


# --- Rendering -----------------------------------------------------------------------------


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[tuple]) -> str:
    lines: list[str] = []
    for kind, *body in blocks:
        if kind == "h":
            lines += ["#" * body[0] + " " + body[1], ""]
        elif kind == "p":
            lines += [body[0], ""]
        elif kind == "pre":
            lines += ["```", body[0], "```", ""]
        elif kind == "list":
            lines += [f"- {item}" for item in body[0]] + [""]
        elif kind == "table":
            columns, rows = body
            lines.append("| " + " | ".join(_md_cell(c) for c in columns) + " |")
            lines.append("|" + " --- |" * len(columns))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{body[1]}]({body[0].name})", ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f2f2f2; }
pre, code { background: #f5f5f5; }
pre { padding: 0.6rem; overflow-x: auto; white-space: pre-wrap; }
img { max-width: 100%; display: block; margin: 0.5rem 0 1rem; }
"""


def _inline_html(text: str) -> str:
    """Escaped text with the two Markdown marks the report uses: `code` and **bold**."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def render_html(blocks: list[tuple], title: str, out_dir: Path) -> str:
    """One HTML page with inline CSS; images are read from out_dir and embedded as base64."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for kind, *body in blocks:
        if kind == "h":
            parts.append(f"<h{body[0]}>{_inline_html(body[1])}</h{body[0]}>")
        elif kind == "p":
            parts.append(f"<p>{_inline_html(body[0])}</p>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(body[0])}</pre>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in body[0]) + "</ul>")
        elif kind == "table":
            columns, rows = body
            head = "".join(f"<th>{_inline_html(str(c))}</th>" for c in columns)
            cells = (
                "<tr>" + "".join(f"<td>{_inline_html(str(c))}</td>" for c in row) + "</tr>"
                for row in rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead>")
            parts.append(f"<tbody>{''.join(cells)}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((out_dir / body[0].name).read_bytes()).decode("ascii")
            alt = html.escape(body[1])
            parts.append(f'<img alt="{alt}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
