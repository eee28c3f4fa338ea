"""What a distillation run writes: results.json (`results_document`) and report.md
(`write_report`): one row per seed and round (round 0 is the teacher trained plainly on the
seeds, the baseline every later row is compared with), the same rows summarised over seeds
(median [min, max]), and what the filters removed.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from ghost.bench.report import render_markdown

METHOD = [
    "Round 0 trains a model plainly on the seed set (or takes --init-from): it is round 1's "
    "teacher and the baseline of every table.",
    "Each round the operators propose candidate questions from the current set: rewordings "
    "by templates written per question shape (never from a held-out split's wording), "
    "inverse questions of one-to-one relations, yes/no and cloze forms, compositions of two "
    "or three known facts into multi-hop questions, generic rewordings for shapes they do "
    "not know. The teacher answers each (greedy, with its mean byte probability).",
    "Filters, in order: the leak filter (no candidate equal to a held-out question, none "
    "with ROUGE-L >= the threshold to a held-out question with the same answer, none whose "
    "set or chain of facts equals a held-out record's); agreement with the seed fact's "
    "answer (drop, or correct, as `agreement` says); the teacher's confidence for what no "
    "fact can check; verifiers (facts: the fact graph of the seeds; math: evaluate; bash: "
    "bash -n and the program exists); near-duplicates (same answer and ROUGE-L >= the "
    "threshold to a question already in the set).",
    "A student is trained on the grown set (from its teacher's weights or from scratch, as "
    "`student_init` says) and is the next round's teacher.",
    "Scores are greedy exact match (ghost.eval.metrics.evaluate_qa). 'validation' are "
    "questions from templates and compositions the operators keep back: the defaults were "
    "chosen on them. Held-out splits are only scored.",
]


def _spread(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summarize(rows: list[dict]) -> list[dict]:
    """Per round: pairs and every score as median [min, max] over the seeds that reached it."""
    rounds = sorted({r["round"] for r in rows})
    out = []
    for k in rounds:
        mine = [r for r in rows if r["round"] == k]
        names = sorted({n for r in mine for n in r["scores"]}, key=_score_order)
        out.append(
            {
                "round": k,
                "seeds": len(mine),
                "pairs": _spread([r["pairs"] for r in mine]),
                "scores": {
                    n: _spread([r["scores"][n]["exact_match"] for r in mine if n in r["scores"]])
                    for n in names
                },
                "mean_rouge_l": _spread([r["diversity"]["mean_rouge_l"] for r in mine]),
                "seconds": _spread([r.get("seconds", 0.0) for r in mine]),
            }
        )
    return out


def _score_order(name: str) -> tuple:
    first = ("seeds", "seeds, casual", "validation", "validation, new combinations")
    return (first.index(name) if name in first else len(first), name)


def results_document(cfg, rows, command, machine, stopped, wall_seconds) -> dict:
    return {
        "title": f"ghost distill: {cfg.data}, {cfg.rounds} rounds, {cfg.seeds} seed(s)",
        "command": command,
        "complete": stopped is None,
        "stopped": stopped,
        "config": cfg.to_dict(),
        "machine": machine,
        "wall_seconds": wall_seconds,
        "rows": rows,
        "summary": summarize(rows),
        "method": METHOD,
    }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _cell(s: dict | None, percent: bool = True) -> str:
    if s is None:
        return "-"
    f = _pct if percent else (lambda v: f"{v:.0f}")
    if s["n"] == 1 or s["min"] == s["max"]:
        return f(s["median"])
    return f"{f(s['median'])} [{f(s['min'])}, {f(s['max'])}]"


def _summary_table(results: dict):
    summary = results["summary"]
    names = []
    for s in summary:
        names += [n for n in s["scores"] if n not in names]
    names.sort(key=_score_order)
    columns = ["round", "pairs"] + [f"{n} %" for n in names] + ["mean ROUGE-L", "time"]
    rows = []
    for s in summary:
        label = "0 (plain training on the seeds)" if s["round"] == 0 else str(s["round"])
        rows.append(
            [label, _cell(s["pairs"], percent=False)]
            + [_cell(s["scores"].get(n)) for n in names]
            + [
                "-" if s["mean_rouge_l"] is None else f"{s['mean_rouge_l']['median']:.3f}",
                f"{s['seconds']['median'] / 60:.1f} min" if s["seconds"] else "-",
            ]
        )
    return columns, rows


def _rows_table(results: dict):
    columns = [
        "seed",
        "round",
        "pairs",
        "added",
        "candidates",
        "checked",
        "distinct",
        "steps",
        "removed",
    ]
    rows = []
    for r in results["rows"]:
        removed = r.get("removed") or {}
        rows.append(
            [
                r["seed"],
                r["round"],
                r["pairs"],
                r.get("added", "-"),
                r.get("candidates", "-"),
                r["checked_pairs"],
                r["diversity"]["distinct"],
                (r.get("train") or {}).get("steps", "-"),
                ", ".join(f"{k} {v}" for k, v in removed.items() if v) or "-",
            ]
        )
    return columns, rows


def _machine_text(results: dict) -> str:
    m = results["machine"]
    commit = m["commit"][:10] + (" (dirty)" if m["dirty"] else "")
    return (
        f"Machine: {m['cpu']} (family/model {m.get('cpu_family_model')}, "
        f"{' '.join(m['cpu_flags'])}), {m['threads']} threads, {m['precision']}, "
        f"{m['allocator']}, torch {m['torch']}, commit {commit}. Wall time "
        f"{results['wall_seconds'] / 60:.1f} min."
    )


def _settings_text(results: dict) -> str:
    c = results["config"]
    return (
        f"Seed set {c['data']}; preset {c['preset']}; steps per training {c['steps']}; "
        f"students from {c['student_init']}; agreement {c['agreement']}; confidence >= "
        f"{c['confidence']}; seeds {c.get('seed_share', 0):.0%} of a student's rows; "
        f"ROUGE-L threshold {c['dedup_threshold']}; operators "
        f"{', '.join(c['operators'])}; augment {c['augment']}; reasoning "
        f"{c.get('reasoning', 'none')}; budget "
        f"{c['budget'] or 'all'} candidates a round."
    )


def _blocks(results: dict) -> list[tuple]:
    blocks: list[tuple] = [("h", 1, results["title"])]
    if results["command"]:
        blocks.append(("pre", results["command"]))
    if not results["complete"]:
        blocks.append(("p", f"**Not complete**: {results['stopped']}. Continue with --resume."))
    blocks += [
        ("p", _machine_text(results)),
        ("p", _settings_text(results)),
        ("h", 2, "By round (exact match %, median [min, max] over seeds)"),
        ("table", *_summary_table(results)),
        ("h", 2, "Every seed and round"),
        (
            "p",
            "checked: pairs whose answer a seed fact or a verifier confirms (the rest were "
            "admitted on the teacher's confidence alone).",
        ),
        ("table", *_rows_table(results)),
        ("h", 2, "Method"),
        ("list", results["method"]),
    ]
    return blocks


def write_report(results: dict, out: Path) -> dict[str, Path]:
    from ghost.model.io import atomic_write_text

    path = out / "report.md"
    atomic_write_text(path, render_markdown(_blocks(results)))
    return {"markdown": path}
