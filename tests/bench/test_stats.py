import math

import numpy as np
import pytest

from ghost.bench import stats
from ghost.bench.stats import (
    paired_difference,
    paired_speedup,
    summarize_test,
    t_quantile_975,
    time_to_target,
    verdict,
)


def curve_of(values, metric, seconds_per_check=10.0, steps_per_check=5):
    return [
        {"step": (i + 1) * steps_per_check, "train_seconds": (i + 1) * seconds_per_check, metric: v}
        for i, v in enumerate(values)
    ]


def reached(seconds, censored=False):
    return {"seconds": seconds, "steps": 10, "censored": censored}


def test_time_to_target_takes_the_first_crossing_of_a_falling_loss():
    curve = curve_of([3.0, 2.0, 1.4, 1.6, 1.2], "val_loss")
    assert time_to_target(curve, "val_loss", 1.5, higher_is_better=False) == {
        "seconds": 30.0,
        "steps": 15,
        "censored": False,
    }


def test_time_to_target_takes_the_first_crossing_of_a_rising_accuracy():
    curve = curve_of([0.1, 0.5, 0.95, 0.9, 1.0], "train_exact_match")
    found = time_to_target(curve, "train_exact_match", 0.95, higher_is_better=True)
    assert (found["seconds"], found["steps"], found["censored"]) == (30.0, 15, False)


def test_time_to_target_passes_over_checks_without_the_metric():
    curve = curve_of([3.0, 1.0], "val_loss")
    curve.insert(0, {"step": 1, "train_seconds": 1.0, "check_loss": 0.5})
    assert time_to_target(curve, "val_loss", 1.5, higher_is_better=False)["steps"] == 10


def test_a_run_that_never_reaches_the_target_is_censored_at_its_last_check():
    curve = curve_of([3.0, 2.5, 2.0], "val_loss")
    assert time_to_target(curve, "val_loss", 1.5, higher_is_better=False) == {
        "seconds": 30.0,
        "steps": 15,
        "censored": True,
    }


def test_a_known_speedup_is_recovered_with_an_interval_that_covers_it():
    """Baseline times t_i over 8 seeds, arm times t_i / 1.25 with 5% log-normal noise. One draw
    can miss (a 95% interval misses 1 draw in 20), so 200 draws: the geometric means centre on
    1.25 and the interval covers it in about 95% of them."""
    rng = np.random.default_rng(0)
    geomeans, covered, above_one = [], 0, 0
    for _ in range(200):
        baseline_seconds = rng.uniform(100, 200, size=8)
        arm_seconds = baseline_seconds / 1.25 * rng.lognormal(0.0, 0.05, size=8)
        result = paired_speedup(
            [reached(s) for s in baseline_seconds], [reached(s) for s in arm_seconds]
        )
        assert result["n"] == 8 and result["bounds"] == ["exact"] * 8
        geomeans.append(result["geomean"])
        covered += result["low"] < 1.25 < result["high"]
        above_one += result["low"] > 1.0
    assert np.median(geomeans) == pytest.approx(1.25, rel=0.01)
    assert np.mean(np.abs(np.array(geomeans) / 1.25 - 1) < 0.05) > 0.95
    assert 0.90 <= covered / 200 <= 0.99
    assert above_one == 200  # 5% noise never hides a 25% speed-up over 8 seeds


def test_censored_pairs_are_reported_as_bounds_on_the_ratio():
    baseline = [reached(100.0), reached(100.0, censored=True), reached(80.0), reached(120, True)]
    arm = [reached(50.0), reached(50.0), reached(100.0, censored=True), reached(120, True)]
    result = paired_speedup(baseline, arm)
    assert result["bounds"] == ["exact", "at_least", "at_most", "unknown"]
    assert result["ratios"] == [2.0, 2.0, 0.8, 1.0]
    assert result["censored_pairs"] == 3


def test_one_seed_gives_no_interval():
    result = paired_speedup([reached(100.0)], [reached(50.0)])
    assert result["geomean"] == pytest.approx(2.0)
    assert result["low"] is None and result["high"] is None
    assert paired_difference([1.0], [1.1])["low"] is None


