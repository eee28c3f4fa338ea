"""The statistics of `ghost bench`: how long each run took to reach the target, how much faster
an arm is than the baseline over paired seeds, whether its final loss is worse, and the verdict.

    time_to_target(curve, metric, target, higher_is_better)   first check at or past the target
    paired_speedup(baseline, arm)       per-seed baseline/arm time ratios, geomean, 95% t interval
    paired_difference(baseline, arm)    arm - baseline final loss, 95% t interval, relative change
    verdict(speedup, loss_change)       "USE" | "SKIP" | "NEUTRAL"
    summarize_test(test)                all of the above for one test of the results dict
                                        (schema in ghost.bench.report)

Runs are paired by seed: seed s of an arm and seed s of the baseline start from the same
initial weights and data order (as far as the arm leaves them alone), so their ratio cancels
much of what the seed decides, and the interval is over per-seed ratios. Speed-ups are
averaged as logs (a 2x and a 0.5x cancel), hence the geometric mean and an interval on the
mean log-ratio.
"""

from __future__ import annotations

import math
import statistics

try:
    from scipy.stats import t as student_t
except ImportError:  # scipy is in the "bench" extra; without it, a table of t quantiles
    student_t = None

# The verdict's tolerance on final loss: an arm whose mean final loss is more than 2% above the
# baseline's is worse, whatever its speed. It is fixed here, not a flag, so that a verdict
# cannot be tuned after the runs are seen.
MARGIN = 0.02

# Two-sided 95% Student's t quantiles (0.975) for 1..30 degrees of freedom.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with df degrees of freedom (the 95% two-sided factor).

    scipy when installed; otherwise the table above, and past 30 degrees of freedom the
    Cornish-Fisher expansion in 1/df to its second term, within 1e-4 of the exact value there.
    """
    if df < 1:
        raise ValueError(f"df must be at least 1, got {df}")
    if student_t is not None:
        return float(student_t.ppf(0.975, df))
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = 1.959964  # the normal quantile the expansion starts from
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _mean_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """Mean and its 95% t interval; the interval is (None, None) for a single value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    half = t_quantile_975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def time_to_target(curve: list[dict], metric: str, target: float, higher_is_better: bool) -> dict:
    """The training time and steps of the first check whose `metric` reaches `target`.

    curve: checks in step order, each {"step", "train_seconds", metric, ...}, train_seconds
    being cumulative training time (evaluation excluded). A check lacking the metric is passed
    over. "Reaches" is >= target when higher is better, <= target otherwise. When no check
    reaches it, the run is censored at its last check: {"censored": True} with that check's
    seconds and steps, a lower bound on the time the run would have needed.
    """
    if not curve:
        raise ValueError("time_to_target: the curve has no checks")
    for check in curve:
        value = check.get(metric)
        if value is None:
            continue
        if (value >= target) if higher_is_better else (value <= target):
            return {"seconds": check["train_seconds"], "steps": check["step"], "censored": False}
    last = curve[-1]
    return {"seconds": last["train_seconds"], "steps": last["step"], "censored": True}


def _bound(baseline_censored: bool, arm_censored: bool) -> str:
    if baseline_censored and arm_censored:
        return "unknown"
    if arm_censored:
        return "at_most"
    if baseline_censored:
        return "at_least"
    return "exact"


def paired_speedup(baseline: list[dict], arm: list[dict]) -> dict:
    """Speed-up of `arm` over `baseline`: per-seed baseline.seconds / arm.seconds.

    baseline, arm: time_to_target results for the same seeds in the same order.
    Returns {"n", "ratios", "bounds", "geomean", "low", "high", "censored_pairs"}: the
    geometric mean of the ratios and a 95% Student's t interval on the mean log-ratio,
    exponentiated; low and high are None when n = 1 (no spread to estimate).

    Censoring. A censored run's seconds are a lower bound on its true time to target. So when
    only the arm is censored, the ratio is an upper bound on the true ratio ("at_most"); when
    only the baseline is, a lower bound ("at_least"); when both are, the true ratio is
    "unknown" (with equal budgets both stop at about the same time, so the ratio is near 1).
    The mean uses these bound values as they are. Each errs only in the direction its bound
    names: an "at_most" value can overstate the speed-up, never understate it, and an
    "at_least" value the reverse. When both arms train for the same time, the run censored
    alone is the slower one, so its bound value understates the gap and censoring pulls the
    mean towards 1, the conservative side. censored_pairs counts the pairs that are not
    "exact"; when it is not 0, read the bounds beside the mean.
    """
    if len(baseline) != len(arm):
        raise ValueError(f"paired_speedup: {len(baseline)} baseline runs but {len(arm)} arm runs")
    if not arm:
        raise ValueError("paired_speedup: no pairs")
    for run in (*baseline, *arm):
        if run["seconds"] <= 0:
            raise ValueError(
                "paired_speedup: a run reached the target after 0 s of training; "
                "the target is met before training and cannot tell arms apart"
            )
    ratios = [b["seconds"] / a["seconds"] for b, a in zip(baseline, arm, strict=True)]
    bounds = [_bound(b["censored"], a["censored"]) for b, a in zip(baseline, arm, strict=True)]
    mean, low, high = _mean_interval([math.log(r) for r in ratios])
    return {
        "n": len(ratios),
        "ratios": ratios,
        "bounds": bounds,
        "geomean": math.exp(mean),
        "low": None if low is None else math.exp(low),
        "high": None if high is None else math.exp(high),
        "censored_pairs": sum(b != "exact" for b in bounds),
    }


