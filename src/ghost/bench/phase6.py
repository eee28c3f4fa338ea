"""The original Ghost's Phase 6 test plan, as benchmark tests (`ghost bench --plan phase6`).

    techniques   facts200: baseline vs each Q&A technique alone (curriculum, skip, byte-lr,
                 depth-grad): the technique table's speed-up and final loss
    test1        compression, math1k as text: baseline vs skip (fresh scoring: text windows
                 move) vs byte-lr vs state-momentum; validation loss against time; time to
                 the baseline's final validation loss
    test2        reasoning, facts200 + bash100 together: baseline vs the recommended pipeline
                 (curriculum + skip); multi-hop (facts200:test_hard) and the never-trained
                 facts200:novel, facts200:paraphrase, bash100:paraphrase, each reported alone
    test3        learning rate, facts200: flat LR vs byte-lr; steps and time to 95% exact match
    test4        speed, facts200: baseline vs curriculum + skip vs every Q&A technique; time to
                 95% training exact match

Runs that coincide (the facts200 baseline of techniques, test3 and test4; byte-lr of
techniques and test3) are the same run, made once. The success-metrics table (300 steps,
memory, held-out generalisation of baseline vs the best combination) is `success_tests`,
built after the plan from the verdicts.

Sizes (`SCALES`): `quick` runs the whole pipeline on the tiny preset in a few minutes;
`full` is sized to finish on a 2-core CPU in the time the plan's report states.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from ghost.bench.arms import Arm, parse_arm
from ghost.bench.runner import BenchTest, Target

ORIGINAL = {  # the original author's table ("Ghost v6 Phase 6 Training Plan"), single runs
    "curriculum": {"speedup": "1.22x", "final_loss": "0.7789", "status": "USE"},
    "skip": {"speedup": "0.93x", "final_loss": "0.7288", "status": "USE"},
    "byte-lr": {"speedup": "1.01x", "final_loss": "0.7920", "status": "Neutral"},
    "state-momentum": {"speedup": "N/A", "final_loss": "N/A", "status": "Skip (overhead)"},
    "depth-grad": {"speedup": "N/A", "final_loss": "N/A", "status": "Skip (overhead)"},
}
ORIGINAL_SUCCESS = {  # "Success Metrics": baseline and target
    "time for 300 steps": ("325 s", "< 150 s"),
    "accuracy": ("100%", "100% (maintain)"),
    "novel generalisation": ("58%", "70%+"),
    "memory": ("100%", "< 60%"),
}


@dataclass(frozen=True)
class Scale:
    preset: str
    qa_steps: int
    text_steps: int
    seeds: tuple[int, ...]
    batch_size: int = 32
    qa_seq_len: int = 160  # every facts200 and bash100 record fits whole (longest: 141 bytes)
    text_seq_len: int = 64  # the original's windows: its 16 -> 64 curriculum ends here
    check_every: int = 5
    success_steps: int = 300
    success_seeds: int = 3
    workers: int = 1  # runs at a time: more than 1 only for a smoke run (times mean nothing)
    why: str = ""

    def with_seeds(self, n: int) -> Scale:
        return replace(self, seeds=tuple(range(n)), success_seeds=min(self.success_seeds, n))


SCALES = {
    "quick": Scale(
        preset="tiny",
        qa_steps=20,
        text_steps=15,
        seeds=(0, 1),
        batch_size=8,
        success_steps=20,
        success_seeds=2,
        workers=2,
        why="a smoke run of the whole pipeline, two runs at a time on one thread each: its "
        "numbers mean nothing",
    ),
    # Sized to finish in about two hours on a 2-core AMD EPYC (Zen 1, AVX2), where a v5-fast
    # step at 32 x 160 takes 2.5 s and a "small" step 0.62 s: one seed of every arm on
    # v5-fast would alone take ~2.5 hours. The small preset learns facts200 to 95% training
    # exact match in ~230 steps, so 260 steps leave room to see an arm arrive later.
    "full": Scale(
        preset="small",
        qa_steps=260,
        text_steps=120,
        seeds=(0, 1, 2),
        check_every=10,
        success_seeds=1,
        why="the small preset (1.30M parameters, every block kind of v5-fast), 3 seeds, "
        "checks every 10 steps, and one seed for the 300-step success runs: what fits in "
        "about two hours on a 2-core Zen 1 host (a v5-fast step takes 2.5 s there). "
        "`--seeds 5` runs 5 seeds on a faster machine",
    ),
}
QA_TECHNIQUES = ["curriculum", "skip", "byte-lr", "depth-grad"]


def phase6_tests(scale: Scale) -> list[BenchTest]:
    baseline = Arm("baseline")
    shared = {
        "preset": scale.preset,
        "batch_size": scale.batch_size,
        "seq_len": scale.qa_seq_len,
        "eval_every": scale.check_every,
        **({"threads": 1} if scale.workers > 1 else {}),  # runs side by side: a core each
    }
    seeds = list(scale.seeds)
    em95 = Target("train_exact_match", 0.95, True)
    facts = dict(data="facts200", steps=scale.qa_steps, seeds=seeds, settings=shared)
    return [
        BenchTest(
            key="techniques",
            name="Technique table: each technique alone on facts200",
            question="Which technique trains faster to 95% training exact match, and at what "
            "final loss?",
            arms=[baseline, *(parse_arm(t) for t in QA_TECHNIQUES)],
            target=em95,
            heldout=["facts200:paraphrase", "facts200:novel"],
            **facts,
        ),
        BenchTest(
            key="test1",
            name="Test 1: compression (math1k as text)",
            question="Which technique reaches the baseline's final validation loss sooner?",
            data="math1k:text",
            arms=[
                baseline,
                parse_arm("skip:scoring=fresh"),
                parse_arm("byte-lr"),
                parse_arm("state-momentum"),
            ],
            target=Target("val_loss", None, False),
            steps=scale.text_steps,
            seeds=seeds,
            settings={**shared, "seq_len": scale.text_seq_len, "val_fraction": 0.1},
            heldout=["math1k:test_text"],
        ),
        BenchTest(
            key="test2",
            name="Test 2: reasoning (facts200 + bash100)",
            question="Does the recommended pipeline keep multi-hop accuracy, and how do models "
            "do on never-trained questions?",
            data="facts200,bash100",
            arms=[baseline, parse_arm("curriculum+skip")],
            target=em95,
            steps=scale.qa_steps,
            seeds=seeds,
            settings=shared,
            heldout=[
                "facts200:test_hard",
                "facts200:novel",
                "facts200:paraphrase",
                "bash100:paraphrase",
            ],
        ),
        BenchTest(
            key="test3",
            name="Test 3: learning rate (flat vs byte-aware)",
            question="Does byte-lr reach 95% exact match in fewer steps or less time?",
            arms=[baseline, parse_arm("byte-lr")],
            target=em95,
            heldout=["facts200:paraphrase", "facts200:novel"],
            **facts,
        ),
        BenchTest(
            key="test4",
            name="Test 4: speed (the recommended pipeline and every technique)",
            question="How much sooner do the combinations reach 95% training exact match?",
            arms=[baseline, parse_arm("curriculum+skip"), parse_arm("+".join(QA_TECHNIQUES))],
            target=em95,
            heldout=["facts200:paraphrase", "facts200:novel"],
            **facts,
        ),
    ]


def success_tests(scale: Scale, best: Arm) -> list[BenchTest]:
    """Baseline vs the best combination, 300 steps, with gradient checkpointing as an option."""
    checkpointed = Arm(f"{best.name} + grad-checkpoint", best.recipes, {"grad_checkpoint": True})
    return [
        BenchTest(
            key="success",
            name="Success metrics: baseline vs optimised, 300 steps",
            question="Time for 300 steps, accuracy, held-out generalisation and memory.",
            data="facts200",
            # nothing earned its place: plain training is the optimised arm too
            arms=[Arm("baseline"), checkpointed]
            if best.name == "baseline"
            else [Arm("baseline"), best, checkpointed],
            target=Target("train_exact_match", 0.95, True),
            steps=scale.success_steps,
            seeds=list(scale.seeds[: scale.success_seeds]),
            settings={
                "preset": scale.preset,
                "batch_size": scale.batch_size,
                "seq_len": scale.qa_seq_len,
                "eval_every": scale.check_every,
                **({"threads": 1} if scale.workers > 1 else {}),
            },
            heldout=["facts200:train", "facts200:paraphrase", "facts200:novel"],
        )
    ]


def _test(document: dict, key: str) -> dict | None:
    return next((t for t in document["tests"] if t.get("key") == key), None)


def best_arm(document: dict) -> Arm:
    """The combination the success table calls "optimised": test4's USE arm with the largest
    speed-up, else the technique table's, else plain training (nothing earned its place)."""
    for key in ("test4", "techniques"):
        test = _test(document, key)
        if test is None:
            continue
        used = [
            (entry["speedup"]["geomean"], arm)
            for arm, entry in test["summary"].items()
            if entry["verdict"] == "USE"
        ]
        if used:
            name = max(used)[1]
            config = test["arm_configs"][name]
            return Arm(config["name"], config["recipes"], config["settings"])
    return Arm("baseline")


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _finals(test: dict, arm: str, key: str) -> list[float]:
    return [run["final"].get(key) for run in test["runs"] if run["arm"] == arm]