def test_paired_difference_of_final_loss():
    baseline, arm = [1.00, 1.10, 0.90, 1.05], [1.02, 1.13, 0.91, 1.08]
    result = paired_difference(baseline, arm)
    assert result["mean_difference"] == pytest.approx(0.0225)
    assert result["low"] < 0.0225 < result["high"]
    assert result["relative_change"] == pytest.approx(0.0225 / 1.0125)


def test_the_t_table_matches_scipy():
    pytest.importorskip("scipy")
    for df in range(1, 80):
        exact = t_quantile_975(df)
        student_t, stats.student_t = stats.student_t, None
        try:
            assert t_quantile_975(df) == pytest.approx(exact, abs=1e-3), df
        finally:
            stats.student_t = student_t


def speedup(low, high):
    return {"geomean": math.sqrt(low * high) if low else 1.0, "low": low, "high": high}


def loss(baseline_mean, arm_mean):
    return {"baseline_mean": baseline_mean, "arm_mean": arm_mean}


def test_verdict_rule():
    assert verdict(speedup(1.1, 1.4), loss(1.0, 1.01)) == "USE"
    assert verdict(speedup(1.1, 1.4), loss(1.0, 0.9)) == "USE"
    assert verdict(speedup(0.7, 0.95), loss(1.0, 0.9)) == "SKIP"  # slower
    assert verdict(speedup(1.1, 1.4), loss(1.0, 1.03)) == "SKIP"  # faster but worse
    assert verdict(speedup(0.9, 1.3), loss(1.0, 1.0)) == "NEUTRAL"  # interval holds 1
    assert verdict(speedup(None, None), loss(1.0, 1.0)) == "NEUTRAL"  # one seed
    assert verdict(speedup(1.1, 1.4), loss(1.0, 1.03), margin=0.05) == "USE"
    assert stats.MARGIN == 0.02


def run(arm, seed, values, seconds_per_check, metric="val_loss"):
    curve = curve_of(values, metric, seconds_per_check)
    final = {"val_loss": values[-1], "peak_rss_mib": 300.0, "train_seconds": 30.0, "steps": 15}
    return {"arm": arm, "seed": seed, "curve": curve, "final": final}


def test_summarize_test_pairs_by_seed_and_marks_censored_runs():
    test = {
        "name": "t",
        "target": {"metric": "val_loss", "value": 1.5, "higher_is_better": False},
        "arms": ["baseline", "fast"],
        "runs": [
            run("baseline", 0, [2.0, 1.4, 1.2], 10.0),
            run("baseline", 1, [2.0, 1.8, 1.6], 10.0),  # never reaches 1.5
            run("fast", 0, [1.4, 1.3, 1.2], 10.0),
            run("fast", 1, [1.9, 1.7, 1.6], 10.0),  # neither does this one
            run("fast", 2, [1.4, 1.3, 1.2], 10.0),  # no baseline seed 2: not paired
        ],
    }
    summary = summarize_test(test)
    assert summary["baseline"]["speedup"] is None and summary["baseline"]["verdict"] is None
    assert [t["censored"] for t in summary["baseline"]["time_to_target"]] == [False, True]
    fast = summary["fast"]
    assert [t["censored"] for t in fast["time_to_target"]] == [False, True, False]
    assert fast["censored"] == 1 and fast["paired_seeds"] == [0, 1]
    assert fast["speedup"]["ratios"] == [2.0, 1.0]
    assert fast["speedup"]["bounds"] == ["exact", "unknown"]
    assert fast["final_loss"]["mean_difference"] == pytest.approx(0.0)
    assert fast["verdict"] == "NEUTRAL"


def test_a_target_without_value_is_the_baseline_median_final():
    test = {
        "name": "t",
        "target": {"metric": "val_loss", "value": None, "higher_is_better": False},
        "arms": ["baseline", "fast"],
        "runs": [run("baseline", s, [2.0, 1.0 + s / 10], 10.0) for s in range(3)]
        + [run("fast", s, [1.0, 1.0], 10.0) for s in range(3)],
    }
    summary = summarize_test(test)
    assert summary["fast"]["target_value"] == pytest.approx(1.1)
    assert summary["fast"]["speedup"]["ratios"] == [2.0, 2.0, 2.0]