def paired_difference(baseline: list[float], arm: list[float]) -> dict:
    """Paired change of a final value (validation loss), arm minus baseline, seed by seed.

    Returns {"n", "baseline_mean", "arm_mean", "mean_difference", "low", "high",
    "relative_change"}: low/high bound a 95% t interval on the mean difference (None when
    n = 1), relative_change = (arm_mean - baseline_mean) / baseline_mean.
    """
    if len(baseline) != len(arm):
        raise ValueError(f"paired_difference: {len(baseline)} baseline values, {len(arm)} arm")
    if not arm:
        raise ValueError("paired_difference: no pairs")
    mean, low, high = _mean_interval([a - b for b, a in zip(baseline, arm, strict=True)])
    baseline_mean, arm_mean = statistics.fmean(baseline), statistics.fmean(arm)
    return {
        "n": len(arm),
        "baseline_mean": baseline_mean,
        "arm_mean": arm_mean,
        "mean_difference": mean,
        "low": low,
        "high": high,
        "relative_change": (arm_mean - baseline_mean) / baseline_mean,
    }


def verdict(speedup: dict, loss_change: dict | None, margin: float = MARGIN) -> str:
    """The verdict on one arm against the baseline: "USE", "SKIP" or "NEUTRAL".

    Quality first: the arm is worse when its mean final loss exceeds the baseline's by more
    than `margin` (arm_mean > baseline_mean * (1 + margin)), and then it is "SKIP" whatever its
    speed. Otherwise "USE" when the whole speed-up interval lies above 1.0, "SKIP" when it lies
    below 1.0, and "NEUTRAL" when it contains 1.0 or is undefined (a single seed).
    loss_change None (no final loss recorded) judges on speed alone.
    """
    if loss_change is not None:
        if loss_change["arm_mean"] > loss_change["baseline_mean"] * (1 + margin):
            return "SKIP"
    if speedup["low"] is None or speedup["high"] is None:
        return "NEUTRAL"
    if speedup["low"] > 1.0:
        return "USE"
    if speedup["high"] < 1.0:
        return "SKIP"
    return "NEUTRAL"


# --- One test of the results dict ----------------------------------------------------------


def final_loss_metric(runs: list[dict]) -> str | None:
    """The loss compared at the end: val_loss when every run has it, else the training-check
    loss, else None (no loss to compare)."""
    for metric in ("val_loss", "check_loss"):
        if runs and all(run["final"].get(metric) is not None for run in runs):
            return metric
    return None


def resolve_target(test: dict) -> float:
    """The target value; when it is None, the baseline's median final value of the metric."""
    target = test["target"]
    if target["value"] is not None:
        return target["value"]
    baseline = [run for run in test["runs"] if run["arm"] == test["arms"][0]]
    values = [run["final"].get(target["metric"]) for run in baseline]
    if not values or any(v is None for v in values):
        raise ValueError(
            f"{test['name']}: target {target['metric']} has no value and the baseline runs "
            "lack a final one to take it from"
        )
    return statistics.median(values)


def summarize_test(test: dict) -> dict:
    """{arm: {"time_to_target", "speedup", "final_loss", "verdict", ...}} for one test.

    The baseline is arms[0]; every other arm is paired with it by seed (seeds only one of the
    two ran are left out of the pairing). time_to_target lists every run of the arm in seed
    order, each {"seed", "seconds", "steps", "censored"}. speedup, final_loss and verdict are
    None for the baseline. Each arm also gets "paired_seeds" (the seeds of speedup's ratios,
    in order; [] for the baseline), "target_value" (the resolved target), "loss_metric" and
    "censored" (how many of its runs never reached the target).
    """
    target, arms = test["target"], test["arms"]
    value = resolve_target(test)
    runs: dict[str, dict[int, dict]] = {arm: {} for arm in arms}
    for run in test["runs"]:
        if run["arm"] not in runs:
            raise ValueError(f"{test['name']}: a run of arm {run['arm']!r}, not in {arms}")
        runs[run["arm"]][run["seed"]] = run
    reached = {
        arm: {
            seed: time_to_target(run["curve"], target["metric"], value, target["higher_is_better"])
            for seed, run in sorted(by_seed.items())
        }
        for arm, by_seed in runs.items()
    }
    loss_metric = final_loss_metric(test["runs"])
    baseline = arms[0]
    summary = {}
    for arm in arms:
        times = [{"seed": seed, **found} for seed, found in reached[arm].items()]
        entry = {
            "time_to_target": times,
            "speedup": None,
            "final_loss": None,
            "verdict": None,
            "paired_seeds": [],
            "target_value": value,
            "loss_metric": loss_metric,
            "censored": sum(t["censored"] for t in times),
        }
        seeds = sorted(set(runs[arm]) & set(runs[baseline]))
        if arm != baseline and seeds:
            entry["paired_seeds"] = seeds
            entry["speedup"] = paired_speedup(
                [reached[baseline][s] for s in seeds], [reached[arm][s] for s in seeds]
            )
            if loss_metric is not None:
                entry["final_loss"] = paired_difference(
                    [runs[baseline][s]["final"][loss_metric] for s in seeds],
                    [runs[arm][s]["final"][loss_metric] for s in seeds],
                )
            entry["verdict"] = verdict(entry["speedup"], entry["final_loss"])
        summary[arm] = entry
    return summary