def _heldout(test: dict, arm: str, split: str) -> float | None:
    scores = [run["final"]["heldout"].get(split, {}) for run in test["runs"] if run["arm"] == arm]
    return _median([s.get("exact_match") for s in scores])


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _speedup_text(entry: dict) -> str:
    s = entry.get("speedup")
    if not s:
        return "n/a"
    interval = f" [{s['low']:.2f}, {s['high']:.2f}]" if s.get("low") is not None else ""
    censored = f", {s['censored_pairs']} censored" if s.get("censored_pairs") else ""
    return f"{s['geomean']:.2f}x{interval}{censored}"


def technique_table(document: dict) -> dict:
    rows = []
    sources = [("techniques", t) for t in QA_TECHNIQUES] + [("test1", "state-momentum")]
    for key, technique in sources:
        test = _test(document, key)
        if test is None or technique not in test["summary"]:
            continue
        entry = test["summary"][technique]
        loss = _median(_finals(test, technique, entry["loss_metric"] or "check_loss"))
        held = (
            f"{_pct(_heldout(test, technique, 'facts200:paraphrase'))} / "
            f"{_pct(_heldout(test, technique, 'facts200:novel'))}"
            if key == "techniques"
            else "n/a (text)"
        )
        original = ORIGINAL[technique]
        rows.append(
            [
                technique,
                _speedup_text(entry),
                "n/a" if loss is None else f"{loss:.4f}",
                held,
                entry["verdict"] or "n/a",
                original["speedup"],
                original["final_loss"],
                original["status"],
            ]
        )
    return {
        "title": "Technique table (ours beside the original's)",
        "columns": [
            "Technique",
            "Speed-up (95% interval)",
            "Final loss",
            "Held-out paraphrase / novel",
            "Status",
            "Original speed-up",
            "Original final loss",
            "Original status",
        ],
        "rows": rows,
        "note": "Speed-up: time to the target against plain training, paired by seed. Final "
        "loss: median over seeds at the end of the fixed budget (validation loss for text, "
        "the mean training loss of the last check for Q&A). state-momentum comes from Test 1 "
        "(text); the others from facts200. The original's numbers are single runs.",
    }


def _shape(test: dict) -> str:
    settings = test.get("settings", {})
    return (
        f"{settings.get('preset', 'v5-fast')}, batch {settings.get('batch_size', 32)} x "
        f"{settings.get('seq_len', 256)} bytes, {test.get('data', '?')}"
    )


def success_table(document: dict) -> dict | None:
    test = _test(document, "success")
    if test is None:
        return None
    base, *best, ckpt = test["arms"]
    best = best[0] if best else base

    def seconds(arm):
        return _median(_finals(test, arm, "train_seconds"))

    def rss(arm):
        return _median(_finals(test, arm, "peak_rss_mib"))

    b_s, o_s, b_m, c_m = seconds(base), seconds(best), rss(base), rss(ckpt)
    rows = [
        [
            f"time for {test['steps']} training steps ({_shape(test)})",
            *ORIGINAL_SUCCESS["time for 300 steps"],
            f"{b_s:.0f} s",
            f"{o_s:.0f} s ({b_s / o_s:.2f}x)",
            "training seconds (steps only), median over seeds",
        ],
        [
            "accuracy (facts200:train exact match)",
            *ORIGINAL_SUCCESS["accuracy"],
            _pct(_heldout(test, base, "facts200:train")),
            _pct(_heldout(test, best, "facts200:train")),
            "greedy exact match after the fixed budget",
        ],
        [
            "held-out paraphrase",
            "n/a",
            "n/a",
            _pct(_heldout(test, base, "facts200:paraphrase")),
            _pct(_heldout(test, best, "facts200:paraphrase")),
            "never-trained wordings of trained facts",
        ],
        [
            "novel generalisation (facts200:novel)",
            *ORIGINAL_SUCCESS["novel generalisation"],
            _pct(_heldout(test, base, "facts200:novel")),
            _pct(_heldout(test, best, "facts200:novel")),
            "never-trained combinations of trained hops",
        ],
        [
            "memory (peak RSS)",
            *ORIGINAL_SUCCESS["memory"],
            f"{b_m:.0f} MiB",
            f"{c_m:.0f} MiB ({c_m / b_m:.0%}) with gradient checkpointing; "
            f"{rss(best):.0f} MiB without",
            "peak resident memory of the training process, each run its own process",
        ],
    ]
    return {
        "title": f"Success metrics: baseline vs optimised ({best})",
        "columns": [
            "Metric",
            "Original baseline",
            "Original target",
            "Ours: baseline",
            "Ours: optimised",
            "How measured",
        ],
        "rows": rows,
    }


def tables(document: dict) -> list[dict]:
    return [t for t in (technique_table(document), success_table(document)) if t is not None]
